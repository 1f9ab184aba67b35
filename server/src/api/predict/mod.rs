mod schema;

pub use schema::*;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::multipart::Upload;
use poem_openapi::OpenApi;
use sprig_core::{CoreError, IncomingFile};

use super::auth::ApiAuth;
use super::error::{ApiError, ApiResult};
use super::paging::{page_request, PageNumber, PerPage};
use super::ApiTags;
use crate::state::AppState;

pub struct PredictApi;

#[OpenApi(prefix_path = "/api", tag = "ApiTags::Predict")]
impl PredictApi {
    /// Classify one image
    ///
    /// Send the image as the multipart field `file`, or as the raw `application/octet-stream` body
    /// (then `filename` names it). The answer is the original project's JSON (`success`,
    /// `predicted_class`, `predicted_index`, `confidence`, `probabilities`, `filename`, `timestamp`)
    /// plus the `model_version` that answered, the `prediction_id` and `latency_ms`. Concurrent
    /// requests are batched into shared forward passes; when the inference queue is full the answer
    /// is 429 with `Retry-After`. With `explain=true` the answer adds an `explanation`: a
    /// Grad-CAM heatmap of the predicted class (a few tens of milliseconds more, on the CPU).
    #[oai(path = "/predict", method = "post", operation_id = "predict")]
    async fn predict(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// File name recorded for a raw-body image (multipart parts carry their own).
        filename: Query<Option<String>>,
        /// Add a Grad-CAM explanation of the answer.
        explain: Query<Option<bool>>,
        /// A stable id of the caller: during a canary, the same id is always answered by the same
        /// version (without one, requests are split evenly).
        #[oai(name = "X-Client-Id")]
        client: Header<Option<String>>,
        body: PredictBody,
    ) -> ApiResult<Json<PredictResponse>> {
        let image = match body {
            PredictBody::Multipart(form) => UploadedFile::Raw(form.file.file_name, form.file.bytes),
            PredictBody::Raw(bytes) => UploadedFile::Raw(filename.0, bytes.0),
        };
        let filename = image.file_name();
        let bytes = image.read(state.engine.max_file_bytes()).await??;
        if explain.0 == Some(true) {
            let (record, explanation) = state
                .engine
                .predict_explained(bytes, filename, client.0.as_deref())
                .await?;
            state.metrics.observe_prediction(record.latency_ms);
            let mut answer = PredictResponse::from(&record);
            answer.explanation = Some(explanation.into());
            return Ok(Json(answer));
        }
        let record = state
            .engine
            .predict(bytes, filename, client.0.as_deref())
            .await?;
        state.metrics.observe_prediction(record.latency_ms);
        Ok(Json((&record).into()))
    }

    /// Classify many images in one request
    ///
    /// Send the images as repeated multipart fields `files` (at most `limits.batch_max_files`), or
    /// one image as the raw `application/octet-stream` body (a batch of one, named by `filename`).
    /// Results come back in request order, each either a prediction or an error: one bad file does
    /// not fail the others. With `explain=true` each prediction adds an `explanation`.
    #[oai(
        path = "/predict/batch",
        method = "post",
        operation_id = "predictBatch"
    )]
    async fn predict_batch(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// File name recorded for a raw-body image (multipart parts carry their own).
        filename: Query<Option<String>>,
        /// Add a Grad-CAM explanation to each answer.
        explain: Query<Option<bool>>,
        /// A stable id of the caller: during a canary, the same id is always answered by the same
        /// version.
        #[oai(name = "X-Client-Id")]
        client: Header<Option<String>>,
        body: BatchPredictBody,
    ) -> ApiResult<Json<BatchPredictResponse>> {
        let images: Vec<UploadedFile> = match body {
            BatchPredictBody::Multipart(form) => {
                let limit = state.config.limits.batch_max_files;
                require_files(&form.files)?;
                if form.files.len() > limit {
                    return Err(ApiError::too_many_files(form.files.len(), limit));
                }
                form.files.into_iter().map(UploadedFile::Part).collect()
            }
            BatchPredictBody::Raw(bytes) => vec![UploadedFile::Raw(filename.0, bytes.0)],
        };
        let mut files = Vec::with_capacity(images.len());
        let max_bytes = state.engine.max_file_bytes();
        for image in images {
            let name = image.file_name();
            files.push((name, image.read(max_bytes).await?));
        }
        let names: Vec<Option<String>> = files.iter().map(|(name, _)| name.clone()).collect();
        let outcomes = if explain.0 == Some(true) {
            let explained = state
                .engine
                .predict_many_explained(files, client.0.as_deref())
                .await;
            explained
                .into_iter()
                .map(|outcome| outcome.map(|(record, e)| (record, Some(e))))
                .collect()
        } else {
            let answered = state.engine.predict_many(files, client.0.as_deref()).await;
            answered
                .into_iter()
                .map(|outcome| outcome.map(|record| (record, None)))
                .collect::<Vec<_>>()
        };
        let results: Vec<BatchItem> = outcomes
            .into_iter()
            .zip(names)
            .enumerate()
            .map(|(index, (outcome, filename))| match outcome {
                Ok((record, explanation)) => {
                    state.metrics.observe_prediction(record.latency_ms);
                    let mut prediction = PredictResponse::from(&record);
                    prediction.explanation = explanation.map(Into::into);
                    BatchItem {
                        index: index as u64,
                        filename,
                        success: true,
                        prediction: Some(prediction),
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
        _auth: ApiAuth,
        /// 1-based page number.
        #[oai(default)]
        page: Query<PageNumber>,
        /// Items per page.
        #[oai(default)]
        per_page: Query<PerPage>,
    ) -> ApiResult<Json<PredictionPage>> {
        let request = page_request(page.0, per_page.0);
        let result = state.engine.predictions(request)?;
        Ok(Json(PredictionPage::new(request, result, |r| (&r).into())))
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
        _auth: ApiAuth,
    ) -> ApiResult<Json<PredictionStatsResponse>> {
        Ok(Json(state.engine.prediction_stats()?.into()))
    }
}

/// A file form's `files`: at least one (poem reads an absent repeated field as empty), each a
/// file part (with a file name), not a text field.
pub fn require_files(files: &[Upload]) -> ApiResult<()> {
    if files.is_empty() {
        return Err(ApiError::invalid_multipart("the form has no `files` field"));
    }
    if files.iter().any(|file| file.file_name().is_none()) {
        return Err(ApiError::invalid_multipart(
            "every `files` part must be a file (a part with a filename), not a text field",
        ));
    }
    Ok(())
}

/// An uploaded image not read yet: a multipart part (poem spooled it to a temp file), or bytes
/// already in memory (a raw `application/octet-stream` body, named from the query, or an
/// [`ImagePart`]).
pub enum UploadedFile {
    Part(Upload),
    Raw(Option<String>, Vec<u8>),
}

impl UploadedFile {
    pub fn file_name(&self) -> Option<String> {
        match self {
            UploadedFile::Part(upload) => upload.file_name().map(String::from),
            UploadedFile::Raw(name, _) => name.clone(),
        }
    }

    /// The file's bytes, or why this file alone is refused: one over `max_bytes` is refused from
    /// its size, before it is read. The outer error is a failure of the whole request.
    pub async fn read(self, max_bytes: u64) -> ApiResult<sprig_core::Result<Vec<u8>>> {
        let size = match &self {
            UploadedFile::Part(upload) => upload.size() as u64,
            UploadedFile::Raw(_, bytes) => bytes.len() as u64,
        };
        if size > max_bytes {
            return Ok(Err(CoreError::FileTooLarge {
                size,
                limit: max_bytes,
            }));
        }
        match self {
            UploadedFile::Part(upload) => upload.into_vec().await.map(Ok).map_err(|error| {
                tracing::warn!(%error, "reading a spooled upload failed");
                ApiError::invalid_multipart("a multipart part could not be read back")
            }),
            UploadedFile::Raw(_, bytes) => Ok(Ok(bytes)),
        }
    }

    /// [`UploadedFile::read`] as the engine's ingest takes it.
    pub async fn incoming(self, max_bytes: u64) -> ApiResult<IncomingFile> {
        let filename = self.file_name();
        Ok(IncomingFile {
            filename,
            bytes: self.read(max_bytes).await?,
        })
    }
}
