mod schema;

pub use schema::*;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;
use sprig_core::ReviewDecision;

use super::auth::ApiAuth;
use super::body::RequiredJson;
use super::error::{ApiError, ApiResult};
use super::images::ImageContent;
use super::paging::{page_request, PageNumber, PerPage};
use super::ApiTags;
use crate::state::AppState;

pub struct ReviewApi;

#[OpenApi(prefix_path = "/api", tag = "ApiTags::Review")]
impl ReviewApi {
    /// List predictions waiting for review
    ///
    /// Predicted images kept because the model was unsure (`review.keep_images = "uncertain"`:
    /// uncertainty ≥ `review.min_uncertainty`, or out of distribution), most uncertain first,
    /// then newest first.
    #[oai(path = "/review", method = "get", operation_id = "listReview")]
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
    ) -> ApiResult<Json<ReviewPage>> {
        let request = page_request(page.0, per_page.0);
        let result = state.engine.review_queue(request)?;
        Ok(Json(ReviewPage::new(request, result, Into::into)))
    }

    /// Review queue summary
    ///
    /// Pending count, kept bytes against the budget, and per model version the accuracy on the
    /// predictions reviewers labelled (a sample biased toward hard cases: see `caveat`).
    #[oai(
        path = "/review/summary",
        method = "get",
        operation_id = "reviewSummary"
    )]
    async fn summary(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
    ) -> ApiResult<Json<ReviewSummaryResponse>> {
        let config = state.engine.config().review;
        let keep = serde_json::to_value(config.keep_images)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        Ok(Json(ReviewSummaryResponse::new(
            state.engine.review_summary()?,
            config.max_bytes,
            keep,
        )))
    }

    /// Label or dismiss a kept prediction
    ///
    /// `{"class": "<name>"}` adds the image to the data set under that class (the same validation
    /// and deduplication as an upload; the prediction remembers the label); `{"dismiss": true}`
    /// drops it from the queue; anything else (neither, or both) is 422 `invalid_decision`. 404
    /// when the prediction is not in the queue (never kept, or evicted), 409 `already_reviewed`
    /// when it was decided before.
    #[oai(
        path = "/review/:prediction_id",
        method = "post",
        operation_id = "reviewPrediction"
    )]
    async fn decide(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// The prediction's id.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        prediction_id: Path<u64>,
        body: RequiredJson<ReviewRequest>,
    ) -> ApiResult<Json<ReviewEntry>> {
        let request = body.into_inner();
        let decision = match (request.class, request.dismiss) {
            (Some(class), None | Some(false)) => ReviewDecision::Label(class),
            (None, Some(true)) => ReviewDecision::Dismiss,
            _ => {
                return Err(ApiError::new(
                    sprig_core::ErrorCode::InvalidDecision,
                    "give either `class` (to label) or `dismiss: true`, not both",
                ))
            }
        };
        let item = state.engine.review(prediction_id.0, decision).await?;
        Ok(Json(item.into()))
    }

    /// The kept image of a prediction
    ///
    /// The bytes as they were sent for prediction, while the prediction waits for review.
    #[oai(
        path = "/predictions/:prediction_id/image",
        method = "get",
        operation_id = "getPredictionImage"
    )]
    async fn image(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// The prediction's id.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        prediction_id: Path<u64>,
    ) -> ApiResult<ImageContent> {
        let bytes = state.engine.prediction_image(prediction_id.0)?;
        let content_type = sprig_backends::ImageKind::sniff(&bytes)
            .map_or("application/octet-stream", |kind| kind.mime_type())
            .to_string();
        Ok(ImageContent {
            bytes,
            content_type,
        })
    }

    /// The explanation of a kept prediction
    ///
    /// A Grad-CAM heatmap of the predicted class laid over the 224×224 centre crop the model saw
    /// (PNG), for a prediction whose image is kept for review; computed on request by the
    /// version that answered.
    #[oai(
        path = "/predictions/:prediction_id/explanation.png",
        method = "get",
        operation_id = "getPredictionExplanation"
    )]
    async fn explanation(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// The prediction's id.
        #[oai(validator(minimum(value = "0"), maximum(value = "9007199254740991")))]
        prediction_id: Path<u64>,
    ) -> ApiResult<ImageContent> {
        let bytes = state.engine.prediction_explanation(prediction_id.0).await?;
        Ok(ImageContent {
            bytes,
            content_type: "image/png".into(),
        })
    }

    /// Drift of recent traffic
    ///
    /// Two rolling windows of the active version's recent predictions (the last `drift.window`,
    /// and the last `drift.window_minutes`) against its training reference: the share of
    /// out-of-distribution images (embedding shift), class-mix PSI against the training prior, and the drop in mean
    /// confidence. Each statistic has `warning` and `drift` thresholds calibrated by resampling
    /// the version's own held-out images; `false_alarm_rate` says how often in-distribution
    /// traffic would read `drift`.
    #[oai(
        path = "/drift",
        method = "get",
        operation_id = "getDrift",
        tag = "ApiTags::Monitoring"
    )]
    async fn drift(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
    ) -> ApiResult<Json<DriftResponse>> {
        let engine = state.engine.clone();
        let report = tokio::task::spawn_blocking(move || engine.drift())
            .await
            .map_err(ApiError::internal)??;
        Ok(Json((&report).into()))
    }
}
