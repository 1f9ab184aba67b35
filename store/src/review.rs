//! What the review queue keeps: predicted images a person should look at, and what they said.

use serde::{Deserialize, Serialize};

use crate::types::{ClassProbability, PredictionRecord, Timestamp};

/// Where a kept prediction is in review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    /// In the queue, its image kept.
    Pending,
    /// A reviewer gave its class; the image joined the data set.
    Labelled,
    /// A reviewer dropped it.
    Dismissed,
}

/// A prediction kept for review: what the model said, and (once reviewed) what a person said.
/// The image bytes are kept while it is pending, shared by items with the same content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub prediction_id: u64,
    /// When the prediction was made.
    pub created_at: Timestamp,
    pub model_version: u32,
    pub predicted_class: String,
    pub probabilities: Vec<ClassProbability>,
    pub uncertainty: f32,
    pub entropy: f32,
    pub out_of_distribution: bool,
    pub novelty: Option<f32>,
    pub image_sha256: String,
    pub size_bytes: u64,
    pub filename: Option<String>,
    pub state: ReviewState,
    /// The class a reviewer gave.
    pub label: Option<String>,
    /// The data-set image the label added (or found, when the bytes were already there).
    pub image_id: Option<u64>,
    pub reviewed_at: Option<Timestamp>,
}

impl ReviewItem {
    /// A pending item for a recorded prediction of an image of `size_bytes`.
    pub fn pending(prediction: &PredictionRecord, size_bytes: u64) -> Self {
        Self {
            prediction_id: prediction.id,
            created_at: prediction.created_at,
            model_version: prediction.model_version,
            predicted_class: prediction.predicted_class.clone(),
            probabilities: prediction.probabilities.clone(),
            uncertainty: prediction.uncertainty,
            entropy: prediction.entropy,
            out_of_distribution: prediction.out_of_distribution,
            novelty: prediction.novelty,
            image_sha256: prediction.image_sha256.clone(),
            size_bytes,
            filename: prediction.filename.clone(),
            state: ReviewState::Pending,
            label: None,
            image_id: None,
            reviewed_at: None,
        }
    }

    /// Applies a reviewer's decision to a pending item (a settled one stays as it is).
    pub fn settle(&mut self, outcome: &ReviewOutcome, at: Timestamp) {
        if self.state != ReviewState::Pending {
            return;
        }
        match outcome {
            ReviewOutcome::Labelled { class, image_id } => {
                self.state = ReviewState::Labelled;
                self.label = Some(class.clone());
                self.image_id = Some(*image_id);
            }
            ReviewOutcome::Dismissed => self.state = ReviewState::Dismissed,
        }
        self.reviewed_at = Some(at);
    }

    /// The queue's order: most uncertain first, then newest first. Big-endian bytes that sort
    /// ascending in that order (uncertainty is in [0, 1], so its bits order like its value).
    pub fn rank_key(&self) -> [u8; 12] {
        let mut key = [0u8; 12];
        let bits = self.uncertainty.clamp(0.0, 1.0).to_bits();
        key[..4].copy_from_slice(&(u32::MAX - bits).to_be_bytes());
        key[4..].copy_from_slice(&(u64::MAX - self.prediction_id).to_be_bytes());
        key
    }
}

/// A reviewer's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewOutcome {
    Labelled { class: String, image_id: u64 },
    Dismissed,
}

/// How a model version did on the predictions reviewers labelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewedAccuracy {
    pub model_version: u32,
    pub labelled: u64,
    /// Labelled with the class the version predicted.
    pub agreed: u64,
}

/// The queue's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewSummary {
    pub pending: u64,
    /// Bytes of the kept images (each distinct content once).
    pub kept_bytes: u64,
    pub labelled: u64,
    pub dismissed: u64,
    /// Pending items dropped to stay within the disk budget, ever.
    pub evicted: u64,
    /// Per version, oldest first.
    pub accuracy: Vec<ReviewedAccuracy>,
}

impl ReviewSummary {
    /// Adds a settled item's counts.
    pub fn count_settled(&mut self, item: &ReviewItem) {
        match item.state {
            ReviewState::Pending => return,
            ReviewState::Dismissed => {
                self.dismissed += 1;
                return;
            }
            ReviewState::Labelled => self.labelled += 1,
        }
        let index = match self
            .accuracy
            .binary_search_by_key(&item.model_version, |a| a.model_version)
        {
            Ok(index) => index,
            Err(index) => {
                self.accuracy.insert(
                    index,
                    ReviewedAccuracy {
                        model_version: item.model_version,
                        labelled: 0,
                        agreed: 0,
                    },
                );
                index
            }
        };
        let entry = &mut self.accuracy[index];
        entry.labelled += 1;
        if item.label.as_deref() == Some(item.predicted_class.as_str()) {
            entry.agreed += 1;
        }
    }
}
