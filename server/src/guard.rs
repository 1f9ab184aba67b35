//! What is refused before a handler runs and before any byte of a body is read: requests naming
//! another host (DNS rebinding), cross-site writes, missing credentials, and bodies over the
//! route's limit — by `Content-Length` at once, and by counting what is read when there is no
//! length (chunked HTTP/1.1, HTTP/2), so no body is ever buffered past its limit.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use poem::http::{header, Method};
use poem::{Endpoint, IntoResponse, Request, Response};
use tokio::io::{AsyncRead, ReadBuf};

use crate::api::error::ApiError;
use crate::config::Config;
use crate::state::{Access, AppState};
use sprig_core::ErrorCode;

/// The checks, built once from the configuration.
pub struct Guard {
    bind: SocketAddr,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
}

impl Guard {
    pub fn new(config: &Config) -> Self {
        let lower = |names: &[String]| names.iter().map(|n| n.to_ascii_lowercase()).collect();
        Self {
            bind: config.server.addr,
            allowed_hosts: lower(&config.server.allowed_hosts),
            allowed_origins: lower(&config.server.allowed_origins),
        }
    }

    /// `Host` (HTTP/1.1) or the `:authority` (HTTP/2) names this server. A request without one
    /// (HTTP/1.0) cannot come from a browser page, so there is nothing to rebind.
    fn check_host(&self, req: &Request) -> Result<(), ApiError> {
        let Some(authority) = request_authority(req) else {
            return Ok(());
        };
        let name = host_name(&authority);
        if self.host_allowed(&name) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::HostNotAllowed,
                "this server does not answer to that host name; add it to server.allowed_hosts",
            ))
        }
    }

    fn host_allowed(&self, name: &str) -> bool {
        if self.allowed_hosts.iter().any(|h| h == "*" || h == name) {
            return true;
        }
        let ip = name.parse::<IpAddr>().ok();
        let bind = self.bind.ip();
        if ip == Some(bind) {
            return true;
        }
        let loopback_name = name == "localhost" || ip.is_some_and(|ip| ip.is_loopback());
        if bind.is_loopback() {
            loopback_name
        } else if bind.is_unspecified() {
            // Listening on every interface: any of this machine's addresses may be used.
            loopback_name || ip.is_some()
        } else {
            false
        }
    }

    /// A browser says where a request comes from (`Origin`, or `Sec-Fetch-Site` where it sends no
    /// `Origin`); a state-changing request from another site is refused. Clients that send
    /// neither (curl, generated clients) are not browsers and pass.
    fn check_origin(&self, req: &Request) -> Result<(), ApiError> {
        let refused = || {
            ApiError::new(
                ErrorCode::CrossOriginRefused,
                "cross-site requests may not change anything here; add the page's origin to \
                 server.allowed_origins to allow it",
            )
        };
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default().to_ascii_lowercase();
            let own = request_authority(req).map(|a| a.to_ascii_lowercase());
            let same = origin_authority(&origin).is_some_and(|o| Some(o) == own.as_deref());
            return if same || self.allowed_origins.contains(&origin) {
                Ok(())
            } else {
                Err(refused())
            };
        }
        match req.headers().get("sec-fetch-site").map(|v| v.as_bytes()) {
            None | Some(b"same-origin") | Some(b"none") => Ok(()),
            Some(_) => Err(refused()),
        }
    }
}

/// `host[:port]` the request was sent to.
fn request_authority(req: &Request) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
}

/// The name part of `host[:port]`, `[v6]:port` or `v6`, lower-cased.
fn host_name(authority: &str) -> String {
    let authority = authority.to_ascii_lowercase();
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    if authority.matches(':').count() > 1 {
        return authority; // a bare IPv6 address
    }
    authority.split(':').next().unwrap_or_default().to_string()
}

/// `host[:port]` of an origin such as `http://127.0.0.1:8080` (`null` and junk: none).
fn origin_authority(origin: &str) -> Option<&str> {
    let (_, rest) = origin.split_once("://")?;
    Some(rest.trim_end_matches('/'))
}

/// Who may call a route, from its method and path alone (so it is known before the body).
pub fn route_access(method: &Method, path: &str) -> Option<Access> {
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    match path {
        "/livez" | "/readyz" => None,
        // The original project's web form posts to `/predict`: a prediction, like the API's.
        "/api/predict" | "/api/predict/batch" | "/predict" if *method == Method::POST => {
            Some(Access::Read)
        }
        _ if !safe => Some(Access::Write),
        p if p.starts_with("/api/") || p == "/metrics" => Some(Access::Read),
        _ => None,
    }
}

/// True for methods that change state (and so must come from this site).
pub(crate) fn changes_state(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The body limit of a request, by route.
fn body_limit(config: &Config, method: &Method, path: &str) -> u64 {
    let limits = &config.limits;
    match (method, path) {
        (&Method::POST, "/api/predict" | "/predict") => limits.predict_body_bytes,
        (&Method::POST, "/api/predict/batch") => limits.batch_body_bytes,
        (&Method::POST, "/api/images") => limits.upload_body_bytes,
        (&Method::POST, "/api/models/import") => limits.bundle_body_bytes,
        _ => limits.json_body_bytes,
    }
}

/// The middleware: host, origin, credentials and body limit, in that order, each before the
/// body is read. A body cut at its limit is answered 413 whatever the handler made of the cut,
/// and so is a multipart body with more parts than the route takes files (each part would be
/// spooled to a temp file, holding a file descriptor, before the handler could count them).
pub async fn guard<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    state: Arc<AppState>,
    guard: Arc<Guard>,
) -> poem::Result<Response> {
    let limit = body_limit(&state.config, req.method(), req.uri().path());
    let declared = declared_length(&req);
    if let Err(refusal) = admit(&req, &state, &guard, declared, limit) {
        return Ok(refuse(req, declared, refusal).await);
    }
    let parts = multipart_parts(&state.config, &req);
    match declared {
        // A body on a GET or HEAD means nothing here, but left unread it makes the close after
        // the answer a reset that can cut the answer off: read it (it is within the limit).
        Some(length) if length > 0 && !changes_state(req.method()) => {
            let body = req.take_body();
            body.into_bytes().await?;
            return Ok(ep.call(req).await?.into_response());
        }
        // hyper holds a declared body to its length.
        Some(_) if parts.is_none() => return Ok(ep.call(req).await?.into_response()),
        None if !changes_state(req.method()) => return Ok(ep.call(req).await?.into_response()),
        _ => {}
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    let too_many_parts = Arc::new(AtomicBool::new(false));
    let max_files = parts.as_ref().map(|p| p.max_files);
    let body = CappedBody {
        inner: Box::pin(req.take_body().into_async_read()),
        remaining: limit,
        exceeded: exceeded.clone(),
        parts: parts.map(|p| PartCounter::new(p, too_many_parts.clone())),
    };
    req.set_body(poem::Body::from_async_read(body));
    let result = ep.call(req).await;
    if exceeded.load(Ordering::Acquire) {
        return Err(ApiError::payload_too_large(limit).into());
    }
    if let Some(max) = max_files.filter(|_| too_many_parts.load(Ordering::Acquire)) {
        return Err(ApiError::too_many_files(max + 1, max).into());
    }
    Ok(result?.into_response())
}

/// Host, origin, credentials and the declared length, none of which needs the body.
fn admit(
    req: &Request,
    state: &AppState,
    guard: &Guard,
    declared: Option<u64>,
    limit: u64,
) -> Result<(), ApiError> {
    guard.check_host(req)?;
    if changes_state(req.method()) {
        guard.check_origin(req)?;
    }
    if let Some(access) = route_access(req.method(), req.uri().path()) {
        let presented = bearer_token(req);
        state.check_token(presented.as_deref(), access)?;
    }
    match declared {
        Some(length) if length > limit => Err(ApiError::payload_too_large(limit)),
        _ => Ok(()),
    }
}

fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The most of a refused body that is read and dropped rather than left unread.
const DRAINED_BYTES: u64 = 1 << 20;

/// Marks an answer whose request body was read to its end, although it was refused.
#[derive(Clone, Copy)]
pub struct BodyDrained;

/// Answers a refusal made before the body was read: a small declared body is read and dropped,
/// so the connection stays usable; any other is left unread, and the answer closes the
/// connection (see `http::close_after_failed_write`).
async fn refuse(mut req: Request, declared: Option<u64>, refusal: ApiError) -> Response {
    let mut response = refusal.into_response();
    if declared.is_some_and(|length| length > 0 && length <= DRAINED_BYTES) {
        let mut body = req.take_body().into_async_read();
        if tokio::io::copy(&mut body, &mut tokio::io::sink())
            .await
            .is_ok()
        {
            response.extensions_mut().insert(BodyDrained);
        }
    }
    response
}

/// Fields a file form may carry besides its files (`class`, and a few that are ignored).
const OTHER_FIELDS: usize = 8;

/// How a multipart body's parts are counted: its delimiter, and the most files it may carry.
struct Parts {
    delimiter: Vec<u8>,
    max_files: usize,
}

/// The part bound of a multipart request to a route that takes several files.
fn multipart_parts(config: &Config, req: &Request) -> Option<Parts> {
    let max_files = match (req.method(), req.uri().path()) {
        (&Method::POST, "/api/images") => config.limits.upload_max_files,
        (&Method::POST, "/api/predict/batch") => config.limits.batch_max_files,
        _ => return None,
    };
    let content_type = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    let boundary = multer::parse_boundary(content_type).ok()?;
    Some(Parts {
        delimiter: format!("\r\n--{boundary}").into_bytes(),
        max_files,
    })
}

/// Counts part delimiters as the body streams past (a match may span reads).
struct PartCounter {
    delimiter: Vec<u8>,
    /// How much of the delimiter the bytes so far end with.
    matched: usize,
    /// The body's first delimiter has no leading CRLF; count it as if it had.
    seen: usize,
    max_parts: usize,
    exceeded: Arc<AtomicBool>,
}

impl PartCounter {
    fn new(parts: Parts, exceeded: Arc<AtomicBool>) -> Self {
        Self {
            // The body starts right after an implicit CRLF.
            matched: 2,
            delimiter: parts.delimiter,
            seen: 0,
            // Each part opens with a delimiter; the closing one is one more.
            max_parts: parts.max_files + OTHER_FIELDS + 1,
            exceeded,
        }
    }

    /// Feeds bytes; false once there are more delimiters than allowed.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        for &byte in bytes {
            while self.matched > 0 && self.delimiter[self.matched] != byte {
                // The delimiter starts with CRLF and has no other CR: restart from scratch, or
                // from the CR just seen.
                self.matched = 0;
            }
            if self.delimiter[self.matched] == byte {
                self.matched += 1;
            }
            if self.matched == self.delimiter.len() {
                self.matched = 0;
                self.seen += 1;
                if self.seen > self.max_parts {
                    self.exceeded.store(true, Ordering::Release);
                    return false;
                }
            }
        }
        true
    }
}

fn bearer_token(req: &Request) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// A body that fails once more than `remaining` bytes (or, for multipart, parts) arrive,
/// remembering that it did.
struct CappedBody {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    remaining: u64,
    exceeded: Arc<AtomicBool>,
    parts: Option<PartCounter>,
}

impl AsyncRead for CappedBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = self.inner.as_mut().poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            let read = (buf.filled().len() - before) as u64;
            if read > self.remaining {
                self.exceeded.store(true, Ordering::Release);
                buf.set_filled(before);
                return Poll::Ready(Err(std::io::Error::other("body over its limit")));
            }
            self.remaining -= read;
            let fresh = &buf.filled()[before..];
            if let Some(parts) = self.parts.as_mut() {
                if !parts.feed(fresh) {
                    buf.set_filled(before);
                    return Poll::Ready(Err(std::io::Error::other("too many parts")));
                }
            }
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(bind: &str, hosts: &[&str]) -> Guard {
        Guard {
            bind: bind.parse().unwrap(),
            allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            allowed_origins: Vec::new(),
        }
    }

    #[test]
    fn host_names_are_parsed_from_every_authority_form() {
        assert_eq!(host_name("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(host_name("LocalHost"), "localhost");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("::1"), "::1");
        assert_eq!(
            origin_authority("http://127.0.0.1:8080"),
            Some("127.0.0.1:8080")
        );
        assert_eq!(origin_authority("null"), None);
    }

    #[test]
    fn a_loopback_server_answers_only_to_loopback_names_and_listed_hosts() {
        let loopback = guard("127.0.0.1:8080", &["sprig.internal"]);
        for ok in ["127.0.0.1", "localhost", "::1", "sprig.internal"] {
            assert!(loopback.host_allowed(ok), "{ok}");
        }
        for refused in ["evil.example", "10.0.0.1", "localhost.evil.example"] {
            assert!(!loopback.host_allowed(refused), "{refused}");
        }
        let everywhere = guard("0.0.0.0:8080", &[]);
        assert!(everywhere.host_allowed("192.0.2.7"));
        assert!(!everywhere.host_allowed("rebind.example"));
        assert!(guard("127.0.0.1:8080", &["*"]).host_allowed("anything.example"));
    }

    #[test]
    fn part_delimiters_are_counted_across_reads() {
        let exceeded = Arc::new(AtomicBool::new(false));
        let parts = Parts {
            delimiter: b"\r\n--xy".to_vec(),
            max_files: 1,
        };
        let mut counter = PartCounter::new(parts, exceeded.clone());
        let body = b"--xy\r\na\r\n--xy\r\nb\r\n\r\n--x\r\n--xy--\r\n";
        // Fed one byte at a time, a delimiter split anywhere still counts once.
        for byte in body {
            assert!(counter.feed(&[*byte]));
        }
        assert_eq!(counter.seen, 3);
        // 1 file + 8 other fields + the closing delimiter = 10 delimiters allowed.
        for _ in 0..6 {
            assert!(counter.feed(b"\r\n--xy"));
        }
        assert_eq!(counter.seen, 9);
        assert!(counter.feed(b"\r\n--xy"));
        assert!(!counter.feed(b"\r\n--xy"));
        assert!(exceeded.load(Ordering::Acquire));
    }

    #[test]
    fn routes_are_classified_before_their_body() {
        assert_eq!(route_access(&Method::GET, "/readyz"), None);
        assert_eq!(route_access(&Method::GET, "/"), None);
        assert_eq!(
            route_access(&Method::POST, "/api/predict"),
            Some(Access::Read)
        );
        assert_eq!(route_access(&Method::GET, "/metrics"), Some(Access::Read));
        assert_eq!(
            route_access(&Method::POST, "/api/models/1/activate"),
            Some(Access::Write)
        );
        assert_eq!(
            route_access(&Method::from_bytes(b"BREW").unwrap(), "/nowhere"),
            Some(Access::Write)
        );
    }
}
