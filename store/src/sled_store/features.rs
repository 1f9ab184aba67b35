//! [`FeatureCache`] on sled: little-endian f32 vectors under `backbone/sha256/view` keys.

use super::SledStore;
use crate::error::Result;
use crate::stores::FeatureCache;
use crate::types::FeatureKey;

fn feature_key(key: &FeatureKey) -> Vec<u8> {
    format!("{}/{}/{}", key.backbone, key.sha256, key.view).into_bytes()
}

impl FeatureCache for SledStore {
    fn get(&self, key: &FeatureKey) -> Result<Option<Vec<f32>>> {
        Ok(self.features.get(feature_key(key))?.map(|bytes| {
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }))
    }

    fn put(&self, entries: Vec<(FeatureKey, Vec<f32>)>) -> Result<()> {
        let incoming = entries.iter().map(|(_, v)| v.len() as u64 * 4).sum();
        self.reserve.check(incoming)?;
        let mut batch = sled::Batch::default();
        for (key, values) in entries {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            batch.insert(feature_key(&key), bytes);
        }
        Ok(self.features.apply_batch(batch)?)
    }

    fn count(&self) -> Result<u64> {
        Ok(self.features.len() as u64)
    }
}
