//! Closing the data loop, as users see it: the review queue and drift, through the engine.

use sprig_store::{Page, PageRequest, PredictionRecord, ReviewItem, ReviewSummary};

use crate::drift::{DriftReport, MAX_TIME_WINDOW};
use crate::engine::Engine;
use crate::error::Result;
use crate::review::ReviewDecision;

/// Predictions read per page while collecting the drift windows.
const PAGE: u32 = 500;

impl Engine {
    /// Kept predictions waiting for review, most uncertain first.
    pub fn review_queue(&self, page: PageRequest) -> Result<Page<ReviewItem>> {
        self.review.pending(page)
    }

    /// The kept image of a prediction waiting for review.
    pub fn prediction_image(&self, prediction_id: u64) -> Result<Vec<u8>> {
        self.review.image(prediction_id)
    }

    /// Labels or dismisses a prediction waiting for review.
    pub async fn review(&self, prediction_id: u64, decision: ReviewDecision) -> Result<ReviewItem> {
        self.review.decide(prediction_id, decision).await
    }

    pub fn review_summary(&self) -> Result<ReviewSummary> {
        self.review.summary()
    }

    /// Drift of recent traffic against the active version, with the history (blocking: reads
    /// the recent predictions).
    pub fn drift(&self) -> Result<DriftReport> {
        let config = self.drift.config();
        let cutoff =
            chrono::Utc::now() - chrono::Duration::minutes(i64::from(config.window_minutes));
        let wanted = config.window.max(1);
        let model = self.registry.current();
        let version = model.as_ref().map(|m| m.version());
        let mut recent: Vec<PredictionRecord> = Vec::new();
        let (mut page, mut ours) = (1, 0usize);
        // Newest first, until both windows are complete or the history ends.
        loop {
            let batch = self.stores.predictions.list(PageRequest::new(page, PAGE))?;
            let end = batch.items.len() < PAGE as usize
                || u64::from(page) * u64::from(PAGE) >= batch.total;
            let past_cutoff = batch.items.last().is_some_and(|p| p.created_at < cutoff);
            // Offsets move while predictions arrive: skip what an earlier page had.
            let oldest = recent.last().map_or(u64::MAX, |p| p.id);
            for prediction in batch.items.into_iter().filter(|p| p.id < oldest) {
                ours += usize::from(Some(prediction.model_version) == version);
                recent.push(prediction);
            }
            if end || (past_cutoff && ours >= wanted) || ours >= wanted.max(MAX_TIME_WINDOW) {
                break;
            }
            page += 1;
        }
        let mut report = self.drift.report(
            model
                .as_ref()
                .map(|m| (m.version(), m.record.reference.as_ref())),
            &recent,
        );
        report.history = self.drift.history();
        Ok(report)
    }

    /// Computes the drift report and adds it to the history (the server calls this every
    /// `drift.interval_secs`).
    pub fn sample_drift(&self) -> Result<DriftReport> {
        let mut report = self.drift()?;
        self.drift.remember(&report);
        report.history = self.drift.history();
        Ok(report)
    }
}
