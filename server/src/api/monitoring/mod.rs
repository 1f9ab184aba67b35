mod schema;

pub use schema::*;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, OpenApi};

use sprig_core::ErrorCode;
use sprig_store::StoreError;

use super::auth::ApiAuth;
use super::error::{ApiError, ApiResult};
use super::ApiTags;
use crate::monitor::format_uptime;
use crate::state::{AppState, ModelStartup as State};

pub struct MonitoringApi;

#[derive(ApiResponse)]
pub enum PrometheusText {
    /// Prometheus text exposition format 0.0.4.
    #[oai(
        status = 200,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    )]
    Ok(PlainText<String>),
}

#[OpenApi(tag = "ApiTags::Monitoring")]
impl MonitoringApi {
    /// Liveness
    ///
    /// The process is up and serving HTTP.
    #[oai(path = "/livez", method = "get", operation_id = "liveness")]
    async fn livez(&self) -> Json<Liveness> {
        Json(Liveness {
            status: "ok".into(),
        })
    }

    /// Readiness
    ///
    /// 200 when the store takes writes (with the free-space reserve left) and a model is loaded;
    /// 503 with the reason otherwise
    /// (e.g. while the first model is being loaded or trained at first start).
    #[oai(path = "/readyz", method = "get", operation_id = "readiness")]
    async fn readyz(&self, state: Data<&Arc<AppState>>) -> ApiResult<Json<Readiness>> {
        let unavailable = |code: ErrorCode, message: String| {
            ApiError::with_status(poem::http::StatusCode::SERVICE_UNAVAILABLE, code, message)
        };
        state.engine.check_store().map_err(|e| match e {
            StoreError::DiskFull { .. } => {
                unavailable(ErrorCode::InsufficientStorage, e.to_string())
            }
            e => {
                tracing::warn!(error = %e, "readiness: the store cannot write");
                unavailable(
                    ErrorCode::StoreUnavailable,
                    "the store does not take writes; the log has the details".into(),
                )
            }
        })?;
        match state.readiness() {
            State::Starting(message) => return Err(unavailable(ErrorCode::Starting, message)),
            State::Failed(message) => return Err(unavailable(ErrorCode::StartupFailed, message)),
            State::Ready => {}
        }
        let model_version = state.engine.serving_version().ok_or_else(|| {
            unavailable(
                ErrorCode::NoActiveModel,
                "no model version is active".into(),
            )
        })?;
        Ok(Json(Readiness {
            ready: true,
            store: "ok".into(),
            model_version,
            backend: state.engine.backend_name().into(),
        }))
    }

    /// System and service metrics
    ///
    /// The original project's `cpu_percent`, `memory_percent`, `disk_percent` and `uptime`, plus
    /// process memory, the active model version, backend, counts, and recent prediction rate and latency.
    #[oai(path = "/api/metrics", method = "get", operation_id = "systemMetrics")]
    async fn metrics(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
    ) -> ApiResult<Json<SystemMetrics>> {
        let overview = state.engine.overview()?;
        let resources = state.monitor.snapshot();
        let uptime_seconds = state.started.elapsed().as_secs();
        let (recent, p50, p95) = state.metrics.recent_predictions();
        Ok(Json(SystemMetrics {
            cpu_percent: resources.cpu_percent,
            memory_percent: resources.memory_percent,
            disk_percent: resources.disk_percent,
            uptime: format_uptime(uptime_seconds),
            uptime_seconds,
            process_rss_bytes: resources.process_rss_bytes,
            active_model_version: state.engine.serving_version(),
            backend: state.engine.backend_name().into(),
            image_count: overview.image_count,
            class_count: overview.class_count,
            prediction_count: overview.prediction_count,
            predictions_last_minute: recent,
            latency_p50_ms: p50,
            latency_p95_ms: p95,
            inference_queue_depth: state.engine.inference_queue_depth() as u64,
            database_bytes: overview.database_bytes,
            retrain_running: overview.retrain_running,
        }))
    }

    /// Server settings
    ///
    /// The effective, non-secret settings: backend, training defaults, batching, limits and
    /// whether the token is required — what a client needs to fill forms and size uploads.
    #[oai(path = "/api/config", method = "get", operation_id = "serverSettings")]
    async fn settings(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
    ) -> ApiResult<Json<ServerSettings>> {
        let config = &state.config;
        let engine = state.engine.config();
        let training = &engine.training;
        let policy = serde_json::to_value(training.activation_policy)
            .ok()
            .and_then(|v| v.as_str().map(String::from));
        Ok(Json(ServerSettings {
            version: env!("CARGO_PKG_VERSION").into(),
            backend: state.engine.backend_name().into(),
            backend_precision: state.engine.backend_precision().into(),
            training: TrainingDefaults {
                backbone: training.backbone.into(),
                pooling: training.pooling.into(),
                epochs: training.epochs as u64,
                batch_size: training.batch_size as u64,
                learning_rate: training.learning_rate,
                augment_views: training.augment_views,
                activation_policy: policy.unwrap_or_default(),
                activation_tolerance: training.activation_tolerance,
                fine_tune: state.engine.fine_tunes_by_default(),
                fine_tune_blocks: training.fine_tune_blocks as u64,
                fine_tune_epochs: training.fine_tune_epochs as u64,
            },
            batching: BatchingInfo {
                enabled: engine.batching.enabled,
                max_batch_size: engine.batching.max_batch_size as u64,
                max_wait_ms: engine.batching.max_wait_ms,
                queue_capacity: engine.batching.queue_capacity as u64,
                workers: state.engine.inference_workers() as u64,
            },
            limits: LimitsInfo {
                predict_body_bytes: config.limits.predict_body_bytes,
                batch_body_bytes: config.limits.batch_body_bytes,
                upload_body_bytes: config.limits.upload_body_bytes,
                json_body_bytes: config.limits.json_body_bytes,
                batch_max_files: config.limits.batch_max_files as u64,
                upload_max_files: config.limits.upload_max_files as u64,
                max_file_bytes: engine.ingest.max_file_bytes,
                max_pixels: engine.ingest.max_pixels,
                max_dimension: engine.ingest.max_dimension,
            },
            auth: AuthInfo {
                writes_require_token: config.auth.token.is_some(),
                reads_require_token: config.auth.token.is_some() && config.auth.protect_reads,
            },
        }))
    }

    /// Prometheus metrics
    ///
    /// Request counts and latency histograms by route and status, inference latency and batch-size
    /// histograms by model version, and jobs by state.
    #[oai(path = "/metrics", method = "get", operation_id = "prometheusMetrics")]
    async fn prometheus(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
    ) -> ApiResult<PrometheusText> {
        let jobs = state.engine.job_counts()?;
        Ok(PrometheusText::Ok(PlainText(state.metrics.render(&jobs))))
    }
}
