//! Request and response bodies of the retrain and job operations.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object};
use serde_json::json;
use sprig_store::{EpochMetrics, JobRecord, JobState};

use sprig_core::ErrorCode;

use crate::api::error::{Code, ErrorDetail};

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

/// Which of the backbone's activations the head reads (see `training.pooling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum PoolingName {
    /// The final map, averaged.
    Final,
    /// The final map and each block's depthwise output, each averaged (one forward pass).
    EveryBlock,
    /// `every_block`'s means plus a second-order (texture) pool of the 14 × 14 stage's output,
    /// read by two sub-heads whose logits are summed (one forward pass).
    EveryBlockTexture,
}

impl From<sprig_backends::Pooling> for PoolingName {
    fn from(pooling: sprig_backends::Pooling) -> Self {
        match pooling {
            sprig_backends::Pooling::Final => PoolingName::Final,
            sprig_backends::Pooling::EveryBlock => PoolingName::EveryBlock,
            sprig_backends::Pooling::EveryBlockTexture => PoolingName::EveryBlockTexture,
        }
    }
}

impl From<PoolingName> for sprig_backends::Pooling {
    fn from(name: PoolingName) -> Self {
        match name {
            PoolingName::Final => sprig_backends::Pooling::Final,
            PoolingName::EveryBlock => sprig_backends::Pooling::EveryBlock,
            PoolingName::EveryBlockTexture => sprig_backends::Pooling::EveryBlockTexture,
        }
    }
}

/// Body of `POST /api/retrain`; every field is optional (defaults come from the config).
#[derive(Debug, Clone, Default, Object)]
#[oai(skip_serializing_if_is_none, example, deny_unknown_fields)]
pub struct RetrainRequest {
    pub backbone: Option<BackboneName>,
    pub pooling: Option<PoolingName>,
    /// Maximum epochs (early stopping may end sooner).
    #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
    pub epochs: Option<u32>,
    #[oai(validator(minimum(value = "0", exclusive), maximum(value = "1")))]
    pub learning_rate: Option<f64>,
    /// Extra augmented views per training image (flip, rotation, zoom, shift).
    #[oai(validator(minimum(value = "0"), maximum(value = "16")))]
    pub augment_views: Option<u32>,
    /// Test-time flipping: the version also classifies each image mirrored left to right and
    /// answers with the two answers' geometric mean (two forward passes per prediction).
    pub test_time_flip: Option<bool>,
    /// Test-time augmented views: the version also classifies each image in its first this
    /// many augmented views (drawn from the photo's content, as training draws them) and answers
    /// with the geometric mean of all answers (1 + this many forward passes per prediction; such
    /// a version cannot be exported to ONNX).
    #[oai(validator(minimum(value = "0"), maximum(value = "16")))]
    pub test_time_views: Option<u32>,
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
            pooling: Some(PoolingName::EveryBlock),
            epochs: Some(30),
            learning_rate: Some(0.0001),
            augment_views: Some(2),
            test_time_flip: Some(false),
            test_time_views: Some(0),
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
    /// The worker that claimed the job, `retrain@host-pid-start`: which process (replica) runs
    /// or ran it. Absent while the job is queued.
    pub worker: Option<String>,
    /// How many times a worker started the job (a job interrupted by a crash is not started
    /// again: at most 1 today).
    pub attempts: u32,
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
            worker: Some("retrain@sprig-1-2f1c-19ab3c5e7d0".into()),
            attempts: 1,
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
            worker: j.worker.clone(),
            attempts: j.attempts,
            current_epoch: j.current_epoch,
            total_epochs: j.total_epochs,
            epochs: j.epochs.iter().map(Into::into).collect(),
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            timings_ms: j.timings_ms.clone(),
            error: j.error.as_ref().map(|e| ErrorDetail {
                code: Code(e.code.parse().unwrap_or(ErrorCode::InternalError)),
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
                worker: None,
                attempts: 0,
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

impl From<sprig_core::RetrainStatus> for RetrainStatus {
    fn from(status: sprig_core::RetrainStatus) -> Self {
        Self {
            is_running: status.is_running,
            progress: status.progress.round() as u32,
            message: status.message,
            last_retrain_time: status.last_retrain_time,
            job_id: status.latest_job.map(|(id, _)| id),
            state: status.latest_job.map(|(_, state)| state.into()),
        }
    }
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

crate::api::paging::page_type!(JobPage, JobInfo);
