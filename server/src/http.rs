//! Routes and HTTP middleware: per-route body limits, request timeout, request metrics, and the
//! JSON error shape for poem's own rejections (unknown routes, bad content type, bad multipart).

use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::endpoint::{EmbeddedFileEndpoint, EmbeddedFilesEndpoint};
use poem::http::{header, Method, StatusCode};
use poem::{Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Request, Response, Route};
use poem_openapi::OperationId;
use rust_embed::RustEmbed;

use crate::api::error::ApiError;
use crate::config::LimitsConfig;
use crate::state::AppState;

/// The static web app in `web/`, embedded in the binary.
#[derive(RustEmbed)]
#[folder = "../web/static"]
struct WebAssets;

/// The whole application: API, spec, Swagger UI, web page and middleware.
pub fn app(state: Arc<AppState>) -> impl Endpoint {
    let service = crate::api::service();
    let limits = state.config.limits.clone();
    let timeout = Duration::from_secs(state.config.server.request_timeout_secs);
    let metrics_state = state.clone();
    Route::new()
        .nest("/docs", service.swagger_ui())
        .at("/openapi.json", service.spec_endpoint())
        .nest("/", service)
        .nest("/static", EmbeddedFilesEndpoint::<WebAssets>::new())
        .data(state)
        .around(web_page_at_root)
        .around(head_as_get)
        .around(move |ep, req| body_limits(ep, req, limits.clone()))
        .around(move |ep, req| with_timeout(ep, req, timeout))
        .catch_all_error(|error: poem::Error| async move { json_error(error) })
        .around(move |ep, req| record_metrics(ep, req, metrics_state.clone()))
        .into_endpoint()
}

/// The web page at `/` (the API service is nested at the root, so it is routed here).
async fn web_page_at_root<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    if req.uri().path() == "/" && req.method() == Method::GET {
        return Ok(EmbeddedFileEndpoint::<WebAssets>::new("index.html")
            .call(req)
            .await?
            .into_response());
    }
    Ok(ep.call(req).await?.into_response())
}

/// Answers HEAD like GET without the body (monitors and proxies probe with HEAD).
async fn head_as_get<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    if req.method() != Method::HEAD {
        return Ok(ep.call(req).await?.into_response());
    }
    req.set_method(Method::GET);
    let mut response = ep.call(req).await?.into_response();
    let length = response.headers().get(header::CONTENT_LENGTH).cloned();
    response.set_body(poem::Body::empty());
    if let Some(length) = length {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, length);
    }
    Ok(response)
}

/// poem's rejections in sprig's error shape; sprig's own API errors pass through unchanged.
fn json_error(error: poem::Error) -> Response {
    if error.is::<ApiError>() {
        return error.into_response();
    }
    ApiError::from_poem(&error).into_response()
}

/// The body limit of a request, by route.
fn body_limit(limits: &LimitsConfig, method: &Method, path: &str) -> u64 {
    match (method, path) {
        (&Method::POST, "/api/predict") => limits.predict_body_bytes,
        (&Method::POST, "/api/predict/batch") => limits.batch_body_bytes,
        (&Method::POST, "/api/images") => limits.upload_body_bytes,
        _ => limits.json_body_bytes,
    }
}

/// Refuses bodies over the route's limit: by `Content-Length` before reading anything, and for
/// chunked bodies by capping what is read (the parser then fails on the cut body).
async fn body_limits<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    limits: LimitsConfig,
) -> poem::Result<Response> {
    let limit = body_limit(&limits, req.method(), req.uri().path());
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => return Err(ApiError::payload_too_large(limit).into()),
        Some(_) => {}
        None if req.headers().contains_key(header::TRANSFER_ENCODING) => {
            use tokio::io::AsyncReadExt;
            let body = req.take_body().into_async_read().take(limit);
            req.set_body(poem::Body::from_async_read(body));
        }
        None => {}
    }
    Ok(ep.call(req).await?.into_response())
}

/// Answers 503 `request_timeout` when a request runs too long; event streams are exempt
/// (their handler returns at once and the stream runs on).
async fn with_timeout<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    timeout: Duration,
) -> poem::Result<Response> {
    match tokio::time::timeout(timeout, ep.call(req)).await {
        Ok(result) => Ok(result?.into_response()),
        Err(_) => {
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                format!("the request took longer than {} s", timeout.as_secs()),
            );
            error.retry_after = Some(5);
            Err(error.into())
        }
    }
}

/// Counts and times every request by route (the API operation id, or a coarse name otherwise).
async fn record_metrics<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    state: Arc<AppState>,
) -> poem::Result<Response> {
    let started = Instant::now();
    let method = req.method().to_string();
    let fallback_route = match req.uri().path() {
        p if p.starts_with("/static") || p == "/" => "web",
        p if p.starts_with("/docs") => "docs",
        "/openapi.json" => "openapi",
        _ => "unmatched",
    };
    let response = ep.call(req).await?.into_response();
    let route = response
        .extensions()
        .get::<OperationId>()
        .map_or(fallback_route, |id| id.0);
    state.metrics.observe_request(
        route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    Ok(response)
}
