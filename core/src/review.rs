//! The review queue (active learning): predicted images worth a person's look are kept, most
//! uncertain first; a label adds the image to the data set, a dismissal drops it.
//!
//! What is kept (`review.keep_images`): `uncertain` (default) keeps predictions whose
//! uncertainty (1 − the margin between the two likeliest classes; see [`crate::uncertainty`])
//! is at least `review.min_uncertainty`, and every out-of-distribution one; `all` keeps every
//! predicted image; `none` keeps nothing. The kept bytes stay within `review.max_bytes`, the
//! oldest evicted first.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sprig_store::{
    Page, PageRequest, PredictionRecord, PredictionStore, ReviewItem, ReviewOutcome, ReviewState,
    ReviewStore, ReviewSummary,
};

use crate::error::{CoreError, Result};
use crate::ingest::{validate_class_name, Ingest, IngestOutcome};

/// Which predicted images are kept for review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepImages {
    Uncertain,
    All,
    None,
}

/// `[review]` in `sprig.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewConfig {
    pub keep_images: KeepImages,
    /// With `uncertain`: the least uncertainty kept. 0.5 keeps answers whose likeliest class
    /// leads the second by less than 0.5 (in the beans held-out photos, about one in eight).
    pub min_uncertainty: f32,
    /// Disk budget of the kept images, in bytes (each distinct image counted once).
    pub max_bytes: u64,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            keep_images: KeepImages::Uncertain,
            min_uncertainty: 0.5,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// A reviewer's decision, as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewDecision {
    Label(String),
    Dismiss,
}

/// The review queue's use cases.
pub struct ReviewQueue {
    reviews: Arc<dyn ReviewStore>,
    predictions: Arc<dyn PredictionStore>,
    ingest: Ingest,
    config: ReviewConfig,
}

impl ReviewQueue {
    pub fn new(
        reviews: Arc<dyn ReviewStore>,
        predictions: Arc<dyn PredictionStore>,
        ingest: Ingest,
        config: ReviewConfig,
    ) -> Self {
        Self {
            reviews,
            predictions,
            ingest,
            config,
        }
    }

    /// Whether a recorded prediction's image is worth keeping.
    pub fn wants(&self, prediction: &PredictionRecord) -> bool {
        prediction.id != 0
            && match self.config.keep_images {
                KeepImages::All => true,
                KeepImages::None => false,
                KeepImages::Uncertain => {
                    prediction.out_of_distribution
                        || prediction.uncertainty >= self.config.min_uncertainty
                }
            }
    }

    /// Keeps the image of a recorded prediction if it is worth it; returns whether it was kept.
    /// Never fails the prediction: a store that refuses (disk full) is logged.
    pub async fn consider(&self, prediction: &PredictionRecord, bytes: Vec<u8>) -> bool {
        if !self.wants(prediction) {
            return false;
        }
        let item = ReviewItem::pending(prediction, bytes.len() as u64);
        let (reviews, max_bytes) = (self.reviews.clone(), self.config.max_bytes);
        match tokio::task::spawn_blocking(move || reviews.keep(item, bytes, max_bytes)).await {
            Ok(Ok(evicted)) => {
                if !evicted.is_empty() {
                    tracing::debug!(count = evicted.len(), "review queue: oldest images evicted");
                }
                !evicted.contains(&prediction.id)
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, prediction = prediction.id, "image not kept for review");
                false
            }
            Err(_) => false,
        }
    }

    /// Pending items, most uncertain first.
    pub fn pending(&self, page: PageRequest) -> Result<Page<ReviewItem>> {
        Ok(self.reviews.pending(page)?)
    }

    /// A kept prediction's item, pending or settled.
    pub fn item(&self, prediction_id: u64) -> Result<Option<ReviewItem>> {
        Ok(self.reviews.get(prediction_id)?)
    }

    /// The kept image of a pending prediction.
    pub fn image(&self, prediction_id: u64) -> Result<Vec<u8>> {
        self.reviews
            .image(prediction_id)?
            .ok_or_else(|| CoreError::not_found("kept prediction image", prediction_id))
    }

    /// Labels (the image joins the data set under that class, as an upload would) or dismisses
    /// a pending prediction.
    pub async fn decide(&self, prediction_id: u64, decision: ReviewDecision) -> Result<ReviewItem> {
        let item = self
            .reviews
            .get(prediction_id)?
            .ok_or_else(|| CoreError::not_found("prediction in the review queue", prediction_id))?;
        if item.state != ReviewState::Pending {
            return Err(CoreError::AlreadyReviewed(prediction_id));
        }
        let outcome = match decision {
            ReviewDecision::Dismiss => ReviewOutcome::Dismissed,
            ReviewDecision::Label(class) => {
                validate_class_name(&class)?;
                let bytes = self.image(prediction_id)?;
                let image = match self
                    .ingest
                    .ingest_async(class.clone(), bytes, item.filename.clone(), "review")
                    .await
                {
                    IngestOutcome::Stored(image) | IngestOutcome::Duplicate(image) => image,
                    IngestOutcome::Rejected(error) => return Err(error),
                };
                ReviewOutcome::Labelled {
                    class,
                    image_id: image.id,
                }
            }
        };
        let (reviews, predictions) = (self.reviews.clone(), self.predictions.clone());
        tokio::task::spawn_blocking(move || {
            let settled = reviews.settle(prediction_id, &outcome)?.ok_or_else(|| {
                CoreError::not_found("prediction in the review queue", prediction_id)
            })?;
            // Another reviewer decided first (between the check above and now).
            let ours = match &outcome {
                ReviewOutcome::Labelled { class, .. } => settled.label.as_ref() == Some(class),
                ReviewOutcome::Dismissed => settled.state == ReviewState::Dismissed,
            };
            if !ours {
                return Err(CoreError::AlreadyReviewed(prediction_id));
            }
            if let Some(class) = &settled.label {
                // The history may have pruned it; the review item keeps the label either way.
                predictions.set_label(prediction_id, class)?;
            }
            Ok(settled)
        })
        .await
        .map_err(|_| CoreError::ShuttingDown)?
    }

    /// Counts, kept bytes and per-version accuracy on labelled predictions.
    pub fn summary(&self) -> Result<ReviewSummary> {
        Ok(self.reviews.summary()?)
    }
}
