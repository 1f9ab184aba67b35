mod schema;

pub use schema::*;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::auth::ApiAuth;
use super::body::OptionalJson;
use super::error::ApiResult;
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
}
