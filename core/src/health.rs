//! What monitoring reads: whether the store takes writes, and the counts of what it holds.

use sprig_store::StoreError;

use crate::engine::Engine;
use crate::error::Result;

/// Counts and sizes for the metrics endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    pub image_count: u64,
    pub class_count: u64,
    pub prediction_count: u64,
    pub database_bytes: u64,
    pub retrain_running: bool,
}

impl Engine {
    /// Whether the store takes writes with the free-space reserve left (readiness).
    pub fn check_store(&self) -> std::result::Result<(), StoreError> {
        self.stores.database.check()
    }

    pub fn overview(&self) -> Result<Overview> {
        let images = &self.stores.images;
        Ok(Overview {
            image_count: images.count()?,
            class_count: images.classes()?.len() as u64,
            prediction_count: self.stores.predictions.stats()?.total,
            database_bytes: self.stores.database.size_on_disk()?,
            retrain_running: self.retrain_running()?,
        })
    }
}
