//! Records kept by the stores. Plain data: no storage engine types leak out of this crate.

use std::collections::BTreeMap;

use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

pub type Timestamp = DateTime<Utc>;

/// Which part of the data set an image belongs to. Assigned from the content hash, so an image
/// keeps its split forever and a retrain's validation set is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Validation,
}

impl Split {
    /// Deterministic split from a hex SHA-256: the first 8 bytes modulo 100 below
    /// `validation_percent` go to validation.
    pub fn from_hash(sha256_hex: &str, validation_percent: u8) -> Split {
        let prefix = sha256_hex
            .get(..16)
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or(0);
        if prefix % 100 < u64::from(validation_percent) {
            Split::Validation
        } else {
            Split::Train
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
        }
    }
}

/// Metadata of a stored image (its original bytes are kept separately).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: u64,
    pub class: String,
    pub width: u32,
    pub height: u32,
    /// Detected format name (`jpeg`, `png`, ...).
    pub format: String,
    pub content_type: String,
    pub byte_size: u64,
    pub sha256: String,
    /// Where it came from: `upload`, `import` or `demo`.
    pub source: String,
    pub filename: Option<String>,
    pub split: Split,
    pub created_at: Timestamp,
}

/// An image about to be stored.
#[derive(Debug, Clone)]
pub struct NewImage {
    pub class: String,
    pub width: u32,
    pub height: u32,
    pub format: String,
    pub content_type: String,
    pub sha256: String,
    pub source: String,
    pub filename: Option<String>,
    pub split: Split,
    pub created_at: Timestamp,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum InsertOutcome {
    Stored(ImageRecord),
    /// The same content was already stored (possibly under another class).
    Duplicate(ImageRecord),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFilter {
    pub class: Option<String>,
    pub split: Option<Split>,
}

/// 1-based page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub per_page: u32,
}

impl PageRequest {
    pub fn new(page: u32, per_page: u32) -> Self {
        Self {
            page: page.max(1),
            per_page: per_page.clamp(1, 1000),
        }
    }

    pub fn offset(&self) -> usize {
        (self.page as usize - 1) * self.per_page as usize
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// Images of one class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassSummary {
    pub name: String,
    pub images: u64,
    pub train: u64,
    pub validation: u64,
    pub bytes: u64,
}

/// Data-set statistics for the charts; computed from the stored records, so always consistent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetStats {
    pub total_images: u64,
    pub total_bytes: u64,
    pub classes: Vec<ClassSummary>,
    /// `(YYYY-MM-DD, uploads)` in date order.
    pub uploads_per_day: Vec<(String, u64)>,
    pub mean_width: f64,
    pub mean_height: f64,
    pub mean_bytes: f64,
}

impl DatasetStats {
    /// Aggregates image records into the chart statistics.
    pub fn from_records(records: &[ImageRecord]) -> DatasetStats {
        let mut classes: BTreeMap<&str, ClassSummary> = BTreeMap::new();
        let mut per_day: BTreeMap<String, u64> = BTreeMap::new();
        let (mut bytes, mut width, mut height) = (0u64, 0f64, 0f64);
        for record in records {
            let summary = classes
                .entry(&record.class)
                .or_insert_with(|| ClassSummary {
                    name: record.class.clone(),
                    images: 0,
                    train: 0,
                    validation: 0,
                    bytes: 0,
                });
            summary.images += 1;
            summary.bytes += record.byte_size;
            match record.split {
                Split::Train => summary.train += 1,
                Split::Validation => summary.validation += 1,
            }
            *per_day
                .entry(record.created_at.format("%Y-%m-%d").to_string())
                .or_default() += 1;
            bytes += record.byte_size;
            width += f64::from(record.width);
            height += f64::from(record.height);
        }
        let n = records.len().max(1) as f64;
        DatasetStats {
            total_images: records.len() as u64,
            total_bytes: bytes,
            classes: classes.into_values().collect(),
            uploads_per_day: per_day.into_iter().collect(),
            mean_width: width / n,
            mean_height: height / n,
            mean_bytes: bytes as f64 / n,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassProbability {
    pub class: String,
    pub probability: f32,
}

/// A served prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRecord {
    pub id: u64,
    pub created_at: Timestamp,
    pub model_version: u32,
    pub predicted_class: String,
    pub predicted_index: usize,
    pub confidence: f32,
    pub probabilities: Vec<ClassProbability>,
    /// 1 − (top − second probability): how close the call between the two likeliest classes
    /// was (0 for predictions recorded before it existed).
    #[serde(default)]
    pub uncertainty: f32,
    /// Entropy of the probabilities over ln(classes), in [0, 1].
    #[serde(default)]
    pub entropy: f32,
    /// Far from everything the version was trained on (novelty above its threshold).
    #[serde(default)]
    pub out_of_distribution: bool,
    /// Distance from the version's training embeddings, in units of its threshold (1.0 = the
    /// threshold); absent where the version has no reference (versions from before it).
    #[serde(default)]
    pub novelty: Option<f32>,
    /// The class a reviewer gave this prediction's image.
    #[serde(default)]
    pub label: Option<String>,
    pub latency_ms: f64,
    pub image_sha256: String,
    pub filename: Option<String>,
}

/// Number of equal-width confidence buckets kept in the prediction statistics.
pub const CONFIDENCE_BUCKETS: usize = 10;

/// Aggregates over all recorded predictions, maintained as they are written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PredictionStats {
    pub total: u64,
    pub per_class: BTreeMap<String, u64>,
    pub per_model_version: BTreeMap<u32, u64>,
    /// Start of the hour (RFC 3339, UTC) → predictions in that hour.
    pub per_hour: BTreeMap<String, u64>,
    /// `CONFIDENCE_BUCKETS` equal-width buckets over [0, 1].
    pub confidence_histogram: Vec<u64>,
}

impl PredictionStats {
    /// Counts one more prediction in the aggregates.
    pub fn add(&mut self, prediction: &PredictionRecord) {
        self.total += 1;
        *self
            .per_class
            .entry(prediction.predicted_class.clone())
            .or_default() += 1;
        *self
            .per_model_version
            .entry(prediction.model_version)
            .or_default() += 1;
        let hour = prediction
            .created_at
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(prediction.created_at);
        *self
            .per_hour
            .entry(hour.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .or_default() += 1;
        self.confidence_histogram.resize(CONFIDENCE_BUCKETS, 0);
        let bucket = ((prediction.confidence.clamp(0.0, 1.0) * CONFIDENCE_BUCKETS as f32) as usize)
            .min(CONFIDENCE_BUCKETS - 1);
        self.confidence_histogram[bucket] += 1;
    }
}

/// Metrics at the end of one training epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: u32,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub learning_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// Evaluation of a model on the validation split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub examples: u64,
    pub accuracy: f64,
    pub loss: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion_matrix[actual][predicted]`, classes in the version's class order.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// The softmax temperature fitted on the evaluated images, which served probabilities use;
    /// absent for versions from before calibration or scored on too few images.
    #[serde(default)]
    pub calibration: Option<Calibration>,
}

/// Temperature scaling of a version's probabilities (`softmax(ln p / T)`): same top class, honest
/// confidences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub temperature: f64,
    /// What the temperature was fitted on (records from before this field: `validation`).
    #[serde(default)]
    pub fitted_on: CalibrationFit,
    /// How many answers it was fitted on.
    #[serde(default)]
    pub fitted_answers: usize,
    /// Expected calibration error (15 equal-width confidence bins) of the raw probabilities on
    /// the evaluated images.
    pub ece_before: f64,
    /// The same after scaling. When the temperature was fitted on the evaluated images this is
    /// optimistic; the cross-validation (`sprig train --cv`) measures it on images the fit never
    /// saw.
    pub ece_after: f64,
    /// The reliability diagram after scaling.
    pub bins: Vec<ReliabilityBin>,
}

/// What a version's temperature was fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CalibrationFit {
    /// Out-of-fold answers: every image of the version's data scored by a head trained without it.
    OutOfFold,
    /// The evaluated images themselves (versions from before out-of-fold fitting, or too few
    /// images for it).
    #[default]
    Validation,
}

/// One confidence bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: u64,
    /// Mean top-class confidence of the bin's predictions.
    pub confidence: f64,
    /// Share of them that were right.
    pub accuracy: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitCounts {
    pub train: u64,
    pub validation: u64,
}

/// Which data a version was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSnapshot {
    pub class_counts: BTreeMap<String, SplitCounts>,
    pub total_images: u64,
    /// SHA-256 over the sorted image ids used.
    pub image_set_hash: String,
}

/// An immutable trained model version (its weights are stored separately).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersionRecord {
    pub version: u32,
    pub created_at: Timestamp,
    pub backbone: String,
    pub classes: Vec<String>,
    pub hyperparameters: serde_json::Value,
    pub data_snapshot: DataSnapshot,
    pub epochs: Vec<EpochMetrics>,
    pub best_epoch: u32,
    pub duration_ms: u64,
    pub backend: String,
    pub evaluation: Evaluation,
    /// `bootstrap`, `retrain`, `offline` or `import`.
    pub origin: String,
    pub job_id: Option<u64>,
    /// What the version's training data looked like, for out-of-distribution flags and drift;
    /// absent for versions from before it.
    #[serde(default)]
    pub reference: Option<DistributionReference>,
}

/// A version's reference distribution: where its training images' embeddings lie, and what
/// its answers on images it never saw look like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionReference {
    /// Width of the backbone embedding.
    pub embedding_width: u32,
    /// Seed of the fixed Gaussian projection of embeddings to `dims` dimensions.
    pub projection_seed: u64,
    pub dims: u32,
    /// Per class (the version's class order), the mean projected embedding.
    pub class_means: Vec<Vec<f32>>,
    /// Inverse of the shared within-class covariance (shrunk), `dims × dims`, row-major.
    pub precision: Vec<f32>,
    /// The Mahalanobis distance (to the nearest class mean) that is novelty 1.0: the
    /// `threshold_quantile` of the distances of the version's own images, each scored by
    /// statistics fitted without it.
    pub threshold: f32,
    pub threshold_quantile: f64,
    /// Those out-of-sample novelties (in threshold units): what drift resamples.
    pub novelty_samples: Vec<f32>,
    /// Class proportions of the training images.
    pub class_prior: Vec<f64>,
    /// Served (calibrated) confidence and predicted class of each evaluated validation image;
    /// empty when there were too few.
    pub confidence_samples: Vec<f32>,
    pub predicted_samples: Vec<u32>,
}

impl ModelVersionRecord {
    /// The split `evaluation` was scored on (`hyperparameters.evaluation_split`): the
    /// validation split, or the training split when the data set had no validation images.
    pub fn evaluation_split(&self) -> Split {
        match self.hyperparameters["evaluation_split"].as_str() {
            Some("train") => Split::Train,
            _ => Split::Validation,
        }
    }
}

/// A version about to be created (the store assigns the number).
#[derive(Debug, Clone)]
pub struct NewModelVersion {
    pub record: ModelVersionRecord,
    pub artifact: Vec<u8>,
}

/// One entry of the append-only activation log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationRecord {
    pub sequence: u64,
    pub at: Timestamp,
    pub from: Option<u32>,
    pub to: u32,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    /// Stable code, e.g. `interrupted`, `training_failed`, `not_enough_data`.
    pub code: String,
    pub message: String,
}

/// A long-running job (a retrain): what users follow and, the same record, the entry workers
/// claim from the queue. Its `state` is its place in the queue: `queued` (waiting to be
/// claimed) → `running` (claimed by `worker`) → `succeeded` | `failed` | `cancelled`; a claimed
/// job its worker gives up before starting it goes back to `queued`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: u64,
    /// Also the name of the queue its workers claim from.
    pub kind: String,
    pub state: JobState,
    /// The job's arguments, as its handler reads them.
    pub params: serde_json::Value,
    /// The worker that claimed the job last (`kind@host-pid-start`).
    #[serde(default)]
    pub worker: Option<String>,
    /// How many times a worker started the job.
    #[serde(default)]
    pub attempts: u32,
    /// 0–100.
    pub progress: f64,
    pub message: String,
    pub current_epoch: Option<u32>,
    pub total_epochs: Option<u32>,
    pub epochs: Vec<EpochMetrics>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Milliseconds spent per phase (`features`, `training`, `evaluation`, ...).
    pub timings_ms: BTreeMap<String, u64>,
    pub error: Option<JobError>,
    pub model_version: Option<u32>,
    pub cancel_requested: bool,
    /// Backbone feature vectors computed by this run (not found in the cache).
    pub features_computed: Option<u64>,
    /// Feature vectors this run reused from the cache.
    pub features_reused: Option<u64>,
}

impl JobRecord {
    pub fn new(id: u64, kind: &str, params: serde_json::Value, created_at: Timestamp) -> Self {
        Self {
            id,
            kind: kind.to_string(),
            state: JobState::Queued,
            params,
            worker: None,
            attempts: 0,
            progress: 0.0,
            message: "queued".into(),
            current_epoch: None,
            total_epochs: None,
            epochs: Vec::new(),
            created_at,
            started_at: None,
            finished_at: None,
            timings_ms: BTreeMap::new(),
            error: None,
            model_version: None,
            cancel_requested: false,
            features_computed: None,
            features_reused: None,
        }
    }
}

/// How a job's run ended, as its worker reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Succeeded,
    Failed(JobError),
}

impl JobRecord {
    /// A worker starts the job (a claim).
    pub fn start(&mut self, worker: &str, at: Timestamp) {
        self.state = JobState::Running;
        self.worker = Some(worker.to_string());
        self.attempts += 1;
        self.started_at = Some(at);
        self.message = "starting".into();
    }

    /// Back to the queue: claimed, but given up by its worker before it started.
    pub fn return_to_queue(&mut self) {
        self.state = JobState::Queued;
        self.worker = None;
        self.attempts = self.attempts.saturating_sub(1);
        self.started_at = None;
        self.message = "queued".into();
    }

    /// Records how the run ended, unless the job is already finished (its handler may have
    /// written a richer end state itself; a late or repeated report changes nothing).
    pub fn settle(&mut self, outcome: &JobOutcome, at: Timestamp) {
        if self.state.is_terminal() {
            return;
        }
        self.finished_at = Some(at);
        match outcome {
            JobOutcome::Succeeded => {
                self.state = JobState::Succeeded;
                self.progress = 100.0;
                self.message = "succeeded".into();
            }
            JobOutcome::Failed(error) => {
                self.state = JobState::Failed;
                self.message = format!("failed: {}", error.message);
                self.error = Some(error.clone());
            }
        }
    }
}

/// A worker serving the queue of one job kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerRecord {
    pub name: String,
    /// The job kind it claims.
    pub queue: String,
    pub registered_at: Timestamp,
    pub last_seen: Timestamp,
}

/// Key of a cached backbone feature vector: content hash, backbone and augmented view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeatureKey {
    pub sha256: String,
    pub backbone: String,
    pub view: u32,
}

/// A feature vector as stored: little-endian f32s.
pub fn feature_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The inverse of [`feature_bytes`].
pub fn feature_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrations_stored_before_fitted_on_read_as_fitted_on_validation() {
        let old = r#"{"temperature":1.2,"ece_before":0.05,"ece_after":0.02,"bins":[]}"#;
        let read: Calibration = serde_json::from_str(old).unwrap();
        assert_eq!(read.fitted_on, CalibrationFit::Validation);
        let new = r#"{"temperature":1.2,"fitted_on":"out_of_fold","fitted_answers":900,"ece_before":0.05,"ece_after":0.02,"bins":[]}"#;
        let read: Calibration = serde_json::from_str(new).unwrap();
        assert_eq!(read.fitted_on, CalibrationFit::OutOfFold);
        assert!(serde_json::to_string(&read)
            .unwrap()
            .contains(r#""fitted_on":"out_of_fold""#));
    }
}
