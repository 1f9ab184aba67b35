use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;
use sprig_store::PageRequest;

use super::auth::ApiAuth;
use super::error::{ApiError, ApiResult};
use super::types::*;
use super::ApiTags;
use crate::state::{Access, AppState};

pub struct PredictApi;

#[OpenApi(prefix_path = "/api", tag = "ApiTags::Predict")]
impl PredictApi {
    /// Classify one image
    ///
    /// Upload an image as the multipart field `file`. The answer is the original project's JSON
    /// (`success`, `predicted_class`, `predicted_index`, `confidence`, `probabilities`, `filename`,
    /// `timestamp`) plus the `model_version` that answered, the `prediction_id` and `latency_ms`.
    /// Concurrent requests are batched into shared forward passes; when the inference queue is full
    /// the answer is 429 with `Retry-After`.
    #[oai(path = "/predict", method = "post", operation_id = "predict")]
    async fn predict(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiAuth,
        form: PredictForm,
    ) -> ApiResult<Json<PredictResponse>> {
        state.authorize(&auth, Access::Read)?;
        let filename = form.file.file_name().map(String::from);
        let bytes = read_upload(form.file).await?;
        let record = state.engine.predictor.predict(bytes, filename).await?;
        state.metrics.observe_prediction(record.latency_ms);
        Ok(Json((&record).into()))
    }

    /// Classify many images in one request
    ///
    /// Send the images as repeated multipart fields `files`. Results come back in request order,
    /// each either a prediction or an error: one bad file does not fail the others. At most
    /// `limits.batch_max_files` files per request.
    #[oai(
        path = "/predict/batch",
        method = "post",
        operation_id = "predictBatch"
    )]
    async fn predict_batch(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiAuth,
        form: BatchPredictForm,
    ) -> ApiResult<Json<BatchPredictResponse>> {
        state.authorize(&auth, Access::Read)?;
        let limit = state.config.limits.batch_max_files;
        if form.files.len() > limit {
            return Err(ApiError::too_many_files(form.files.len(), limit));
        }
        let mut files = Vec::with_capacity(form.files.len());
        for upload in form.files {
            let name = upload.file_name().map(String::from);
            files.push((name, read_upload(upload).await?));
        }
        let names: Vec<Option<String>> = files.iter().map(|(name, _)| name.clone()).collect();
        let outcomes = state.engine.predictor.predict_many(files).await;
        let results: Vec<BatchItem> = outcomes
            .into_iter()
            .zip(names)
            .enumerate()
            .map(|(index, (outcome, filename))| match outcome {
                Ok(record) => {
                    state.metrics.observe_prediction(record.latency_ms);
                    BatchItem {
                        index: index as u64,
                        filename,
                        success: true,
                        prediction: Some((&record).into()),
                        error: None,
                    }
                }
                Err(error) => {
                    let error = ApiError::from(error);
                    BatchItem {
                        index: index as u64,
                        filename,
                        success: false,
                        prediction: None,
                        error: Some(error.detail()),
                    }
                }
            })
            .collect();
        let succeeded = results.iter().filter(|r| r.success).count() as u64;
        let failed = results.len() as u64 - succeeded;
        Ok(Json(BatchPredictResponse {
            success: failed == 0,
            succeeded,
            failed,
            results,
        }))
    }

    /// List recorded predictions
    ///
    /// Every served prediction is recorded. Newest first.
    #[oai(
        path = "/predictions",
        method = "get",
        operation_id = "listPredictions"
    )]
    async fn list_predictions(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiAuth,
        /// 1-based page number.
        #[oai(default = "default_page", validator(minimum(value = "1")))]
        page: Query<u32>,
        /// Items per page.
        #[oai(
            default = "default_per_page",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        per_page: Query<u32>,
    ) -> ApiResult<Json<PredictionPage>> {
        state.authorize(&auth, Access::Read)?;
        let request = PageRequest::new(page.0, per_page.0);
        let result = state.engine.stores.predictions.list(request)?;
        Ok(Json(PredictionPage {
            items: result.items.iter().map(Into::into).collect(),
            page: request.page,
            per_page: request.per_page,
            total: result.total,
        }))
    }

    /// Prediction statistics
    ///
    /// Counts per predicted class, per model version and per hour, and a confidence histogram.
    #[oai(
        path = "/stats/predictions",
        method = "get",
        operation_id = "predictionStats"
    )]
    async fn prediction_stats(
        &self,
        state: Data<&Arc<AppState>>,
        auth: ApiAuth,
    ) -> ApiResult<Json<PredictionStatsResponse>> {
        state.authorize(&auth, Access::Read)?;
        Ok(Json(state.engine.stores.predictions.stats()?.into()))
    }
}

pub fn default_page() -> u32 {
    1
}

pub fn default_per_page() -> u32 {
    50
}

/// Reads an uploaded file (poem spooled it to a temp file).
pub async fn read_upload(upload: poem_openapi::types::multipart::Upload) -> ApiResult<Vec<u8>> {
    upload.into_vec().await.map_err(|e| {
        ApiError::bad_request(
            "invalid_multipart",
            format!("reading the upload failed: {e}"),
        )
    })
}
