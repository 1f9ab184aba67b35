//! The feature cache side of a run: backbone features of every (image, view) are looked up in
//! the store's cache by (image hash, backbone, view) and only the missing ones are computed, in
//! batches, and cached for the next run.

use std::collections::BTreeMap;

use sprig_backends::views::{augment, content_seed, MIRROR_VIEW};
use sprig_backends::{decode, FeatureExtractor, PreparedImage, TestTimeViews};
use sprig_store::{FeatureKey, ImageRecord};

use super::config::TrainingConfig;
use super::data_set::DataSet;
use super::{Pipeline, PipelineObserver, FEATURES_SHARE};
use crate::error::{CoreError, Result};

impl Pipeline {
    /// Features of every (image, view) the run needs: from the cache, or computed and cached.
    /// The images `augmented` picks get their augmented views too, the others view 0 only;
    /// every image also gets the configuration's test-time views (the first augmented views,
    /// the mirrored view), which its versions' answers are made of.
    #[allow(clippy::type_complexity)]
    pub(super) fn features(
        &self,
        data: &DataSet,
        config: &TrainingConfig,
        augmented: &dyn Fn(&ImageRecord) -> bool,
        observer: &mut dyn PipelineObserver,
    ) -> Result<(BTreeMap<(u64, u32), Vec<f32>>, usize, usize)> {
        // The cache key's backbone: `{backbone}+{pooling}` for other poolings than the final map.
        let cache_name = config.features().cache_name();
        let backbone = cache_name.as_str();
        let mut features = BTreeMap::new();
        let mut missing: Vec<(&ImageRecord, Vec<u32>)> = Vec::new();
        for (image, _) in &data.images {
            let test_time = config.test_time();
            let views = if augmented(image) {
                config.augment_views.max(test_time.augmented)
            } else {
                test_time.augmented
            };
            let mut absent = Vec::new();
            let mirrored = test_time.flip.then_some(MIRROR_VIEW);
            for view in (0..=views).chain(mirrored) {
                let key = FeatureKey {
                    sha256: image.sha256.clone(),
                    backbone: backbone.into(),
                    view,
                };
                match self.stores.features.get(&key)? {
                    Some(vector) => {
                        features.insert((image.id, view), vector);
                    }
                    None => absent.push(view),
                }
            }
            if !absent.is_empty() {
                missing.push((image, absent));
            }
        }
        let reused = features.len();
        let total_missing: usize = missing.iter().map(|(_, views)| views.len()).sum();
        if total_missing == 0 {
            observer.progress(
                FEATURES_SHARE,
                &format!("all {reused} feature vectors found in the cache"),
            );
            return Ok((features, 0, reused));
        }

        let extractor = self.plugin.feature_extractor(config.features())?;
        let mut queue: Vec<(&ImageRecord, u32, PreparedImage)> = Vec::new();
        let mut computed = 0;
        for (image, views) in missing {
            let bytes = self
                .stores
                .images
                .content(image.id)?
                .ok_or_else(|| CoreError::not_found("image content", image.id))?;
            let decoded = decode(&bytes, &self.decode_limits)?;
            let seed = content_seed(&image.sha256);
            for view in views {
                queue.push((image, view, augment(&decoded.rgb, seed, view)));
            }
            while queue.len() >= config.feature_batch_size.max(1) {
                let batch: Vec<_> = queue.drain(..config.feature_batch_size.max(1)).collect();
                computed += self.extract(extractor.as_ref(), backbone, batch, &mut features)?;
                self.report_features(observer, computed, total_missing)?;
            }
        }
        if !queue.is_empty() {
            computed += self.extract(extractor.as_ref(), backbone, queue, &mut features)?;
            self.report_features(observer, computed, total_missing)?;
        }
        Ok((features, computed, reused))
    }

    fn report_features(
        &self,
        observer: &mut dyn PipelineObserver,
        done: usize,
        total: usize,
    ) -> Result<()> {
        if observer.cancelled() {
            return Err(CoreError::Backend(sprig_backends::BackendError::Cancelled));
        }
        observer.progress(
            FEATURES_SHARE * done as f64 / total as f64,
            &format!("computing backbone features {done}/{total}"),
        );
        Ok(())
    }

    fn extract(
        &self,
        extractor: &dyn FeatureExtractor,
        backbone: &str,
        batch: Vec<(&ImageRecord, u32, PreparedImage)>,
        features: &mut BTreeMap<(u64, u32), Vec<f32>>,
    ) -> Result<usize> {
        let images: Vec<PreparedImage> = batch.iter().map(|(_, _, image)| image.clone()).collect();
        let vectors = extractor.features(&images)?;
        let mut entries = Vec::with_capacity(batch.len());
        for ((image, view, _), vector) in batch.iter().zip(vectors) {
            entries.push((
                FeatureKey {
                    sha256: image.sha256.clone(),
                    backbone: backbone.into(),
                    view: *view,
                },
                vector.clone(),
            ));
            features.insert((image.id, *view), vector);
        }
        self.stores.features.put(entries)?;
        Ok(batch.len())
    }
}

/// The row a classifier reads for an image, from the cached features: its plain view's followed
/// by each of the test-time views' (`views`) — the layout the classifier's `features` computes.
pub(super) fn served_row(
    features: &BTreeMap<(u64, u32), Vec<f32>>,
    image: u64,
    views: TestTimeViews,
) -> Vec<f32> {
    let mut row = features[&(image, 0)].clone();
    for view in views.extra() {
        row.extend_from_slice(&features[&(image, view)]);
    }
    row
}
