//! Request bodies against the real binary: bodies without a length (HTTP/2, chunked HTTP/1.1)
//! capped at the route's limit before they are read whole, credentials checked before any body
//! byte is read, and per-file limits from the part's size. Memory bounds are read from the
//! server's own peak RSS (`VmHWM`), before and after each attack. Other hostile input is in
//! `hostile.rs`.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::raw::{
    code_of, connect, peak_rss_mib, raw_request, read_answer_with_headers, read_response,
};
use common::{test_image, Options, Sprig};
use futures::StreamExt;
use serde_json::Value;

const TOKEN: &str = "hostile-token-0123456789abcdef";
const MIB: u64 = 1024 * 1024;

/// An HTTP/2 (prior knowledge, no TLS) client: its requests carry no `Content-Length` when the
/// body is a stream.
fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `total` bytes of spaces, streamed in 1 MiB chunks (never held whole by the test either).
fn streamed_body(total: u64) -> reqwest::Body {
    let chunk = bytes::Bytes::from(vec![b' '; MIB as usize]);
    let chunks = (0..total / MIB).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    reqwest::Body::wrap_stream(futures::stream::iter(chunks))
}

#[tokio::test]
async fn http2_bodies_without_a_length_are_refused_by_credentials_then_by_size() {
    let server = Sprig::start_with(Options::bootstrapped().env("SPRIG_AUTH__TOKEN", TOKEN));
    let client = h2_client();
    let before = peak_rss_mib(&server);

    // No token: 401 before any of the 300 MiB is read.
    let response = client
        .post(server.url("/api/models/1/activate"))
        .header("content-type", "application/json")
        .body(streamed_body(300 * MIB))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    // With the token: the 1 MiB JSON limit holds without a Content-Length.
    let response = client
        .post(server.url("/api/models/1/activate"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(streamed_body(300 * MIB))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    let after = peak_rss_mib(&server);
    println!("measured: peak RSS {before} -> {after} MiB");
    // Before the guard, one such request raised the peak by ~1 GB (issue 15).
    assert!(
        after - before < 64,
        "peak RSS rose from {before} to {after} MiB"
    );
    // The server is still up and the API still works over HTTP/2.
    let response = client.get(server.url("/api/models")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn credentials_are_checked_before_the_body_is_read() {
    let server = Sprig::start_with(Options::bootstrapped().env("SPRIG_AUTH__TOKEN", TOKEN));
    let before = peak_rss_mib(&server);
    // A raw 400 MiB upload (under the 500 MiB upload limit) without a token: only 1 MiB is sent,
    // and the answer must come anyway — the server does not wait for the rest.
    let started = Instant::now();
    let (status, body) = raw_request(
        &server,
        &format!(
            "POST /api/images?class=healthy HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            server.address(),
            400 * MIB
        ),
        &vec![0u8; MIB as usize],
    );
    assert_eq!((status, code_of(&body).as_str()), (401, "unauthorized"));
    assert!(started.elapsed() < Duration::from_secs(10));

    // 30 000 empty multipart parts without a token: 401, not a file descriptor per part.
    let boundary = "b0undary";
    let mut form = String::new();
    for _ in 0..30_000 {
        form.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x\"\r\n\r\n\r\n"
        ));
    }
    form.push_str(&format!("--{boundary}--\r\n"));
    let (status, body) = raw_request(
        &server,
        &format!(
            "POST /api/images HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
            server.address(),
            form.len()
        ),
        form.as_bytes(),
    );
    assert_eq!((status, code_of(&body).as_str()), (401, "unauthorized"));
    // With the token, the parts are counted as they arrive: refused at the 1001st file, before
    // 30 000 temp files are opened.
    let (status, body) = raw_request(
        &server,
        &format!(
            "POST /api/images HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
            server.address(),
            form.len()
        ),
        form.as_bytes(),
    );
    assert_eq!(
        (status, code_of(&body).as_str()),
        (413, "too_many_files"),
        "{body}"
    );
    let after = peak_rss_mib(&server);
    println!("measured: peak RSS {before} -> {after} MiB");
    assert!(
        after - before < 64,
        "peak RSS rose from {before} to {after} MiB"
    );
    assert_eq!(server.status_of("/readyz"), Some(200));
}

/// What nginx does with a request: it sends the whole body, then reads the answer. sprig refuses
/// before reading the body and closes; had it closed with the body unread, the kernel's reset
/// would fail the client's writes (nginx answers that 502) and can destroy the refusal itself.
#[tokio::test]
async fn an_early_refusal_reaches_a_client_that_sends_its_whole_body() {
    let server = Sprig::start_with(Options::bootstrapped().env("SPRIG_AUTH__TOKEN", TOKEN));
    let chunk = vec![0u8; 64 * 1024];
    let chunks = 32;
    let mut stream = connect(&server);
    write!(
        stream,
        "POST /api/images?class=healthy HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        server.address(),
        chunk.len() * chunks
    )
    .unwrap();
    for sent in 0..chunks {
        // Paced, so that the refusal and the close come while the body is still arriving.
        std::thread::sleep(Duration::from_millis(10));
        if let Err(error) = stream.write_all(&chunk) {
            panic!("the server reset the connection after {sent} of {chunks} chunks: {error}");
        }
    }
    let (status, body) = read_response(&mut stream);
    assert_eq!((status, code_of(&body).as_str()), (401, "unauthorized"));
}

/// What nginx's `keepalive` to sprig needs after a refusal: either the connection stays usable
/// (a small body is read and dropped) or the answer says `Connection: close`. A connection closed
/// without saying so is put back in nginx's pool, and the next request sent on it is a 502.
#[tokio::test]
async fn a_refused_connection_is_either_reusable_or_says_it_closes() {
    let server = Sprig::start_with(Options::bootstrapped().env("SPRIG_AUTH__TOKEN", TOKEN));
    let upload_head = |length: u64| {
        format!(
            "POST /api/images?class=healthy HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n",
            server.address()
        )
    };
    // A small refused body: the next request on the same connection is answered.
    let mut stream = connect(&server);
    stream.write_all(upload_head(100_000).as_bytes()).unwrap();
    stream.write_all(&vec![7u8; 100_000]).unwrap();
    let (status, headers, _) = read_answer_with_headers(&mut stream);
    assert_eq!(status, 401);
    assert!(!says_close(&headers), "{headers:?}");
    write!(
        stream,
        "GET /livez HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.address()
    )
    .unwrap();
    let (status, body) = read_response(&mut stream);
    assert_eq!(status, 200, "the connection was not left usable: {body}");

    // A large one (only its start sent): the refusal says the connection closes.
    let mut stream = connect(&server);
    stream.write_all(upload_head(64 * MIB).as_bytes()).unwrap();
    stream.write_all(&vec![7u8; 64 * 1024]).unwrap();
    let (status, headers, _) = read_answer_with_headers(&mut stream);
    assert_eq!(status, 401);
    assert!(says_close(&headers), "{headers:?}");
}

fn says_close(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(name, value)| name == "connection" && value.eq_ignore_ascii_case("close"))
}

#[tokio::test]
async fn chunked_bodies_past_the_limit_are_413() {
    let server = Sprig::start();
    // 2 MiB of JSON, chunked, to a route whose limit is 1 MiB.
    let mut body = Vec::new();
    for _ in 0..32 {
        body.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        body.extend_from_slice(&vec![b' '; 64 * 1024]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let (status, response) = raw_request(
        &server,
        &format!(
            "POST /api/retrain HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            server.address()
        ),
        &body,
    );
    assert_eq!(
        (status, code_of(&response).as_str()),
        (413, "payload_too_large"),
        "{response}"
    );
}

#[tokio::test]
async fn a_file_over_the_per_file_limit_is_refused_from_its_size() {
    let server = Sprig::start();
    let before = peak_rss_mib(&server);
    // One 400 MiB part (under the 500 MiB upload limit, over the 20 MiB file limit), and one good
    // image: the first is rejected without being read into memory, the second stored.
    let big = reqwest::multipart::Part::stream_with_length(streamed_body(400 * MIB), 400 * MIB)
        .file_name("huge.jpg");
    let form = reqwest::multipart::Form::new()
        .text("class", "healthy")
        .part("files", big)
        .part(
            "files",
            reqwest::multipart::Part::bytes(test_image("healthy", "test-healthy_0030.jpg"))
                .file_name("good.jpg"),
        );
    let response = server
        .client
        .post(server.url("/api/images"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["items"][0]["status"], "rejected", "{body}");
    assert_eq!(body["items"][0]["error"]["code"], "file_too_large");
    assert_eq!(body["items"][1]["status"], "stored", "{body}");
    let after = peak_rss_mib(&server);
    println!("measured: peak RSS {before} -> {after} MiB");
    // Before: the part was read whole first (~594 MB peak, issue 15).
    assert!(
        after - before < 64,
        "peak RSS rose from {before} to {after} MiB"
    );
}

/// The start of a multipart body for `route` whose one file part goes on as long as the sender
/// likes (an upload names its class first).
fn open_ended_form(route: &str) -> Vec<u8> {
    let mut form = String::new();
    let field = if route == "/api/images" {
        form.push_str(
            "--sprig\r\nContent-Disposition: form-data; name=\"class\"\r\n\r\nhealthy\r\n",
        );
        "files"
    } else {
        "file"
    };
    form.push_str(&format!(
        "--sprig\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"endless.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    ));
    form.into_bytes()
}

/// A whole multipart body for `route` carrying `image`.
fn form_with(route: &str, image: &[u8]) -> Vec<u8> {
    let mut form = open_ended_form(route);
    form.extend_from_slice(image);
    form.extend_from_slice(b"\r\n--sprig--\r\n");
    form
}

fn chunked_head(server: &Sprig, route: &str) -> String {
    format!(
        "POST {route} HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary=sprig\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.address()
    )
}

/// `body` in chunked transfer coding, 16 KiB a chunk, with the closing chunk.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(16 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Sends a chunked body that never ends (`start`, then 64 KiB chunks, up to 64 MiB, never the
/// closing chunk) and returns the answer with how many body bytes were sent by then. A server that
/// waited for the end of the body would never answer (the read gives up after 30 s).
fn answer_to_an_endless_chunked_body(server: &Sprig, route: &str) -> (u16, String, u64) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let mut stream = connect(server);
    stream
        .write_all(chunked_head(server, route).as_bytes())
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (sent, stop) = (sent.clone(), stop.clone());
        let start = open_ended_form(route);
        std::thread::spawn(move || {
            let mut chunk = format!("{:x}\r\n", start.len()).into_bytes();
            chunk.extend_from_slice(&start);
            chunk.extend_from_slice(b"\r\n");
            let filler = 64 * 1024;
            while !stop.load(Ordering::Relaxed) && sent.load(Ordering::Relaxed) < 64 * MIB {
                if writer.write_all(&chunk).is_err() {
                    return;
                }
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                chunk = format!("{filler:x}\r\n").into_bytes();
                chunk.extend(std::iter::repeat_n(0xA5, filler));
                chunk.extend_from_slice(b"\r\n");
            }
        })
    };
    let (status, body) = read_response(&mut stream);
    let at = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    (status, body, at)
}

/// The chunked-body limit on the image routes, where bodies are large: past the configured limit
/// the answer is 413 `payload_too_large` without waiting for the body's end, and the server goes
/// on serving (chunked bodies within the limit included).
#[tokio::test]
async fn chunked_image_bodies_past_their_limits_are_refused_before_they_end() {
    let server = Sprig::start_with(
        Options::bootstrapped()
            .env("SPRIG_LIMITS__PREDICT_BODY_BYTES", &(2 * MIB).to_string())
            .env("SPRIG_LIMITS__UPLOAD_BODY_BYTES", &(3 * MIB).to_string()),
    );
    let before = peak_rss_mib(&server);
    for (route, limit) in [("/api/predict", 2 * MIB), ("/api/images", 3 * MIB)] {
        let (status, body, sent) = answer_to_an_endless_chunked_body(&server, route);
        assert_eq!(
            (status, code_of(&body).as_str()),
            (413, "payload_too_large"),
            "{route}: {body}"
        );
        assert!(
            body.contains(&format!("{limit}-byte limit")),
            "{route}: {body}"
        );
        println!("measured: {route} answered 413 after {sent} body bytes were sent");
        assert_eq!(server.status_of("/readyz"), Some(200), "after {route}");
    }
    let after = peak_rss_mib(&server);
    println!("measured: peak RSS {before} -> {after} MiB");
    assert!(
        after - before < 64,
        "peak RSS rose from {before} to {after} MiB"
    );

    // Chunked bodies within the limits are served: the limit refused the others, not the coding.
    let image = test_image("healthy", "test-healthy_0007.jpg");
    for route in ["/api/predict", "/api/images"] {
        let (status, body) = raw_request(
            &server,
            &chunked_head(&server, route),
            &chunked(&form_with(route, &image)),
        );
        assert_eq!(status, 200, "{route}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        if route == "/api/predict" {
            assert_eq!(body["predicted_class"], "healthy", "{body}");
        } else {
            assert_eq!(body["items"][0]["status"], "stored", "{body}");
        }
    }
}

/// The same over HTTP/2, where no request has a `Content-Length` when its body is a stream.
#[tokio::test]
async fn http2_predict_bodies_past_the_limit_are_refused_before_they_end() {
    let server = Sprig::start_with(
        Options::bootstrapped().env("SPRIG_LIMITS__PREDICT_BODY_BYTES", &(2 * MIB).to_string()),
    );
    let client = h2_client();
    let start = bytes::Bytes::from(open_ended_form("/api/predict"));
    let filler = bytes::Bytes::from(vec![0xA5; 64 * 1024]);
    let endless = futures::stream::iter([start])
        .chain(futures::stream::repeat(filler))
        .map(Ok::<_, std::io::Error>);
    let response = client
        .post(server.url("/api/predict"))
        .header("content-type", "multipart/form-data; boundary=sprig")
        .body(reqwest::Body::wrap_stream(endless))
        .send()
        .await
        .expect("an answer before the endless body ends");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("{}-byte limit", 2 * MIB))),
        "{body}"
    );

    // Still serving, over HTTP/2 too.
    let (status, body) = server
        .predict_via(
            &client,
            "leaf.jpg",
            test_image("healthy", "test-healthy_0007.jpg"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["predicted_class"], "healthy", "{body}");
}
