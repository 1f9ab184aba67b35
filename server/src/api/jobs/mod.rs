mod schema;

pub use schema::*;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use poem::web::sse::Event;
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::registry::{
    MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, OpenApi};
use sprig_core::TrainingOverrides;

use super::auth::ApiAuth;
use super::body::OptionalJson;
use super::error::ApiResult;
use super::paging::{page_request, PageNumber, PerPage};
use super::ApiTags;
use crate::state::AppState;

pub struct JobsApi;

#[derive(ApiResponse)]
pub enum RetrainResponse {
    /// The retrain job was queued.
    #[oai(status = 202)]
    Accepted(Json<RetrainAccepted>, #[oai(header = "Location")] String),
}

/// A job's server-sent event stream. Documented per event (what OpenAPI 3.0 tools and
/// schemathesis read for `text/event-stream`): `event` is `job`, `data` a JSON [`JobInfo`].
pub struct JobEvents(EventStream<BoxStream<'static, JobInfo>>);

impl poem::IntoResponse for JobEvents {
    fn into_response(self) -> poem::Response {
        self.0.into_response()
    }
}

impl ApiResponse for JobEvents {
    fn meta() -> MetaResponses {
        let string = |description: &'static str| {
            let mut schema = MetaSchema::new("string");
            schema.description = Some(description);
            MetaSchemaRef::Inline(Box::new(schema))
        };
        let mut event_type = MetaSchema::new("string");
        event_type.enum_items = vec![serde_json::Value::String("job".into())];
        let mut event = MetaSchema::new("object");
        event.title = Some("JobEvent".into());
        event.description = Some(
            "One server-sent event. `event` is always `job`; `data` is the job as JSON, with the `JobInfo` schema.",
        );
        event.required = vec!["data"];
        event.properties = vec![
            ("event", MetaSchemaRef::Inline(Box::new(event_type))),
            (
                "data",
                string("JSON-encoded `JobInfo` (components/schemas/JobInfo)"),
            ),
            ("id", string("Event id (unused)")),
        ];
        MetaResponses {
            responses: vec![MetaResponse {
                description: "Server-sent events: the job's current state, then every change until it finishes",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType { content_type: "text/event-stream", schema: MetaSchemaRef::Inline(Box::new(event)) }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        JobInfo::register(registry);
    }
}

#[OpenApi(prefix_path = "/api", tag = "ApiTags::Jobs")]
impl JobsApi {
    /// Start a retrain
    ///
    /// Queues a durable retrain job on the current data and answers 202 with its id. Every body
    /// field is optional (an empty body uses the configured defaults). While a retrain is queued or
    /// running, another request answers 409 `retrain_in_progress` with that job's id.
    #[oai(path = "/retrain", method = "post", operation_id = "startRetrain")]
    async fn retrain(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        body: OptionalJson<RetrainRequest>,
    ) -> ApiResult<RetrainResponse> {
        let request = body.0.unwrap_or_default();
        let overrides = TrainingOverrides {
            backbone: request.backbone.map(Into::into),
            pooling: request.pooling.map(Into::into),
            epochs: request.epochs.map(|e| e as usize),
            learning_rate: request.learning_rate,
            augment_views: request.augment_views,
            test_time_flip: request.test_time_flip,
            test_time_views: request.test_time_views,
            fine_tune: request.fine_tune,
            activation_policy: request.activation_policy.map(Into::into),
        };
        let job = state.engine.submit_retrain(overrides).await?;
        let status_url = format!("/api/jobs/{}", job.id);
        Ok(RetrainResponse::Accepted(
            Json(RetrainAccepted {
                success: true,
                job_id: job.id,
                events_url: format!("{status_url}/events"),
                status_url: status_url.clone(),
                job: (&job).into(),
            }),
            status_url,
        ))
    }

    /// Retrain status (the original project's shape)
    ///
    /// `is_running`, `progress` (0-100), `message` and `last_retrain_time`, plus the latest retrain
    /// job's id and state.
    #[oai(
        path = "/retrain_status",
        method = "get",
        operation_id = "retrainStatus"
    )]
    async fn retrain_status(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
    ) -> ApiResult<Json<RetrainStatus>> {
        Ok(Json(state.engine.retrain_status()?.into()))
    }

    /// List jobs
    ///
    /// Newest first.
    #[oai(path = "/jobs", method = "get", operation_id = "listJobs")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// 1-based page number.
        #[oai(default)]
        page: Query<PageNumber>,
        /// Items per page.
        #[oai(default)]
        per_page: Query<PerPage>,
    ) -> ApiResult<Json<JobPage>> {
        let request = page_request(page.0, per_page.0);
        let result = state.engine.jobs(request)?;
        Ok(Json(JobPage::new(request, result, |j| (&j).into())))
    }

    /// Get a job
    ///
    /// State, progress, current epoch, per-epoch train/validation loss and accuracy so far,
    /// timings, and the error if it failed.
    #[oai(path = "/jobs/:id", method = "get", operation_id = "getJob")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// Job id.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        id: Path<u64>,
    ) -> ApiResult<Json<JobInfo>> {
        Ok(Json((&state.engine.job(id.0)?).into()))
    }

    /// Cancel a job
    ///
    /// Cooperative: a queued job is cancelled at once, a running one stops within one training
    /// batch (poll the job or its events to see it reach `cancelled`). A finished job answers 409.
    #[oai(path = "/jobs/:id/cancel", method = "post", operation_id = "cancelJob")]
    async fn cancel(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// Job id.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        id: Path<u64>,
    ) -> ApiResult<Json<JobInfo>> {
        let job = state.engine.cancel_job(id.0)?;
        Ok(Json((&job).into()))
    }

    /// Stream a job's progress (server-sent events)
    ///
    /// `text/event-stream`. Each event has type `job` and a `JobInfo` JSON payload: first the current
    /// state, then every change (progress, epochs, state) until the job finishes; the stream then
    /// ends. A keep-alive comment is sent every 15 seconds.
    #[oai(
        path = "/jobs/:id/events",
        method = "get",
        operation_id = "streamJobEvents"
    )]
    async fn events(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// Job id.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        id: Path<u64>,
    ) -> ApiResult<JobEvents> {
        let (job, updates) = state.engine.job_updates(id.0)?;
        let jobs = stream::once(std::future::ready(job))
            .chain(updates)
            .map(|job| JobInfo::from(&job));
        Ok(JobEvents(
            EventStream::new(jobs.boxed())
                .keep_alive(Duration::from_secs(15))
                .to_event(|job| Event::message(job.to_json_string()).event_type("job")),
        ))
    }
}
