//! Response bodies of the health, metrics and settings operations.

use poem_openapi::types::Example;
use poem_openapi::Object;

use crate::api::jobs::{BackboneName, PoolingName};

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
    pub pooling: PoolingName,
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
