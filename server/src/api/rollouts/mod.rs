mod schema;

pub use schema::*;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::OpenApi;
use sprig_store::RolloutMode;

use super::auth::ApiAuth;
use super::body::RequiredJson;
use super::error::ApiResult;
use super::ApiTags;
use crate::state::AppState;

pub struct RolloutsApi;

#[OpenApi(prefix_path = "/api", tag = "ApiTags::Models")]
impl RolloutsApi {
    /// Run a version in the shadow of the active one
    ///
    /// The candidate runs on `sample` of live predict requests after each answer is sent (the
    /// answer is never delayed or changed), on threads that run only on otherwise idle CPU; at most one
    /// shadow run per inference worker is in flight, and a sampled request finding none free is
    /// dropped and counted. The rollout policy promotes the candidate once it has seen
    /// `rollout.min_requests` requests and agrees, is as confident and (with enough reviewed
    /// predictions) as accurate; it rolls back on errors or on a bound it misses. Verdicts go to
    /// the activation log. One rollout runs at a time (409 `rollout_conflict`); it survives
    /// restarts and counts every replica's traffic.
    #[oai(
        path = "/models/:version/shadow",
        method = "post",
        operation_id = "startShadow"
    )]
    async fn start_shadow(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// The candidate version.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        version: Path<u32>,
        body: RequiredJson<ShadowRequest>,
    ) -> ApiResult<Json<RolloutInfo>> {
        let sample = body.into_inner().sample;
        let view = state
            .engine
            .start_rollout(version.0, RolloutMode::Shadow, sample)
            .await?;
        Ok(Json((&view).into()))
    }

    /// A version's shadow and its live figures
    ///
    /// The latest shadow of the version, running or ended: requests seen, agreement with the
    /// active version, confidence differences, where they disagree, latency, reviewed accuracy
    /// of both, and the verdict once there is one.
    #[oai(
        path = "/models/:version/shadow",
        method = "get",
        operation_id = "getShadow"
    )]
    async fn get_shadow(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// The candidate version.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        version: Path<u32>,
    ) -> ApiResult<Json<RolloutInfo>> {
        let view = state
            .engine
            .rollout_of(version.0, RolloutMode::Shadow)
            .await?;
        Ok(Json((&view).into()))
    }

    /// Stop a version's shadow
    #[oai(
        path = "/models/:version/shadow",
        method = "delete",
        operation_id = "stopShadow"
    )]
    async fn stop_shadow(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// The candidate version.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        version: Path<u32>,
    ) -> ApiResult<Json<RolloutInfo>> {
        let view = state
            .engine
            .stop_rollout(version.0, RolloutMode::Shadow)
            .await?;
        Ok(Json((&view).into()))
    }

    /// Let a version answer a share of requests (canary)
    ///
    /// The candidate answers `percent` of predict requests (the answer's `model_version` says
    /// which version answered); a request with an `X-Client-Id` header always gets the same
    /// version for the same id. Latency, errors and confidence of both versions are kept side by
    /// side; the rollout policy promotes or rolls back as for a shadow, and also rolls back on a
    /// 95th-percentile latency over `rollout.max_latency_ratio` times the active version's.
    #[oai(
        path = "/models/:version/canary",
        method = "post",
        operation_id = "startCanary"
    )]
    async fn start_canary(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// The candidate version.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        version: Path<u32>,
        body: RequiredJson<CanaryRequest>,
    ) -> ApiResult<Json<RolloutInfo>> {
        let share = f64::from(body.into_inner().percent) / 100.0;
        let view = state
            .engine
            .start_rollout(version.0, RolloutMode::Canary, share)
            .await?;
        Ok(Json((&view).into()))
    }

    /// A version's canary and its live figures
    #[oai(
        path = "/models/:version/canary",
        method = "get",
        operation_id = "getCanary"
    )]
    async fn get_canary(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// The candidate version.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        version: Path<u32>,
    ) -> ApiResult<Json<RolloutInfo>> {
        let view = state
            .engine
            .rollout_of(version.0, RolloutMode::Canary)
            .await?;
        Ok(Json((&view).into()))
    }

    /// Stop a version's canary
    #[oai(
        path = "/models/:version/canary",
        method = "delete",
        operation_id = "stopCanary"
    )]
    async fn stop_canary(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
        /// The candidate version.
        #[oai(validator(minimum(value = "0"), maximum(value = "4294967295")))]
        version: Path<u32>,
    ) -> ApiResult<Json<RolloutInfo>> {
        let view = state
            .engine
            .stop_rollout(version.0, RolloutMode::Canary)
            .await?;
        Ok(Json((&view).into()))
    }

    /// Every rollout, newest first
    #[oai(path = "/rollouts", method = "get", operation_id = "listRollouts")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiAuth,
    ) -> ApiResult<Json<RolloutListResponse>> {
        let views = state.engine.rollouts().await?;
        Ok(Json(RolloutListResponse {
            rollouts: views.iter().map(RolloutInfo::from).collect(),
        }))
    }
}
