//! [`FeatureCache`] on sled: little-endian f32 vectors under `backbone/sha256/view` keys.

use super::SledStore;
use crate::error::Result;
use crate::stores::FeatureCache;
use crate::types::{feature_bytes, feature_values, FeatureKey};

fn feature_key(key: &FeatureKey) -> Vec<u8> {
    format!("{}/{}/{}", key.backbone, key.sha256, key.view).into_bytes()
}

impl FeatureCache for SledStore {
    fn get(&self, key: &FeatureKey) -> Result<Option<Vec<f32>>> {
        Ok(self
            .features
            .get(feature_key(key))?
            .map(|bytes| feature_values(&bytes)))
    }

    fn put(&self, entries: Vec<(FeatureKey, Vec<f32>)>) -> Result<()> {
        let incoming = entries.iter().map(|(_, v)| v.len() as u64 * 4).sum();
        self.reserve.check(incoming)?;
        let mut batch = sled::Batch::default();
        for (key, values) in entries {
            batch.insert(feature_key(&key), feature_bytes(&values));
        }
        Ok(self.features.apply_batch(batch)?)
    }

    fn count(&self) -> Result<u64> {
        Ok(self.features.len() as u64)
    }
}
