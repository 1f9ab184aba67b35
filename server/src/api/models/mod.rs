mod schema;

pub use schema::*;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::OpenApi;

use super::auth::ApiAuth;
use super::body::OptionalJson;
use super::error::{ApiError, ApiResult};
use super::ApiTags;
use crate::state::AppState;

pub struct ModelsApi;

#[OpenApi(prefix_path = "/api/models", tag = "ApiTags::Models")]
impl ModelsApi {
    /// List model versions
    ///
    /// Every version with its metrics, data snapshot and whether it is active. Oldest first.
    #[oai(path = "/", method = "get", operation_id = "listModels")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
    ) -> ApiResult<Json<ModelList>> {
        let catalog = state.engine.model_versions()?;
        let items = catalog
            .versions
            .iter()
            .map(|m| ModelInfo::new(m, catalog.active))
            .collect();
        Ok(Json(ModelList {
            active_version: catalog.active,
            items,
        }))
    }

    /// Activation history
    ///
    /// The append-only log of activations: when, from which version, to which, and why. Oldest first.
    #[oai(path = "/history", method = "get", operation_id = "activationHistory")]
    async fn history(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
    ) -> ApiResult<Json<ActivationHistory>> {
        let items = state
            .engine
            .activation_history()?
            .iter()
            .map(Into::into)
            .collect();
        Ok(Json(ActivationHistory { items }))
    }

    /// Get a model version
    ///
    /// Hyper-parameters, data snapshot, per-epoch curves, evaluation on the validation split
    /// (accuracy, per-class metrics, confusion matrix) and whether it is active.
    #[oai(path = "/:version", method = "get", operation_id = "getModel")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// Model version number.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        version: Path<u32>,
    ) -> ApiResult<Json<ModelInfo>> {
        let (record, active) = state.engine.model_version(version.0)?;
        Ok(Json(ModelInfo::new(&record, active)))
    }

    /// Activate a model version (rollback or roll forward)
    ///
    /// The version is loaded and warmed up, then swapped in atomically: in-flight predictions
    /// finish on the version they started with. The activation is appended to the history.
    #[oai(
        path = "/:version/activate",
        method = "post",
        operation_id = "activateModel"
    )]
    async fn activate(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// Model version number.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        version: Path<u32>,
        body: OptionalJson<ActivateRequest>,
    ) -> ApiResult<Json<ActivationResponse>> {
        let reason = body
            .0
            .and_then(|b| b.reason)
            .unwrap_or_else(|| "activated through the API".into());
        let activated = state.engine.activate(version.0, &reason).await?;
        Ok(Json(ActivationResponse {
            success: true,
            activation: (&activated.activation).into(),
            model: ModelInfo::new(&activated.model, Some(activated.activation.to)),
        }))
    }

    /// Export a version as ONNX
    ///
    /// The version as one self-contained ONNX model: the backbone with its fine-tuned tail, the
    /// head, the version's temperature and a softmax, in float32. At export sprig runs the file
    /// through ONNX Runtime (when available) on up to 256 validation images and compares it with
    /// the served model; the model card (`/export/card`, and inside the file's metadata) records
    /// the result. Takes seconds. A version answering from test-time augmented views (drawn
    /// from each photo's file hash) cannot be exported: 422 `conflicting_options`.
    #[oai(
        path = "/:version/export",
        method = "get",
        operation_id = "exportModel"
    )]
    async fn export(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// Model version number.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        version: Path<u32>,
        /// Only `onnx` so far.
        format: Query<ExportFormat>,
    ) -> ApiResult<ExportedModel> {
        let ExportFormat::Onnx = format.0;
        let export = export_onnx(&state, version.0).await?;
        let disposition = format!("attachment; filename=\"sprig-model-v{}.onnx\"", version.0);
        let sha256 = export.card.onnx_sha256.clone().unwrap_or_default();
        Ok(ExportedModel::Onnx(
            Binary(export.model),
            disposition,
            sha256,
        ))
    }

    /// Download a version as a bundle
    ///
    /// The version's record (hyper-parameters, data snapshot, curves, evaluation, reference
    /// distribution) and its weights in one checksummed file, for `POST /api/models/import` on
    /// another sprig instance.
    #[oai(
        path = "/:version/bundle",
        method = "get",
        operation_id = "modelBundle"
    )]
    async fn bundle(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// Model version number.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        version: Path<u32>,
    ) -> ApiResult<BundleFile> {
        let bytes = state.engine.model_bundle(version.0)?;
        let disposition = format!("attachment; filename=\"sprig-model-v{}.bundle\"", version.0);
        Ok(BundleFile::Bundle(Binary(bytes), disposition))
    }

    /// Import a version from a bundle
    ///
    /// Saves the version a bundle carries (from `GET /api/models/{version}/bundle` of any sprig
    /// instance) as a new version here, marked as imported, not activated. 422 `invalid_bundle`
    /// when the file is damaged or altered (its checksums), 409 `bundle_mismatch` when it has a
    /// class this instance knows neither from its data set nor from its active version, or
    /// another backbone than the active version's.
    #[oai(path = "/import", method = "post", operation_id = "importModel")]
    async fn import(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        body: Binary<Vec<u8>>,
    ) -> ApiResult<ImportResponse> {
        let engine = state.engine.clone();
        let record = tokio::task::spawn_blocking(move || engine.import_bundle(&body.0))
            .await
            .map_err(ApiError::internal)??;
        let active = state.engine.model_versions()?.active;
        let location = format!("/api/models/{}", record.version);
        Ok(ImportResponse::Created(
            Json(ModelInfo::new(&record, active)),
            location,
        ))
    }

    /// The model card of an exported version
    ///
    /// What `GET /api/models/{version}/export` returns, described: classes, input layout and
    /// preprocessing, temperature, evaluation, hashes and the export check against the served
    /// model, from a fresh export (its `onnx_sha256` is the downloaded file's while the
    /// validation images and the serving backend stay the same; the downloaded file carries its
    /// own card in its metadata either way).
    #[oai(
        path = "/:version/export/card",
        method = "get",
        operation_id = "exportModelCard"
    )]
    async fn export_card(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// Model version number.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        version: Path<u32>,
        /// Only `onnx` so far.
        format: Query<ExportFormat>,
    ) -> ApiResult<Json<ModelCardInfo>> {
        let ExportFormat::Onnx = format.0;
        let export = export_onnx(&state, version.0).await?;
        Ok(Json((&export.card).into()))
    }
}

/// The export, computed off the async runtime.
async fn export_onnx(state: &AppState, version: u32) -> ApiResult<sprig_core::export::OnnxExport> {
    let engine = state.engine.clone();
    Ok(
        tokio::task::spawn_blocking(move || engine.export_onnx(version))
            .await
            .map_err(ApiError::internal)??,
    )
}
