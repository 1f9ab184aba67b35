//! Predictions as users see them: classifying through the engine, the recorded history and its
//! aggregates, and retention (the serving itself lives in [`crate::predict`]).

use sprig_store::{Page, PageRequest, PredictionRecord, PredictionStats};

use crate::engine::Engine;
use crate::error::Result;

impl Engine {
    /// Classifies one image with the active version (or a canary's candidate) and records the
    /// prediction. `client`, a caller's stable id, keeps it on one side of a canary.
    pub async fn predict(
        &self,
        bytes: Vec<u8>,
        filename: Option<String>,
        client: Option<&str>,
    ) -> Result<PredictionRecord> {
        self.predictor.predict(bytes, filename, client).await
    }

    /// Classifies many images (each `(file name, bytes or why they could not be read)`),
    /// answering in order; one bad image does not fail the others.
    pub async fn predict_many(
        &self,
        files: Vec<(Option<String>, Result<Vec<u8>>)>,
        client: Option<&str>,
    ) -> Vec<Result<PredictionRecord>> {
        self.predictor.predict_many(files, client).await
    }

    /// Recorded predictions, newest first.
    pub fn predictions(&self, page: PageRequest) -> Result<Page<PredictionRecord>> {
        Ok(self.stores.predictions.list(page)?)
    }

    /// Aggregates over every prediction served (kept in the history or not).
    pub fn prediction_stats(&self) -> Result<PredictionStats> {
        Ok(self.stores.predictions.stats()?)
    }

    /// Applies the retention policy (blocking); returns how many predictions were deleted.
    pub fn prune_predictions(&self) -> Result<u64> {
        self.predictor.prune_history()
    }

    /// Requests waiting for an inference worker.
    pub fn inference_queue_depth(&self) -> usize {
        self.predictor.queued()
    }
}
