//! Request and response bodies of the HTTP API (the OpenAPI schemas are generated from these).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::payload::Binary;
use poem_openapi::types::multipart::Upload;
use poem_openapi::types::Example;
use poem_openapi::{ApiRequest, Enum, Multipart, Object};
use serde_json::json;
use sprig_store::{
    ActivationRecord, ClassSummary, DatasetStats, EpochMetrics, Evaluation, ImageRecord, JobRecord,
    JobState, ModelVersionRecord, Page, PageRequest, PredictionRecord, PredictionStats, Split,
    CONFIDENCE_BUCKETS,
};

use super::error::ErrorDetail;

// ---------- predict ----------

/// `multipart/form-data` with one image in the field `file` (other fields are refused).
#[derive(Debug, Multipart)]
#[oai(deny_unknown_fields)]
pub struct PredictForm {
    /// The image (JPEG, PNG, GIF, BMP or WebP; judged by content).
    pub file: ImagePart,
}

/// A multipart file read into memory rather than spooled to a temp file like [`Upload`]: on the
/// single-image predict path a temp file per request costs more than the image, whose size the
/// route's body limit bounds. Same schema as `Upload` (a binary string).
pub struct ImagePart {
    pub file_name: Option<String>,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for ImagePart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagePart")
            .field("file_name", &self.file_name)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl poem_openapi::types::Type for ImagePart {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        "string_binary".into()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        poem_openapi::registry::MetaSchemaRef::Inline(Box::new(
            poem_openapi::registry::MetaSchema::new_with_format("string", "binary"),
        ))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl poem_openapi::types::ParseFromMultipartField for ImagePart {
    async fn parse_from_multipart(
        field: Option<poem::web::Field>,
    ) -> poem_openapi::types::ParseResult<Self> {
        let field = field.ok_or_else(poem_openapi::types::ParseError::expected_input)?;
        let file_name = field.file_name().map(String::from);
        let bytes = field
            .bytes()
            .await
            .map_err(poem_openapi::types::ParseError::custom)?;
        Ok(Self { file_name, bytes })
    }
}

/// `multipart/form-data` with the images in repeated `files` fields (other fields are refused).
#[derive(Debug, Multipart)]
#[oai(deny_unknown_fields)]
pub struct BatchPredictForm {
    /// The images, one per `files` field; results come back in the same order.
    #[oai(validator(min_items = 1))]
    pub files: Vec<Upload>,
}

// Each image-carrying operation also takes the image as a raw `application/octet-stream` body:
// some client generators (progenitor, used for the Rust client) cannot build multipart forms, and
// a raw body is the one file-upload shape every generator supports.

/// The image: a `multipart/form-data` form with the image in the field `file`, or the image's
/// bytes as an `application/octet-stream` body (name it with the `filename` query parameter).
#[derive(ApiRequest)]
pub enum PredictBody {
    Multipart(PredictForm),
    #[oai(content_type = "application/octet-stream")]
    Raw(Binary<Vec<u8>>),
}

/// The images: a `multipart/form-data` form with repeated `files` fields, or one image's bytes as
/// an `application/octet-stream` body (a batch of one; name it with the `filename` query parameter).
#[derive(ApiRequest)]
pub enum BatchPredictBody {
    Multipart(BatchPredictForm),
    #[oai(content_type = "application/octet-stream")]
    Raw(Binary<Vec<u8>>),
}

/// One prediction — the original project's JSON plus `model_version`, `prediction_id` and `latency_ms`.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct PredictResponse {
    pub success: bool,
    pub predicted_class: String,
    pub predicted_index: u64,
    /// Probability of the predicted class.
    pub confidence: f64,
    /// Probability per class.
    pub probabilities: BTreeMap<String, f64>,
    pub filename: Option<String>,
    /// When the prediction was made (UTC, RFC 3339).
    pub timestamp: DateTime<Utc>,
    /// The model version that answered.
    pub model_version: u32,
    /// The prediction's id in the history (`GET /api/predictions`); 0 when the answer could not
    /// be recorded (the store refused the write, e.g. disk full; counted in
    /// `sprig_predictions_unrecorded_total`). Ids start at 1.
    pub prediction_id: u64,
    /// Server-side time from receiving the image to the answer.
    pub latency_ms: f64,
}

impl Example for PredictResponse {
    fn example() -> Self {
        Self {
            success: true,
            predicted_class: "bean_rust".into(),
            predicted_index: 1,
            confidence: 0.9523,
            probabilities: [
                ("angular_leaf_spot", 0.0301),
                ("bean_rust", 0.9523),
                ("healthy", 0.0176),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            filename: Some("leaf.jpg".into()),
            timestamp: DateTime::from_timestamp(1_764_066_600, 0).unwrap_or_default(),
            model_version: 3,
            prediction_id: 1042,
            latency_ms: 24.7,
        }
    }
}

impl From<&PredictionRecord> for PredictResponse {
    fn from(p: &PredictionRecord) -> Self {
        Self {
            success: true,
            predicted_class: p.predicted_class.clone(),
            predicted_index: p.predicted_index as u64,
            confidence: f64::from(p.confidence),
            probabilities: p
                .probabilities
                .iter()
                .map(|c| (c.class.clone(), f64::from(c.probability)))
                .collect(),
            filename: p.filename.clone(),
            timestamp: p.created_at,
            model_version: p.model_version,
            prediction_id: p.id,
            latency_ms: p.latency_ms,
        }
    }
}

/// The result for one file of a batch: a prediction or an error.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BatchItem {
    /// Position of the file in the request.
    pub index: u64,
    pub filename: Option<String>,
    pub success: bool,
    pub prediction: Option<PredictResponse>,
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct BatchPredictResponse {
    /// True when every file was predicted.
    pub success: bool,
    pub succeeded: u64,
    pub failed: u64,
    pub results: Vec<BatchItem>,
}

impl Example for BatchPredictResponse {
    fn example() -> Self {
        Self {
            success: false,
            succeeded: 1,
            failed: 1,
            results: vec![
                BatchItem {
                    index: 0,
                    filename: Some("leaf.jpg".into()),
                    success: true,
                    prediction: Some(PredictResponse::example()),
                    error: None,
                },
                BatchItem {
                    index: 1,
                    filename: Some("notes.txt".into()),
                    success: false,
                    prediction: None,
                    error: Some(ErrorDetail::example()),
                },
            ],
        }
    }
}

/// Defines a page type of a listing (named per item type, as clients see it) and its
/// construction from a store page.
macro_rules! page_type {
    ($name:ident, $item:ty) => {
        /// One page of a listing (`page` is 1-based; `total` counts every match).
        #[derive(Debug, Clone, Object)]
        pub struct $name {
            pub items: Vec<$item>,
            pub page: u32,
            pub per_page: u32,
            pub total: u64,
        }

        impl $name {
            pub fn new<R>(
                request: PageRequest,
                page: Page<R>,
                convert: impl Fn(R) -> $item,
            ) -> Self {
                Self {
                    items: page.items.into_iter().map(convert).collect(),
                    page: request.page,
                    per_page: request.per_page,
                    total: page.total,
                }
            }
        }
    };
}

page_type!(PredictionPage, PredictResponse);
page_type!(ImagePage, ImageInfo);
page_type!(JobPage, JobInfo);

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct HourCount {
    /// Start of the hour (UTC).
    pub hour: String,
    pub count: u64,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ConfidenceBucket {
    pub lower: f64,
    pub upper: f64,
    pub count: u64,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PredictionStatsResponse {
    pub total: u64,
    /// Predictions per predicted class.
    pub per_class: BTreeMap<String, u64>,
    /// Predictions per model version (keys are version numbers).
    pub per_model_version: BTreeMap<String, u64>,
    /// Predictions per hour, oldest first.
    pub per_hour: Vec<HourCount>,
    /// Confidence histogram in equal-width buckets over [0, 1].
    pub confidence_histogram: Vec<ConfidenceBucket>,
}

impl From<PredictionStats> for PredictionStatsResponse {
    fn from(s: PredictionStats) -> Self {
        let width = 1.0 / CONFIDENCE_BUCKETS as f64;
        Self {
            total: s.total,
            per_class: s.per_class,
            per_model_version: s
                .per_model_version
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            per_hour: s
                .per_hour
                .into_iter()
                .map(|(hour, count)| HourCount { hour, count })
                .collect(),
            confidence_histogram: s
                .confidence_histogram
                .iter()
                .enumerate()
                .map(|(i, &count)| ConfidenceBucket {
                    lower: i as f64 * width,
                    upper: (i + 1) as f64 * width,
                    count,
                })
                .collect(),
        }
    }
}

// ---------- images ----------

/// `multipart/form-data`: a `class` field and one or more `files`. Other fields are refused.
#[derive(Debug, Multipart)]
#[oai(deny_unknown_fields)]
pub struct UploadForm {
    /// Class name: 1-64 of a-z, 0-9, `_`, `-`, starting with a letter or digit. Created on first use.
    pub class: String,
    /// The images.
    #[oai(validator(min_items = 1))]
    pub files: Vec<Upload>,
}

/// The labelled images: a `multipart/form-data` form with a `class` field and repeated `files`
/// fields, or one image's bytes as an `application/octet-stream` body with the class in the
/// `class` query parameter (and the file name in `filename`).
#[derive(ApiRequest)]
pub enum UploadBody {
    Multipart(UploadForm),
    #[oai(content_type = "application/octet-stream")]
    Raw(Binary<Vec<u8>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum SplitName {
    Train,
    Validation,
}

impl From<Split> for SplitName {
    fn from(split: Split) -> Self {
        match split {
            Split::Train => SplitName::Train,
            Split::Validation => SplitName::Validation,
        }
    }
}

impl From<SplitName> for Split {
    fn from(split: SplitName) -> Self {
        match split {
            SplitName::Train => Split::Train,
            SplitName::Validation => Split::Validation,
        }
    }
}

/// Metadata of a stored image. Its `split` is assigned from the content hash, so it never changes.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct ImageInfo {
    pub id: u64,
    pub class: String,
    pub width: u32,
    pub height: u32,
    /// Detected format (`jpeg`, `png`, `gif`, `bmp`, `webp`).
    pub format: String,
    pub content_type: String,
    pub byte_size: u64,
    /// SHA-256 of the original bytes.
    pub sha256: String,
    /// `upload`, `import` or `demo`.
    pub source: String,
    pub filename: Option<String>,
    // Described on the struct: a described reference becomes `allOf: [$ref, {description}]`,
    // which some generators (openapi-python-client) cannot read for enums.
    pub split: SplitName,
    pub created_at: DateTime<Utc>,
}

impl Example for ImageInfo {
    fn example() -> Self {
        Self {
            id: 61,
            class: "bean_rust".into(),
            width: 500,
            height: 500,
            format: "jpeg".into(),
            content_type: "image/jpeg".into(),
            byte_size: 48_213,
            sha256: "9f2c0e4b1d6a8c3e5f7a9b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e".into(),
            source: "upload".into(),
            filename: Some("leaf.jpg".into()),
            split: SplitName::Train,
            created_at: DateTime::from_timestamp(1_764_066_600, 0).unwrap_or_default(),
        }
    }
}

impl From<ImageRecord> for ImageInfo {
    fn from(r: ImageRecord) -> Self {
        Self {
            id: r.id,
            class: r.class,
            width: r.width,
            height: r.height,
            format: r.format,
            content_type: r.content_type,
            byte_size: r.byte_size,
            sha256: r.sha256,
            source: r.source,
            filename: r.filename,
            split: r.split.into(),
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum UploadStatus {
    Stored,
    Duplicate,
    Rejected,
}

/// What happened to one uploaded file: `image` is the stored image (for `duplicate`: the image
/// that already had this content); `error` says why a `rejected` file was rejected.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UploadItem {
    pub index: u64,
    pub filename: Option<String>,
    pub status: UploadStatus,
    // `image` and `error` are described on the struct (see `ImageInfo::split`).
    pub image: Option<ImageInfo>,
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct UploadResponse {
    /// True when no file was rejected.
    pub success: bool,
    pub class: String,
    pub stored: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// One item per file, in request order.
    pub items: Vec<UploadItem>,
}

impl Example for UploadResponse {
    fn example() -> Self {
        let rejected = ErrorDetail {
            code: "corrupt_image".into(),
            message: "the image could not be decoded".into(),
            job_id: None,
        };
        Self {
            success: false,
            class: "bean_rust".into(),
            stored: 1,
            duplicates: 0,
            rejected: 1,
            items: vec![
                UploadItem {
                    index: 0,
                    filename: Some("leaf.jpg".into()),
                    status: UploadStatus::Stored,
                    image: Some(ImageInfo::example()),
                    error: None,
                },
                UploadItem {
                    index: 1,
                    filename: Some("broken.jpg".into()),
                    status: UploadStatus::Rejected,
                    image: None,
                    error: Some(rejected),
                },
            ],
        }
    }
}

/// Body of `PATCH /api/images/{id}`.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example, deny_unknown_fields)]
pub struct RelabelRequest {
    /// The new class name.
    pub class: String,
}

impl Example for RelabelRequest {
    fn example() -> Self {
        Self {
            class: "healthy".into(),
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DeletedImage {
    pub success: bool,
    pub deleted: ImageInfo,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DeletedClass {
    pub success: bool,
    pub class: String,
    /// Images deleted.
    pub deleted: u64,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ClassInfo {
    pub name: String,
    pub images: u64,
    pub train: u64,
    pub validation: u64,
    pub bytes: u64,
}

impl From<ClassSummary> for ClassInfo {
    fn from(c: ClassSummary) -> Self {
        Self {
            name: c.name,
            images: c.images,
            train: c.train,
            validation: c.validation,
            bytes: c.bytes,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ClassList {
    pub classes: Vec<ClassInfo>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DayCount {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub count: u64,
}

/// Data-set statistics for the distribution charts.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DatasetStatsResponse {
    pub total_images: u64,
    pub total_bytes: u64,
    pub mean_width: f64,
    pub mean_height: f64,
    pub mean_bytes: f64,
    /// Images per class and split.
    pub classes: Vec<ClassInfo>,
    pub uploads_per_day: Vec<DayCount>,
}

impl From<DatasetStats> for DatasetStatsResponse {
    fn from(s: DatasetStats) -> Self {
        Self {
            total_images: s.total_images,
            total_bytes: s.total_bytes,
            mean_width: s.mean_width,
            mean_height: s.mean_height,
            mean_bytes: s.mean_bytes,
            classes: s.classes.into_iter().map(Into::into).collect(),
            uploads_per_day: s
                .uploads_per_day
                .into_iter()
                .map(|(date, count)| DayCount { date, count })
                .collect(),
        }
    }
}

// ---------- jobs ----------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum BackboneName {
    MobilenetV2,
    EfficientnetLite0,
}

impl From<sprig_backends::BackboneKind> for BackboneName {
    fn from(kind: sprig_backends::BackboneKind) -> Self {
        match kind {
            sprig_backends::BackboneKind::MobilenetV2 => BackboneName::MobilenetV2,
            sprig_backends::BackboneKind::EfficientnetLite0 => BackboneName::EfficientnetLite0,
        }
    }
}

impl From<BackboneName> for sprig_backends::BackboneKind {
    fn from(name: BackboneName) -> Self {
        match name {
            BackboneName::MobilenetV2 => sprig_backends::BackboneKind::MobilenetV2,
            BackboneName::EfficientnetLite0 => sprig_backends::BackboneKind::EfficientnetLite0,
        }
    }
}

/// Body of `POST /api/retrain`; every field is optional (defaults come from the config).
#[derive(Debug, Clone, Default, Object)]
#[oai(skip_serializing_if_is_none, example, deny_unknown_fields)]
pub struct RetrainRequest {
    pub backbone: Option<BackboneName>,
    /// Maximum epochs (early stopping may end sooner).
    #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
    pub epochs: Option<u32>,
    #[oai(validator(minimum(value = "0", exclusive), maximum(value = "1")))]
    pub learning_rate: Option<f64>,
    /// Extra augmented views per training image (flip, rotation, zoom, shift).
    #[oai(validator(minimum(value = "0"), maximum(value = "16")))]
    pub augment_views: Option<u32>,
    /// Also run phase 2: fine-tune the last backbone blocks (default: on with a GPU backend,
    /// off on CPU, where it takes minutes).
    pub fine_tune: Option<bool>,
    // Undocumented here on purpose: a described reference becomes an `allOf`, which generated
    // clients (openapi-python-client) cannot take for an enum; the enum carries the description.
    pub activation_policy: Option<ActivationPolicyName>,
}

/// Whether the new version replaces the active one, for this retrain only (default:
/// `training.activation_policy`); recorded in the version's hyperparameters. `manual` trains
/// without switching: activate it later with `POST /api/models/{version}/activate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ActivationPolicyName {
    /// Always activate the new version.
    Always,
    /// Activate unless its validation macro-F1 is worse than the active version's by more than
    /// `training.activation_tolerance`.
    IfBetter,
    /// Keep the active version; activate by hand.
    Manual,
}

impl From<ActivationPolicyName> for sprig_core::ActivationPolicy {
    fn from(name: ActivationPolicyName) -> Self {
        match name {
            ActivationPolicyName::Always => Self::Always,
            ActivationPolicyName::IfBetter => Self::IfBetter,
            ActivationPolicyName::Manual => Self::Manual,
        }
    }
}

impl Example for RetrainRequest {
    fn example() -> Self {
        Self {
            backbone: Some(BackboneName::MobilenetV2),
            epochs: Some(30),
            learning_rate: Some(0.0001),
            augment_views: Some(2),
            fine_tune: Some(false),
            activation_policy: Some(ActivationPolicyName::IfBetter),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum JobStateName {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl From<JobState> for JobStateName {
    fn from(state: JobState) -> Self {
        match state {
            JobState::Queued => JobStateName::Queued,
            JobState::Running => JobStateName::Running,
            JobState::Succeeded => JobStateName::Succeeded,
            JobState::Failed => JobStateName::Failed,
            JobState::Cancelled => JobStateName::Cancelled,
        }
    }
}

/// Metrics at the end of one epoch.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EpochInfo {
    pub epoch: u32,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub learning_rate: f64,
}

impl From<&EpochMetrics> for EpochInfo {
    fn from(e: &EpochMetrics) -> Self {
        Self {
            epoch: e.epoch,
            train_loss: e.train_loss,
            train_accuracy: e.train_accuracy,
            val_loss: e.val_loss,
            val_accuracy: e.val_accuracy,
            learning_rate: e.learning_rate,
        }
    }
}

/// A job's state, progress and metrics so far. Also the payload of each server-sent event.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct JobInfo {
    pub id: u64,
    /// `retrain`.
    pub kind: String,
    pub state: JobStateName,
    /// 0-100.
    pub progress: f64,
    pub message: String,
    /// The request's overrides.
    pub params: serde_json::Value,
    pub current_epoch: Option<u32>,
    pub total_epochs: Option<u32>,
    pub epochs: Vec<EpochInfo>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Milliseconds per phase.
    pub timings_ms: BTreeMap<String, u64>,
    pub error: Option<ErrorDetail>,
    /// The version this job created.
    pub model_version: Option<u32>,
    pub cancel_requested: bool,
    /// Backbone feature vectors computed (not found in the cache).
    pub features_computed: Option<u64>,
    /// Feature vectors reused from the cache.
    pub features_reused: Option<u64>,
}

impl Example for JobInfo {
    fn example() -> Self {
        let at =
            |seconds: i64| DateTime::from_timestamp(1_764_066_600 + seconds, 0).unwrap_or_default();
        Self {
            id: 7,
            kind: "retrain".into(),
            state: JobStateName::Running,
            progress: 62.5,
            message: "training the head: epoch 2/3".into(),
            params: json!({"epochs": 3}),
            current_epoch: Some(2),
            total_epochs: Some(3),
            epochs: vec![EpochInfo {
                epoch: 1,
                train_loss: 0.912,
                train_accuracy: 0.64,
                val_loss: Some(0.801),
                val_accuracy: Some(0.7),
                learning_rate: 0.0001,
            }],
            created_at: at(0),
            started_at: Some(at(1)),
            finished_at: None,
            timings_ms: [("features_ms".to_string(), 1840)].into_iter().collect(),
            error: None,
            model_version: None,
            cancel_requested: false,
            features_computed: Some(12),
            features_reused: Some(60),
        }
    }
}

impl From<&JobRecord> for JobInfo {
    fn from(j: &JobRecord) -> Self {
        Self {
            id: j.id,
            kind: j.kind.clone(),
            state: j.state.into(),
            progress: j.progress,
            message: j.message.clone(),
            params: j.params.clone(),
            current_epoch: j.current_epoch,
            total_epochs: j.total_epochs,
            epochs: j.epochs.iter().map(Into::into).collect(),
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            timings_ms: j.timings_ms.clone(),
            error: j.error.as_ref().map(|e| ErrorDetail {
                code: e.code.clone(),
                message: e.message.clone(),
                job_id: Some(j.id),
            }),
            model_version: j.model_version,
            cancel_requested: j.cancel_requested,
            features_computed: j.features_computed,
            features_reused: j.features_reused,
        }
    }
}

/// Answer to `POST /api/retrain`.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct RetrainAccepted {
    pub success: bool,
    pub job_id: u64,
    /// Where to poll the job.
    pub status_url: String,
    /// Where to stream its events.
    pub events_url: String,
    pub job: JobInfo,
}

impl Example for RetrainAccepted {
    fn example() -> Self {
        Self {
            success: true,
            job_id: 7,
            status_url: "/api/jobs/7".into(),
            events_url: "/api/jobs/7/events".into(),
            job: JobInfo {
                state: JobStateName::Queued,
                progress: 0.0,
                message: "queued".into(),
                current_epoch: None,
                epochs: vec![],
                started_at: None,
                timings_ms: BTreeMap::new(),
                features_computed: None,
                features_reused: None,
                ..JobInfo::example()
            },
        }
    }
}

/// The original project's retrain status, plus the job id and state.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct RetrainStatus {
    pub is_running: bool,
    /// 0-100.
    pub progress: u32,
    pub message: String,
    /// When the last retrain finished successfully.
    pub last_retrain_time: Option<DateTime<Utc>>,
    /// The latest retrain job, if any.
    pub job_id: Option<u64>,
    pub state: Option<JobStateName>,
}

impl Example for RetrainStatus {
    fn example() -> Self {
        Self {
            is_running: true,
            progress: 62,
            message: "training the head: epoch 2/3".into(),
            last_retrain_time: DateTime::from_timestamp(1_763_980_200, 0),
            job_id: Some(7),
            state: Some(JobStateName::Running),
        }
    }
}

// ---------- models ----------

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ClassMetricsInfo {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// Evaluation on the validation split.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EvaluationInfo {
    pub examples: u64,
    pub accuracy: f64,
    pub loss: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassMetricsInfo>,
    /// `confusion_matrix[actual][predicted]` in the version's class order.
    pub confusion_matrix: Vec<Vec<u64>>,
}

impl From<&Evaluation> for EvaluationInfo {
    fn from(e: &Evaluation) -> Self {
        Self {
            examples: e.examples,
            accuracy: e.accuracy,
            loss: e.loss,
            macro_f1: e.macro_f1,
            per_class: e
                .per_class
                .iter()
                .map(|c| ClassMetricsInfo {
                    class: c.class.clone(),
                    precision: c.precision,
                    recall: c.recall,
                    f1: c.f1,
                    support: c.support,
                })
                .collect(),
            confusion_matrix: e.confusion_matrix.clone(),
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SplitCountsInfo {
    pub train: u64,
    pub validation: u64,
}

/// The data a version was trained on.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DataSnapshotInfo {
    pub class_counts: BTreeMap<String, SplitCountsInfo>,
    pub total_images: u64,
    /// SHA-256 over the sorted image ids used.
    pub image_set_hash: String,
}

/// An immutable model version.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct ModelInfo {
    pub version: u32,
    /// True for the version serving predictions.
    pub active: bool,
    pub created_at: DateTime<Utc>,
    /// `mobilenet_v2` or `efficientnet_lite0`.
    pub backbone: String,
    pub classes: Vec<String>,
    pub hyperparameters: serde_json::Value,
    pub data_snapshot: DataSnapshotInfo,
    pub epochs: Vec<EpochInfo>,
    pub best_epoch: u32,
    pub duration_ms: u64,
    /// Backend that trained it.
    pub backend: String,
    pub evaluation: EvaluationInfo,
    /// `bootstrap`, `retrain` or `offline`.
    pub origin: String,
    pub job_id: Option<u64>,
}

impl Example for ModelInfo {
    fn example() -> Self {
        let classes = ["angular_leaf_spot", "bean_rust", "healthy"];
        Self {
            version: 3,
            active: true,
            created_at: DateTime::from_timestamp(1_764_066_600, 0).unwrap_or_default(),
            backbone: "mobilenet_v2".into(),
            classes: classes.iter().map(|c| c.to_string()).collect(),
            hyperparameters: json!({"epochs": 3, "batch_size": 32, "learning_rate": 0.0001, "augment_views": 0}),
            data_snapshot: DataSnapshotInfo {
                class_counts: classes
                    .iter()
                    .map(|c| {
                        let counts = SplitCountsInfo {
                            train: 16,
                            validation: 4,
                        };
                        (c.to_string(), counts)
                    })
                    .collect(),
                total_images: 60,
                image_set_hash: "4b7d1c0e9a2f6e3d8c5b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
                    .into(),
            },
            epochs: vec![EpochInfo {
                epoch: 1,
                train_loss: 0.412,
                train_accuracy: 0.875,
                val_loss: Some(0.398),
                val_accuracy: Some(0.9167),
                learning_rate: 0.0001,
            }],
            best_epoch: 1,
            duration_ms: 5_230,
            backend: "flex".into(),
            evaluation: EvaluationInfo {
                examples: 12,
                accuracy: 0.9167,
                loss: 0.398,
                macro_f1: 0.9153,
                per_class: [(0.8, 1.0, 0.8889), (1.0, 0.75, 0.8571), (1.0, 1.0, 1.0)]
                    .iter()
                    .zip(classes)
                    .map(|(&(precision, recall, f1), class)| ClassMetricsInfo {
                        class: class.into(),
                        precision,
                        recall,
                        f1,
                        support: 4,
                    })
                    .collect(),
                confusion_matrix: vec![vec![4, 0, 0], vec![1, 3, 0], vec![0, 0, 4]],
            },
            origin: "retrain".into(),
            job_id: Some(7),
        }
    }
}

impl ModelInfo {
    pub fn new(r: &ModelVersionRecord, active: Option<u32>) -> Self {
        Self {
            version: r.version,
            active: active == Some(r.version),
            created_at: r.created_at,
            backbone: r.backbone.clone(),
            classes: r.classes.clone(),
            hyperparameters: r.hyperparameters.clone(),
            data_snapshot: DataSnapshotInfo {
                class_counts: r
                    .data_snapshot
                    .class_counts
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            SplitCountsInfo {
                                train: v.train,
                                validation: v.validation,
                            },
                        )
                    })
                    .collect(),
                total_images: r.data_snapshot.total_images,
                image_set_hash: r.data_snapshot.image_set_hash.clone(),
            },
            epochs: r.epochs.iter().map(Into::into).collect(),
            best_epoch: r.best_epoch,
            duration_ms: r.duration_ms,
            backend: r.backend.clone(),
            evaluation: (&r.evaluation).into(),
            origin: r.origin.clone(),
            job_id: r.job_id,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ModelList {
    pub active_version: Option<u32>,
    /// Oldest first.
    pub items: Vec<ModelInfo>,
}

/// One entry of the activation log.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ActivationInfo {
    pub sequence: u64,
    pub at: DateTime<Utc>,
    pub from: Option<u32>,
    pub to: u32,
    pub reason: String,
}

impl From<&ActivationRecord> for ActivationInfo {
    fn from(a: &ActivationRecord) -> Self {
        Self {
            sequence: a.sequence,
            at: a.at,
            from: a.from,
            to: a.to,
            reason: a.reason.clone(),
        }
    }
}

/// Optional body of `POST /api/models/{version}/activate`.
#[derive(Debug, Clone, Default, Object)]
#[oai(skip_serializing_if_is_none, example, deny_unknown_fields)]
pub struct ActivateRequest {
    /// Recorded in the activation log.
    #[oai(validator(max_length = 500))]
    pub reason: Option<String>,
}

impl Example for ActivateRequest {
    fn example() -> Self {
        Self {
            reason: Some("roll back: version 4 confuses rust and spot".into()),
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct ActivationResponse {
    pub success: bool,
    pub activation: ActivationInfo,
    pub model: ModelInfo,
}

impl Example for ActivationResponse {
    fn example() -> Self {
        Self {
            success: true,
            activation: ActivationInfo {
                sequence: 5,
                at: DateTime::from_timestamp(1_764_070_200, 0).unwrap_or_default(),
                from: Some(4),
                to: 3,
                reason: ActivateRequest::example().reason.unwrap_or_default(),
            },
            model: ModelInfo::example(),
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ActivationHistory {
    /// Oldest first.
    pub items: Vec<ActivationInfo>,
}

// ---------- monitoring ----------

/// System and service metrics — the original project's keys plus more.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct SystemMetrics {
    pub cpu_percent: f64,
    pub memory_percent: f64,
    /// Use of the disk holding the data dir.
    pub disk_percent: f64,
    /// e.g. `2d 5h 23m 15s`.
    pub uptime: String,
    pub uptime_seconds: u64,
    /// Resident memory of the sprig process.
    pub process_rss_bytes: u64,
    pub active_model_version: Option<u32>,
    /// Backend plugin serving predictions (`flex`, `ndarray`, `wgpu`, `onnxruntime`, `openvino`).
    pub backend: String,
    pub image_count: u64,
    pub class_count: u64,
    pub prediction_count: u64,
    /// Predictions served in the last 60 seconds.
    pub predictions_last_minute: u64,
    /// Median end-to-end prediction latency over the last 60 seconds.
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    /// Requests waiting for an inference worker.
    pub inference_queue_depth: u64,
    /// Bytes the database uses on disk.
    pub database_bytes: u64,
    pub retrain_running: bool,
}

impl Example for SystemMetrics {
    fn example() -> Self {
        Self {
            cpu_percent: 45.2,
            memory_percent: 62.8,
            disk_percent: 38.5,
            uptime: "2d 5h 23m 15s".into(),
            uptime_seconds: 191_000,
            process_rss_bytes: 180_000_000,
            active_model_version: Some(3),
            backend: "flex".into(),
            image_count: 960,
            class_count: 3,
            prediction_count: 12_345,
            predictions_last_minute: 240,
            latency_p50_ms: Some(21.5),
            latency_p95_ms: Some(48.0),
            inference_queue_depth: 0,
            database_bytes: 60_000_000,
            retrain_running: false,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Liveness {
    /// Always `ok`.
    pub status: String,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct Readiness {
    pub ready: bool,
    /// `ok` when the store answers.
    pub store: String,
    pub model_version: u32,
    pub backend: String,
}

impl Example for Readiness {
    fn example() -> Self {
        Self {
            ready: true,
            store: "ok".into(),
            model_version: 3,
            backend: "flex".into(),
        }
    }
}

/// Dynamic batching settings in effect.
#[derive(Debug, Clone, Object)]
pub struct BatchingInfo {
    pub enabled: bool,
    pub max_batch_size: u64,
    pub max_wait_ms: u64,
    pub queue_capacity: u64,
    /// Inference threads running (a configured 0 becomes the backend's side-by-side runs).
    pub workers: u64,
}

/// Training defaults a retrain request may override.
#[derive(Debug, Clone, Object)]
pub struct TrainingDefaults {
    pub backbone: BackboneName,
    pub epochs: u64,
    pub batch_size: u64,
    pub learning_rate: f64,
    pub augment_views: u32,
    /// `always`, `if_better` or `manual`.
    pub activation_policy: String,
    pub activation_tolerance: f64,
    /// Whether retrains fine-tune the last backbone blocks (phase 2) on this backend by default.
    pub fine_tune: bool,
    pub fine_tune_blocks: u64,
    pub fine_tune_epochs: u64,
}

/// Size and count limits (over a limit: 413, or 422 for image pixels).
#[derive(Debug, Clone, Object)]
pub struct LimitsInfo {
    pub predict_body_bytes: u64,
    pub batch_body_bytes: u64,
    pub upload_body_bytes: u64,
    pub json_body_bytes: u64,
    pub batch_max_files: u64,
    pub upload_max_files: u64,
    pub max_file_bytes: u64,
    pub max_pixels: u64,
    pub max_dimension: u32,
}

/// Which requests need the bearer token.
#[derive(Debug, Clone, Object)]
pub struct AuthInfo {
    pub writes_require_token: bool,
    pub reads_require_token: bool,
}

/// The server's effective settings (no secrets), so clients can adapt to them.
#[derive(Debug, Clone, Object)]
pub struct ServerSettings {
    pub version: String,
    /// Backend plugin in use.
    pub backend: String,
    /// The number format its backbone computes in: `f32`, or `bf16` (openvino on CPUs with
    /// native bfloat16).
    pub backend_precision: String,
    pub training: TrainingDefaults,
    pub batching: BatchingInfo,
    pub limits: LimitsInfo,
    pub auth: AuthInfo,
}
