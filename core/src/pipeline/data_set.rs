//! The data set a run trains on: the stored labelled images with class indices, checked to be
//! trainable, and the snapshot of it that a model version records.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use sprig_store::{DataSnapshot, ImageRecord, Split, SplitCounts};

use crate::error::{CoreError, Result};

/// The labelled images a run trains on, with class indices.
pub(super) struct DataSet {
    pub(super) classes: Vec<String>,
    pub(super) images: Vec<(ImageRecord, usize)>,
}

impl DataSet {
    pub(super) fn collect(records: Vec<ImageRecord>) -> Result<Self> {
        let mut train_counts: BTreeMap<String, u64> = BTreeMap::new();
        for record in &records {
            let count = train_counts.entry(record.class.clone()).or_default();
            if record.split == Split::Train {
                *count += 1;
            }
        }
        if let Some((class, _)) = train_counts.iter().find(|(_, n)| **n == 0) {
            return Err(CoreError::NotEnoughData(format!(
                "class '{class}' has no image in the train split; upload more images of it"
            )));
        }
        let classes: Vec<String> = train_counts.into_keys().collect();
        if classes.len() < 2 {
            return Err(CoreError::NotEnoughData(format!(
                "need images of at least 2 classes, have {}",
                classes.len()
            )));
        }
        let images = records
            .into_iter()
            .map(|r| {
                let label = classes
                    .iter()
                    .position(|c| *c == r.class)
                    .expect("class collected above");
                (r, label)
            })
            .collect();
        Ok(Self { classes, images })
    }

    pub(super) fn snapshot(&self) -> DataSnapshot {
        let mut class_counts: BTreeMap<String, SplitCounts> = BTreeMap::new();
        let mut ids: Vec<u64> = Vec::with_capacity(self.images.len());
        for (image, _) in &self.images {
            let counts = class_counts
                .entry(image.class.clone())
                .or_insert(SplitCounts {
                    train: 0,
                    validation: 0,
                });
            match image.split {
                Split::Train => counts.train += 1,
                Split::Validation => counts.validation += 1,
            }
            ids.push(image.id);
        }
        ids.sort_unstable();
        let mut hasher = Sha256::new();
        for id in &ids {
            hasher.update(id.to_be_bytes());
        }
        DataSnapshot {
            class_counts,
            total_images: ids.len() as u64,
            image_set_hash: hex::encode(hasher.finalize()),
        }
    }
}
