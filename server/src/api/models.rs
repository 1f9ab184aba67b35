use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;
use sprig_core::CoreError;

use super::auth::ApiAuth;
use super::body::OptionalJson;
use super::error::{ApiError, ApiResult};
use super::types::*;
use super::ApiTags;
use crate::state::{Access, AppState};

pub struct ModelsApi;

fn version_not_found(version: u32) -> ApiError {
    CoreError::not_found("model version", version).into()
}

#[OpenApi(prefix_path = "/api/models", tag = "ApiTags::Models")]
impl ModelsApi {
    /// List model versions
    ///
    /// Every version with its metrics, data snapshot and whether it is active. Oldest first.
    #[oai(path = "/", method = "get", operation_id = "listModels")]
    async fn list(&self, state: Data<&Arc<AppState>>, auth: ApiAuth) -> ApiResult<Json<ModelList>> {
        state.authorize(&auth, Access::Read)?;
        let models = &state.engine.stores.models;
        let active = models.active()?;
        let items = models
            .list()?
            .iter()
            .map(|m| ModelInfo::new(m, active))
            .collect();
        Ok(Json(ModelList {
            active_version: active,
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
        auth: ApiAuth,
    ) -> ApiResult<Json<ActivationHistory>> {
        state.authorize(&auth, Access::Read)?;
        let items = state
            .engine
            .stores
            .models
            .history()?
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
        auth: ApiAuth,
        /// Model version number.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        version: Path<u32>,
    ) -> ApiResult<Json<ModelInfo>> {
        state.authorize(&auth, Access::Read)?;
        let models = &state.engine.stores.models;
        let record = models
            .get(version.0)?
            .ok_or_else(|| version_not_found(version.0))?;
        Ok(Json(ModelInfo::new(&record, models.active()?)))
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
        auth: ApiAuth,
        /// Model version number.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        version: Path<u32>,
        body: OptionalJson<ActivateRequest>,
    ) -> ApiResult<Json<ActivationResponse>> {
        state.authorize(&auth, Access::Write)?;
        let reason = body
            .0
            .and_then(|b| b.reason)
            .unwrap_or_else(|| "activated through the API".into());
        let engine = state.engine.clone();
        let version = version.0;
        let activation = tokio::task::spawn_blocking(move || {
            let activation = engine.registry.activate(version, &reason);
            crate::memory::release_freed_memory();
            activation
        })
        .await
        .map_err(ApiError::internal)??;
        let record = state
            .engine
            .stores
            .models
            .get(version)?
            .ok_or_else(|| version_not_found(version))?;
        Ok(Json(ActivationResponse {
            success: true,
            activation: (&activation).into(),
            model: ModelInfo::new(&record, Some(activation.to)),
        }))
    }
}
