//! The connection loop: poem's endpoint served by hyper with the bounds poem's own `Server` leaves
//! out. A client must finish its first request's headers within `header_timeout` (which also
//! covers HTTP/2's preface), and hyper holds every later HTTP/1.1 request to the same deadline —
//! including the idle wait for it, so idle keep-alive is bounded too. A connection that moves no
//! bytes either way for `idle_timeout` is closed (HTTP/2 included; event streams send a
//! keep-alive comment every 15 s, so they never look idle).
//!
//! A request refused before its body is read (401, 403, 413) ends with sprig closing the
//! connection while the client may still be sending. Closing a socket with unread bytes makes
//! the kernel send a reset, which can destroy the refusal before the client (or nginx) reads it;
//! so a connection that ends normally is closed the way nginx closes its own ("lingering
//! close"): the write side first, then what still arrives is read and dropped, bounded in time.
//!
//! With TLS, the handshake counts against the header deadline, and a client speaking plain HTTP
//! to the HTTPS port gets a readable 400 (`https_required`) instead of a failed handshake.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use poem::endpoint::BoxEndpoint;
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Endpoint, EndpointExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
    /// How long shutdown waits for in-flight requests.
    pub grace: Duration,
}

/// Serves `ep` on `listener` until `shutdown` resolves, then lets in-flight requests finish for
/// at most `timeouts.grace`.
pub async fn serve<E>(
    listener: TcpListener,
    ep: E,
    tls: Option<TlsAcceptor>,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    E: Endpoint + 'static,
{
    // Type-erased: the middleware stack's nested type, inside the connection's future, overflows
    // the compiler's query depth in release builds.
    let ep: Arc<BoxEndpoint<'static>> = Arc::new(ep.map_to_response().boxed());
    let local = listener.local_addr()?;
    let stopping = CancellationToken::new();
    let connections = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let (ep, tls, stopping) = (ep.clone(), tls.clone(), stopping.clone());
                    let peer = Peer { local, remote, tls };
                    connections.spawn(connection(stream, peer, ep, timeouts, stopping));
                }
                Err(error) => {
                    // Out of file descriptors, most likely: back off instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    stopping.cancel();
    connections.close();
    if tokio::time::timeout(timeouts.grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still running after the {:?} shutdown grace period were cut off",
            timeouts.grace
        );
    }
    Ok(())
}

/// Both ends of a connection, and the TLS it is served with, if any.
struct Peer {
    local: SocketAddr,
    remote: SocketAddr,
    tls: Option<TlsAcceptor>,
}

async fn connection(
    stream: TcpStream,
    peer: Peer,
    ep: Arc<BoxEndpoint<'static>>,
    timeouts: Timeouts,
    stopping: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    // A second handle on the socket, so that it outlives hyper's for the lingering close.
    let Some((stream, lingering)) = split_for_linger(stream) else {
        return;
    };
    let started = Instant::now();
    let io = ActivityIo::new(stream);
    let activity = io.activity.clone();
    let (io, scheme) = match peer.tls {
        None => (Either::Left(io), Scheme::HTTP),
        Some(acceptor) => match handshake(&acceptor, io, timeouts.header).await {
            Some(tls) => (Either::Right(tls), Scheme::HTTPS),
            None => return linger(lingering).await,
        },
    };
    let (local, remote) = (peer.local, peer.remote);
    let first_request = Arc::new(AtomicBool::new(false));
    let service = hyper::service::service_fn({
        let first_request = first_request.clone();
        move |req: hyper::Request<Incoming>| {
            first_request.store(true, Ordering::Relaxed);
            let (ep, scheme) = (ep.clone(), scheme.clone());
            async move {
                let req = poem::Request::from((
                    req,
                    LocalAddr(local.into()),
                    RemoteAddr(remote.into()),
                    scheme.clone(),
                ));
                let response = ep.get_response(req).await;
                Ok::<_, Infallible>(hyper::Response::from(response))
            }
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut check = tokio::time::interval(Duration::from_millis(500).min(timeouts.header));
    loop {
        tokio::select! {
            _ = &mut conn => return linger(lingering).await,
            () = stopping.cancelled() => break,
            _ = check.tick() => {
                let headers_late = !first_request.load(Ordering::Relaxed)
                    && started.elapsed() > timeouts.header;
                if headers_late || activity.idle_for() > timeouts.idle {
                    return; // dropping the connection closes it
                }
            }
        }
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
    linger(lingering).await;
}

/// The TLS handshake, within the header deadline. A first byte that cannot
/// start a TLS handshake record (0x16) is a client speaking plain HTTP: it is told so.
async fn handshake(
    acceptor: &TlsAcceptor,
    mut io: ActivityIo,
    deadline: Duration,
) -> Option<tokio_rustls::server::TlsStream<ActivityIo>> {
    use tokio::io::AsyncWriteExt;
    let deadline = tokio::time::Instant::now() + deadline;
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, io.inner.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == 0x16 => {}
        Ok(Ok(1)) => {
            let _ = io.write_all(https_required().as_bytes()).await;
            return None;
        }
        _ => return None,
    }
    match tokio::time::timeout_at(deadline, acceptor.accept(io)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            tracing::debug!(%error, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// The answer to plain HTTP on the HTTPS port, in sprig's error shape.
fn https_required() -> String {
    let body = serde_json::json!({
        "success": false,
        "error": {
            "code": sprig_core::ErrorCode::HttpsRequired.as_str(),
            "message": "this port speaks HTTPS: use an https:// URL",
        },
    })
    .to_string();
    format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// How long a closing connection's unread input is drained: at most this long in all, and no
/// more than `LINGER_QUIET` after the last byte (nginx's `lingering_timeout` is 5 s).
const LINGER_TOTAL: Duration = Duration::from_secs(5);
const LINGER_QUIET: Duration = Duration::from_secs(2);

fn split_for_linger(stream: TcpStream) -> Option<(TcpStream, std::net::TcpStream)> {
    let std = stream.into_std().ok()?;
    let lingering = std.try_clone().ok()?;
    Some((TcpStream::from_std(std).ok()?, lingering))
}

/// Closes the write side (hyper has, unless it was cut off) and reads until the peer closes
/// or goes quiet, so that the kernel never answers unread bytes with a reset.
async fn linger(socket: std::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let _ = socket.shutdown(std::net::Shutdown::Write);
    let Ok(mut socket) = TcpStream::from_std(socket) else {
        return;
    };
    let deadline = tokio::time::Instant::now() + LINGER_TOTAL;
    let mut sink = [0u8; 8192];
    loop {
        let quiet = tokio::time::Instant::now() + LINGER_QUIET;
        match tokio::time::timeout_at(deadline.min(quiet), socket.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

/// When a connection last moved a byte, shared with the loop that closes idle ones.
struct Activity {
    since: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.since.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        self.since
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A socket that records its activity.
struct ActivityIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl ActivityIo {
    fn new(inner: TcpStream) -> Self {
        Self {
            inner,
            activity: Arc::new(Activity {
                since: Instant::now(),
                last_ms: AtomicU64::new(0),
            }),
        }
    }
}

impl AsyncRead for ActivityIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for ActivityIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
