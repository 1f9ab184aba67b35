//! Routes and HTTP middleware: the guard (host, origin, token, body limit), request timeout, request metrics, and the
//! JSON error shape for poem's own rejections (unknown routes, bad content type, bad multipart).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use poem::endpoint::{EmbeddedFileEndpoint, EmbeddedFilesEndpoint};
use poem::http::{header, HeaderValue, Method, StatusCode};
use poem::{get, Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Request, Response, Route};
use poem_openapi::OperationId;
use rust_embed::RustEmbed;

use crate::api::error::ApiError;
use crate::guard::{route_access, BodyDrained, Guard};
use crate::pages;
use crate::state::{Access, AppState};
use sprig_core::ErrorCode;

/// The static web app in `web/`, embedded in the binary.
#[derive(RustEmbed)]
#[folder = "../web/static"]
pub(crate) struct WebAssets;

/// The whole application: API, spec, Swagger UI, web page and middleware.
pub fn app(state: Arc<AppState>) -> impl Endpoint {
    let service = crate::api::service();
    let guard = Arc::new(Guard::new(&state.config));
    let guard_state = state.clone();
    let durable_state = state.clone();
    let timeout = Duration::from_secs(state.config.server.request_timeout_secs);
    let metrics_state = state.clone();
    let mut routes = Route::new();
    for (path, _) in crate::pages::PAGE_VIEWS {
        routes = match path {
            "/predict" => routes.at(path, get(pages::single_page()).post(pages::predict_form)),
            _ => routes.at(path, get(pages::single_page())),
        };
    }
    routes
        .nest("/docs", service.swagger_ui())
        .at(
            "/openapi.json",
            poem::endpoint::make_sync(|_| spec_response()),
        )
        .nest("/", service)
        .nest("/static", EmbeddedFilesEndpoint::<WebAssets>::new())
        .data(state)
        .around(web_page_at_root)
        .around(head_as_get)
        .around(move |ep, req| durable_writes(ep, req, durable_state.clone()))
        .around(move |ep, req| crate::guard::guard(ep, req, guard_state.clone(), guard.clone()))
        .around(move |ep, req| with_timeout(ep, req, timeout))
        .catch_all_error(|error: poem::Error| async move { json_error(error) })
        .around(close_after_failed_write)
        .around(allow_on_405)
        .around(move |ep, req| record_metrics(ep, req, metrics_state.clone()))
        .into_endpoint()
}

/// An error answer to a request that sent a body says the connection closes, since the body may
/// be unread (refused before it, or cut off mid-way). A connection closed without saying so goes
/// back into a proxy's pool (nginx's `keepalive`), and the next request sent on it fails there as
/// a 502. Bodies the guard read to their end keep the connection.
async fn close_after_failed_write<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let sent_body = crate::guard::changes_state(req.method())
        && (req.headers().contains_key(header::TRANSFER_ENCODING)
            || req
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_some_and(|length| length.as_bytes() != b"0"));
    let mut response = ep.call(req).await?.into_response();
    let failed = response.status().is_client_error() || response.status().is_server_error();
    if sent_body && failed && response.extensions().get::<BodyDrained>().is_none() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// The spec with its links (see `api::spec_json`), made once.
fn spec_response() -> Response {
    static SPEC: OnceLock<String> = OnceLock::new();
    Response::builder()
        .content_type("application/json; charset=utf-8")
        .body(SPEC.get_or_init(crate::api::spec_json).clone())
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

/// Answers HEAD like GET without the body (monitors and proxies probe with HEAD), with GET's
/// `Content-Length` where the body's size is known without reading it (not a stream's).
async fn head_as_get<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    if req.method() != Method::HEAD {
        return Ok(ep.call(req).await?.into_response());
    }
    req.set_method(Method::GET);
    let mut response = ep.call(req).await?.into_response();
    let body: http_body_util::combinators::BoxBody<hyper::body::Bytes, std::io::Error> =
        response.take_body().into();
    let length = hyper::body::Body::size_hint(&body).exact();
    drop(body);
    if let Some(length) = length {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, length.into());
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

/// A 2xx to a write means the write is on disk: the database is flushed before the answer
/// leaves (sled otherwise flushes every 500 ms, and a crash or full disk in between lost an
/// acknowledged upload).
async fn durable_writes<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    state: Arc<AppState>,
) -> poem::Result<Response> {
    let write = route_access(req.method(), req.uri().path()) == Some(Access::Write);
    let response = ep.call(req).await?.into_response();
    if write && response.status().is_success() {
        let engine = state.engine.clone();
        tokio::task::spawn_blocking(move || engine.make_durable())
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)?;
    }
    Ok(response)
}

/// A 405 names the methods the route has (`Allow`, RFC 9110), from the spec.
async fn allow_on_405<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let path = req.uri().path().to_string();
    let mut response = ep.call(req).await?.into_response();
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        if let Some(allow) = allowed_methods(&path) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
    }
    Ok(response)
}

/// The methods the spec lists for the route `path` matches (HEAD wherever GET is).
fn allowed_methods(path: &str) -> Option<HeaderValue> {
    type Routes = Vec<(Vec<String>, HeaderValue)>;
    static ROUTES: OnceLock<Routes> = OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        let spec: serde_json::Value =
            serde_json::from_str(&crate::api::service().spec()).unwrap_or_default();
        let Some(paths) = spec["paths"].as_object() else {
            return Vec::new();
        };
        paths
            .iter()
            .filter_map(|(template, operations)| {
                let mut methods: Vec<String> = operations
                    .as_object()?
                    .keys()
                    .map(|m| m.to_ascii_uppercase())
                    .collect();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                let segments = template.split('/').map(String::from).collect();
                Some((segments, HeaderValue::from_str(&methods.join(", ")).ok()?))
            })
            .collect()
    });
    let segments: Vec<&str> = path.split('/').collect();
    // The most literal match wins (`/api/models/history` over `/api/models/{version}`).
    routes
        .iter()
        .filter(|(template, _)| {
            template.len() == segments.len()
                && template
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') || t == s)
        })
        .max_by_key(|(template, _)| template.iter().filter(|t| !t.starts_with('{')).count())
        .map(|(_, allow)| allow.clone())
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
        Err(_) => Err(ApiError::new(
            ErrorCode::RequestTimeout,
            format!("the request took longer than {} s", timeout.as_secs()),
        )
        .into()),
    }
}

/// Counts and times every request by route (the API operation id, or a coarse name otherwise).
async fn record_metrics<E: Endpoint>(
    ep: Arc<E>,
    req: Request,
    state: Arc<AppState>,
) -> poem::Result<Response> {
    let started = Instant::now();
    let method = method_label(req.method());
    let fallback_route = match req.uri().path() {
        p if p.starts_with("/static") || p == "/" => "web",
        p if crate::pages::PAGE_VIEWS.iter().any(|(page, _)| *page == p) => "web",
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
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    Ok(response)
}

/// The method as a metric label: the standard ones by name, anything a client invents as `other`
/// (labels are never taken verbatim from a request, or one client could grow `/metrics` without
/// bound).
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("other")
}
