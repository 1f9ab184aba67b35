//! The container deployment in `deployment/`, checked as far as a machine without a Docker
//! engine allows:
//!
//! - `deployment/nginx.conf` under a real nginx (`nginx -t`, then sprig behind it on loopback:
//!   predict, upload, job events streamed through the proxy, 413 from the proxy). Skipped
//!   with a printed message when nginx is not installed (`apt-get install nginx-light`).
//! - nginx's body limits and timeouts against sprig's defaults (`sprig.example.toml`).
//! - The Dockerfile, its ignore file and the compose file, statically; the image's health-check
//!   script against a real sprig; `deploy.sh` against a stub `docker`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{test_image, Options, Sprig};
use futures::StreamExt;
use serde_json::Value;
use sprig_backends::runtimes::Runtime;

const TOKEN: &str = "deployment-test-token-0123456789";
const MIB: u64 = 1024 * 1024;

fn deployment() -> PathBuf {
    common::repo()
        .join("deployment")
        .canonicalize()
        .expect("the deployment folder")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A message that shows even though the test harness captures `print!` output.
fn notice(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{message}");
}

// ---------------------------------------------------------------------------------------------
// nginx
// ---------------------------------------------------------------------------------------------

/// The nginx binary: on PATH, or Debian's /usr/sbin/nginx (not on a non-root user's PATH).
fn nginx_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file())
}

fn nginx_or_skip(test: &str) -> Option<PathBuf> {
    let binary = nginx_binary();
    if binary.is_none() {
        notice(&format!(
            "SKIPPED deployment::{test}: nginx is not installed (apt-get install nginx-light)"
        ));
    }
    binary
}

/// `deployment/nginx.conf` with its placeholders filled, as the nginx image's envsubst does.
fn render_site(upstream: &str, listen: &str) -> String {
    let rendered = read(&deployment().join("nginx.conf"))
        .replace("${SPRIG_UPSTREAM}", upstream)
        .replace("${NGINX_LISTEN}", listen);
    assert!(
        !rendered.contains("${"),
        "nginx.conf uses a placeholder the test (and compose) do not fill"
    );
    rendered
}

/// A prefix directory holding the rendered site and a minimal main config around it (what the
/// nginx image's own nginx.conf provides): every path in it is under the prefix, so nginx needs
/// no root-owned directory. One process (`master_process off`), so killing it stops nginx.
fn nginx_prefix(upstream: &str, listen: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().display();
    fs::write(dir.path().join("sprig.conf"), render_site(upstream, listen)).unwrap();
    fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "master_process off;\n\
             pid {p}/nginx.pid;\n\
             error_log {p}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             \x20   access_log {p}/access.log;\n\
             \x20   client_body_temp_path {p}/client_body;\n\
             \x20   proxy_temp_path {p}/proxy;\n\
             \x20   fastcgi_temp_path {p}/fastcgi;\n\
             \x20   uwsgi_temp_path {p}/uwsgi;\n\
             \x20   scgi_temp_path {p}/scgi;\n\
             \x20   include {p}/sprig.conf;\n\
             }}\n"
        ),
    )
    .unwrap();
    dir
}

fn nginx_command(binary: &Path, prefix: &Path) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"));
    command
}

fn free_loopback_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx in the foreground on a free loopback port, proxying to `upstream`.
struct Nginx {
    child: Child,
    url: String,
    prefix: tempfile::TempDir,
}

impl Nginx {
    fn start(binary: &Path, upstream: &str) -> Nginx {
        let port = free_loopback_port();
        let prefix = nginx_prefix(upstream, &format!("127.0.0.1:{port}"));
        let stderr = fs::File::create(prefix.path().join("stderr.log")).unwrap();
        let mut child = nginx_command(binary, prefix.path())
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "nginx exited ({status}): {}{}",
                    fs::read_to_string(prefix.path().join("stderr.log")).unwrap_or_default(),
                    fs::read_to_string(prefix.path().join("error.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Nginx {
            child,
            url: format!("http://127.0.0.1:{port}"),
            prefix,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    fn error_log(&self) -> String {
        fs::read_to_string(self.prefix.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

fn upstream_of(server: &Sprig) -> String {
    server.url.trim_start_matches("http://").to_string()
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[test]
fn nginx_accepts_the_config() {
    let Some(nginx) = nginx_or_skip("nginx_accepts_the_config") else {
        return;
    };
    let prefix = nginx_prefix(
        "127.0.0.1:8080",
        &format!("127.0.0.1:{}", free_loopback_port()),
    );
    let output = nginx_command(&nginx, prefix.path())
        .arg("-t")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "nginx -t failed:\n{text}");
    assert!(text.contains("test is successful"), "{text}");
}

/// One event of a `text/event-stream`, with when it arrived.
struct Arrived {
    at: SystemTime,
    job: Value,
}

/// Reads a job's event stream to its end, timing each `data:` line as it arrives.
async fn read_events(response: reqwest::Response, timeout: Duration) -> Vec<Arrived> {
    let mut stream = response.bytes_stream();
    let mut pending = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while let Some(chunk) = tokio::time::timeout_at(deadline, stream.next())
        .await
        .expect("the event stream ends when the job does")
    {
        pending.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        let at = SystemTime::now();
        while let Some(end) = pending.find("\n\n") {
            let block: String = pending.drain(..end + 2).collect();
            for data in block.lines().filter_map(|l| l.strip_prefix("data: ")) {
                events.push(Arrived {
                    at,
                    job: serde_json::from_str(data).unwrap(),
                });
            }
        }
    }
    events
}

#[tokio::test]
async fn predict_upload_and_job_events_through_nginx() {
    let Some(binary) = nginx_or_skip("predict_upload_and_job_events_through_nginx") else {
        return;
    };
    let server = Sprig::start_with(
        Options::bootstrapped()
            .env("SPRIG_AUTH__TOKEN", TOKEN)
            .env("SPRIG_TRAINING__EPOCHS", "3")
            .env("SPRIG_TRAINING__AUGMENT_VIEWS", "0"),
    );
    let nginx = Nginx::start(&binary, &upstream_of(&server));
    let client = client();

    let (status, ready) = json_of(client.get(nginx.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{ready}");

    // Predict (an open read).
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(test_image("healthy", "test-healthy_0007.jpg"))
            .file_name("test-healthy_0007.jpg"),
    );
    let response = client
        .post(nginx.url("/api/predict"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, prediction) = json_of(response).await;
    assert_eq!(status, 200, "{prediction}");
    assert_eq!(prediction["predicted_class"], "healthy", "{prediction}");

    // Upload two images to a new class: the Authorization header passes through nginx.
    let upload = || {
        let mut form = reqwest::multipart::Form::new().text("class", "deploy_check");
        for (class, name) in [
            ("bean_rust", "test-bean_rust_0021.jpg"),
            ("bean_rust", "test-bean_rust_0037.jpg"),
        ] {
            form = form.part(
                "files",
                reqwest::multipart::Part::bytes(test_image(class, name)).file_name(name),
            );
        }
        client.post(nginx.url("/api/images")).multipart(form)
    };
    let (status, refused) = json_of(upload().send().await.unwrap()).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "writes need the token: {refused}"
    );
    let (status, stored) = json_of(upload().bearer_auth(TOKEN).send().await.unwrap()).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["stored"], 2, "{stored}");

    // Retrain, and follow the job's events through nginx.
    let response = client
        .post(nginx.url("/api/retrain"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let (status, accepted) = json_of(response).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["job_id"].as_u64().unwrap();
    let events = client
        .get(nginx.url(&format!("/api/jobs/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let events = read_events(events, Duration::from_secs(300)).await;
    let states: Vec<&str> = events
        .iter()
        .map(|e| e.job["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.last(),
        Some(&"succeeded"),
        "the stream ends with the final state: {states:?}"
    );

    // Incremental: events reached the client while the job ran. A proxy holding the stream
    // back (buffering or compressing it) would deliver them when sprig ends the stream, after
    // `finished_at`. (Same machine, same clock.)
    let (status, job) = json_of(
        client
            .get(nginx.url(&format!("/api/jobs/{id}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, job["state"].as_str()), (200, Some("succeeded")));
    let finished: SystemTime =
        chrono::DateTime::parse_from_rfc3339(job["finished_at"].as_str().unwrap())
            .unwrap()
            .into();
    let first = &events[0];
    assert!(
        first.at < finished,
        "the first event ({}) arrived {:?} after the job finished: nginx buffered the stream",
        first.job["state"],
        first.at.duration_since(finished).unwrap_or_default()
    );
    let before: Vec<&str> = events
        .iter()
        .filter(|e| e.at < finished)
        .map(|e| e.job["state"].as_str().unwrap())
        .collect();
    assert!(
        before.len() >= 2,
        "progress streamed while the job ran: {before:?} of {states:?}"
    );
    drop(nginx);
    server.stop();
}

#[tokio::test]
async fn nginx_enforces_sprigs_body_limits() {
    let Some(binary) = nginx_or_skip("nginx_enforces_sprigs_body_limits") else {
        return;
    };
    let server = Sprig::start();
    let nginx = Nginx::start(&binary, &upstream_of(&server));
    let client = client();
    let post = |path: &str, bytes: u64| {
        client
            .post(nginx.url(path))
            .header("content-type", "multipart/form-data; boundary=sprig-test")
            .body(vec![b'x'; bytes as usize])
    };
    // Over the predict limit: refused by nginx before sprig sees it, in sprig's error shape.
    let (status, body) = json_of(post("/api/predict", 20 * MIB + 1).send().await.unwrap()).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("proxy limit"),
        "answered by nginx: {body}"
    );
    assert!(nginx.error_log().contains("too large body"));

    // At the limit: forwarded, and sprig answers for itself (the garbage multipart body is a
    // 4xx of sprig's, not a size error). So the two limits agree at the boundary.
    let (status, body) = json_of(post("/api/predict", 20 * MIB).send().await.unwrap()).await;
    assert!(
        (400..500).contains(&status) && status != 413,
        "{status} {body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        body["error"]["code"].is_string() && !message.contains("proxy limit"),
        "answered by sprig: {body}"
    );

    // The batch route has its own, larger limit.
    let (status, body) = json_of(post("/api/predict/batch", 21 * MIB).send().await.unwrap()).await;
    assert!(
        (400..500).contains(&status) && status != 413,
        "{status} {body}"
    );

    // Every other route: 1 MiB.
    let (status, body) = json_of(post("/api/retrain", 2 * MIB).send().await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    drop(nginx);
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// nginx's numbers against sprig's defaults
// ---------------------------------------------------------------------------------------------

/// Directives of nginx.conf by block path ("server", "server/location = /api/predict", ...).
/// Enough of nginx's syntax for this file: one directive or block opening per line.
fn nginx_directives(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut blocks: Vec<String> = Vec::new();
    let mut directives: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for raw in text.lines() {
        let line = strip_comment(raw).trim().to_string();
        if line.is_empty() {
            continue;
        }
        if let Some(opening) = line.strip_suffix('{') {
            let name = opening.trim().to_string();
            blocks.push(name);
        } else if line == "}" {
            blocks.pop().expect("balanced braces");
        } else {
            let statement = line.strip_suffix(';').unwrap_or_else(|| {
                panic!("nginx.conf: one directive per line, ending in ';': {raw}")
            });
            let (name, args) = statement
                .split_once(char::is_whitespace)
                .unwrap_or((statement, ""));
            directives
                .entry(blocks.join("/"))
                .or_default()
                .push((name.to_string(), args.trim().to_string()));
        }
    }
    assert!(blocks.is_empty(), "unbalanced braces in nginx.conf");
    directives
}

/// A line without its `#` comment (a `#` inside quotes is kept).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('#', None) => return &line[..i],
            _ => {}
        }
    }
    line
}

/// nginx sizes: `20m`, `1k`, `512`.
fn nginx_size(value: &str) -> u64 {
    let (number, unit) = value.split_at(value.len() - 1);
    match unit {
        "k" | "K" => number.parse::<u64>().unwrap() * 1024,
        "m" | "M" => number.parse::<u64>().unwrap() * MIB,
        "g" | "G" => number.parse::<u64>().unwrap() * 1024 * MIB,
        _ => value.parse().unwrap(),
    }
}

/// nginx and compose durations in seconds: `75s`, `10m`, `1h`, `60`.
fn seconds(value: &str) -> u64 {
    let value = value.trim_matches('"');
    let (number, unit) = value.split_at(value.len() - 1);
    match unit {
        "s" => number.parse().unwrap(),
        "m" => number.parse::<u64>().unwrap() * 60,
        "h" => number.parse::<u64>().unwrap() * 3600,
        _ => value.parse().unwrap(),
    }
}

fn toml_value(path: &Path) -> Value {
    use figment::providers::{Format, Toml};
    figment::Figment::from(Toml::string(&read(path)))
        .extract()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// sprig's documented defaults (a unit test keeps sprig.example.toml equal to them).
fn sprig_defaults() -> Value {
    toml_value(&common::repo().join("sprig.example.toml"))
}

#[test]
fn nginx_limits_and_timeouts_match_sprigs_defaults() {
    let config = nginx_directives(&read(&deployment().join("nginx.conf")));
    let defaults = sprig_defaults();
    let limit = |key: &str| defaults["limits"][key].as_u64().unwrap();
    let request_timeout = defaults["server"]["request_timeout_secs"].as_u64().unwrap();
    let get = |block: &str, name: &str| -> Option<String> {
        config
            .get(block)
            .and_then(|ds| ds.iter().rev().find(|(n, _)| n == name))
            .map(|(_, args)| args.clone())
    };

    for (block, key) in [
        ("server", "json_body_bytes"),
        ("server/location = /api/predict", "predict_body_bytes"),
        ("server/location = /api/predict/batch", "batch_body_bytes"),
        ("server/location = /api/images", "upload_body_bytes"),
    ] {
        let size = get(block, "client_max_body_size")
            .unwrap_or_else(|| panic!("{block}: no client_max_body_size"));
        assert_eq!(
            nginx_size(&size),
            limit(key),
            "{block} vs sprig's limits.{key}"
        );
    }
    // No other location may change the body limit (sprig has no other per-route limit).
    for (block, directives) in &config {
        if directives.iter().any(|(n, _)| n == "client_max_body_size") {
            assert!(
                [
                    "server",
                    "server/location = /api/predict",
                    "server/location = /api/predict/batch",
                    "server/location = /api/images"
                ]
                .contains(&block.as_str()),
                "{block} sets a body limit sprig does not have"
            );
        }
    }

    // sprig's own request timeout must fire first, so clients get its JSON 503.
    for name in ["proxy_read_timeout", "proxy_send_timeout"] {
        let value = seconds(&get("server", name).unwrap_or_else(|| panic!("server: no {name}")));
        assert!(
            value > request_timeout,
            "{name} {value} s <= sprig's {request_timeout} s"
        );
    }
    assert_eq!(
        seconds(&get("server", "client_body_timeout").unwrap()),
        request_timeout
    );

    // Talking to sprig: HTTP/1.1 with keep-alive, forwarded headers.
    assert_eq!(get("server", "proxy_http_version").as_deref(), Some("1.1"));
    let headers: Vec<&str> = config["server"]
        .iter()
        .filter(|(n, _)| n == "proxy_set_header")
        .map(|(_, a)| a.as_str())
        .collect();
    for expected in [
        "Connection \"\"",
        // With the port the browser used: sprig compares a write's Origin with Host.
        "Host $http_host",
        "X-Forwarded-For $proxy_add_x_forwarded_for",
        "X-Forwarded-Proto $scheme",
    ] {
        assert!(
            headers.contains(&expected),
            "missing proxy_set_header {expected}"
        );
    }
    // Locations set no proxy_set_header of their own (that would drop the server's).
    for (block, directives) in &config {
        if block != "server" {
            assert!(
                !directives.iter().any(|(n, _)| n == "proxy_set_header"),
                "{block} redefines proxy_set_header"
            );
        }
    }

    // Server-sent events: unbuffered, and a read timeout well above the 15 s keep-alive.
    let events = "server/location ~ ^/api/jobs/[0-9]+/events$";
    assert!(
        config.contains_key(events),
        "no events location: {:?}",
        config.keys()
    );
    assert_eq!(get(events, "proxy_buffering").as_deref(), Some("off"));
    assert_eq!(get(events, "proxy_cache").as_deref(), Some("off"));
    assert!(seconds(&get(events, "proxy_read_timeout").unwrap()) >= 4 * 15);

    // Every proxied location goes to the one upstream.
    let upstream = config
        .keys()
        .find_map(|k| k.strip_prefix("upstream "))
        .expect("an upstream block")
        .to_string();
    for (block, directives) in &config {
        for (_, target) in directives.iter().filter(|(n, _)| n == "proxy_pass") {
            assert_eq!(target, &format!("http://{upstream}"), "{block}");
        }
    }
    // nginx drops an idle upstream connection before sprig's header deadline closes it, so it
    // never sends a request on a connection sprig is closing.
    let header_timeout = defaults["server"]["header_timeout_secs"].as_u64().unwrap();
    let keepalive = get(&format!("upstream {upstream}"), "keepalive_timeout")
        .expect("upstream keepalive_timeout");
    assert!(seconds(&keepalive) < header_timeout);
}

// ---------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------

/// Dockerfile instructions (continuation lines joined, comments dropped) as (KEYWORD, rest).
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(continued) = trimmed.strip_suffix('\\') {
            current.push_str(continued);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, rest) = current.split_once(' ').unwrap_or((&current, ""));
        instructions.push((keyword.to_uppercase(), rest.trim().to_string()));
        current.clear();
    }
    instructions
}

/// Whether `path` (relative to the build context) is left out by a .dockerignore: the last
/// matching pattern decides. Patterns used here: plain paths (a folder covers what is under
/// it), `**/name` (that name at any depth), and `!` exceptions.
fn docker_ignored(patterns: &str, path: &str) -> bool {
    let mut ignored = false;
    for pattern in patterns.lines().map(str::trim) {
        if pattern.is_empty() || pattern.starts_with('#') {
            continue;
        }
        let (exception, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
        let matches = match pattern.strip_prefix("**/") {
            Some(name) => {
                let parts: Vec<&str> = path.split('/').collect();
                (0..parts.len()).any(|i| under_parts(&parts[i..], name))
            }
            None => under(pattern),
        };
        if matches {
            ignored = !exception;
        }
    }
    ignored
}

fn under_parts(parts: &[&str], name: &str) -> bool {
    let tail = parts.join("/");
    tail == name || tail.starts_with(&format!("{name}/"))
}

#[test]
fn dockerfile_builds_with_cargo_and_runs_sprig_unprivileged_with_a_volume_and_a_health_check() {
    let instructions = dockerfile_instructions(&read(&deployment().join("Dockerfile")));
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (k, _))| k == "FROM")
        .map(|(i, _)| i)
        .collect();
    assert!(stages.len() >= 2, "multi-stage");
    let args: BTreeMap<&str, &str> = instructions
        .iter()
        .filter(|(k, _)| k == "ARG")
        .filter_map(|(_, rest)| rest.split_once('='))
        .collect();
    let build = &instructions[..*stages.last().unwrap()];
    let runtime = &instructions[*stages.last().unwrap()..];
    let all = |section: &[(String, String)], keyword: &str| -> Vec<String> {
        section
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, r)| r.clone())
            .collect()
    };

    // Build: cargo on the official Rust image, new enough for the workspace's rust-version.
    assert!(
        all(build, "RUN")
            .iter()
            .any(|r| r.contains("cargo build --release --locked -p sprig")),
        "the build stage runs cargo build --release --locked -p sprig"
    );
    let rust_image = args.get("RUST_IMAGE").expect("ARG RUST_IMAGE");
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    let image_version = rust_image
        .strip_prefix("rust:")
        .and_then(|t| t.split('-').next())
        .expect("an official rust image");
    let cargo_toml = toml_value(&common::repo().join("Cargo.toml"));
    let required = cargo_toml["workspace"]["package"]["rust-version"]
        .as_str()
        .expect("workspace rust-version");
    assert!(
        version(image_version) >= version(required),
        "{rust_image} is older than the workspace's rust-version {required}"
    );

    // Runtime: slim Debian, the same release as the build image (glibc).
    let runtime_image = args.get("RUNTIME_IMAGE").expect("ARG RUNTIME_IMAGE");
    assert!(runtime_image.starts_with("debian:") && runtime_image.ends_with("-slim"));
    let release = runtime_image
        .trim_start_matches("debian:")
        .trim_end_matches("-slim");
    assert!(
        rust_image.ends_with(release),
        "{rust_image} vs {runtime_image}"
    );

    // Non-root.
    let user = all(runtime, "USER")
        .last()
        .cloned()
        .expect("a USER in the runtime stage");
    let uid = user.split(':').next().unwrap();
    assert!(!["root", "0"].contains(&uid), "runs as {user}");

    // Data dir on a volume, listening beyond loopback (in the container), no auth bypass.
    assert!(all(runtime, "VOLUME").iter().any(|v| v.contains("/data")));
    let env = all(runtime, "ENV").join(" ");
    assert!(env.contains("SPRIG_SERVER__DATA_DIR=/data"), "{env}");
    assert!(env.contains("SPRIG_SERVER__ADDR=0.0.0.0:8080"), "{env}");
    assert!(all(runtime, "EXPOSE").iter().any(|p| p == "8080"));
    for (keyword, rest) in runtime {
        assert!(
            !rest.contains("insecure-no-auth") || keyword == "LABEL",
            "the image must not disable the token requirement: {keyword} {rest}"
        );
    }

    // Health check: the script, which asks /readyz.
    let health = all(runtime, "HEALTHCHECK").pop().expect("a HEALTHCHECK");
    assert!(
        health.contains("CMD") && health.contains("sprig-healthcheck"),
        "{health}"
    );
    assert!(health.contains("--start-period"), "{health}");
    let copies = all(runtime, "COPY");
    let script = copies
        .iter()
        .find(|c| c.contains("sprig-healthcheck"))
        .expect("the health-check script is copied in");
    assert!(script.contains("deployment/healthcheck.sh"));
    assert!(read(&deployment().join("healthcheck.sh")).contains("GET /readyz"));
    // From the other stages come only the binary and the inference libraries.
    let from_stages: Vec<&String> = copies.iter().filter(|c| c.contains("--from=")).collect();
    assert_eq!(from_stages.len(), 2, "{from_stages:?}");
    assert!(from_stages.iter().any(|c| c.starts_with("--from=build ")));
    let libraries = from_stages
        .iter()
        .find(|c| c.starts_with("--from=runtimes "))
        .expect("the inference libraries are copied in");
    let libraries_dir = libraries.split_whitespace().last().unwrap();

    // The libraries are where the environment says, at the versions CI tests with.
    for variable in ["ORT_DYLIB_PATH", "OPENVINO_DYLIB_PATH"] {
        let path = env
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(&format!("{variable}=")))
            .unwrap_or_else(|| panic!("ENV {variable}"));
        assert!(path.starts_with(libraries_dir), "{variable}={path}");
    }
    // The image carries the versions sprig pins (and CI fetches), and fetches none at start.
    for (arg, pinned) in [
        ("ONNXRUNTIME_VERSION", Runtime::OnnxRuntime),
        ("OPENVINO_VERSION", Runtime::OpenVino),
    ] {
        let version = args.get(arg).unwrap_or_else(|| panic!("ARG {arg}"));
        assert_eq!(
            *version,
            pinned.version(),
            "{arg} differs from the version sprig pins"
        );
    }
    assert!(env.contains("SPRIG_RUNTIMES__FETCH=never"), "{env}");

    // The build context: the sources the binary is built from (and embeds) are in it, the
    // build outputs and local state are not.
    let ignore = read(&deployment().join("Dockerfile.dockerignore"));
    let members: Vec<&str> = cargo_toml["workspace"]["members"]
        .as_array()
        .expect("workspace members")
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let needed = [
        "Cargo.toml",
        "Cargo.lock",
        "models",
        "data/beans-sample/train",
        "web/static",
        "deployment/healthcheck.sh",
    ];
    for path in needed.iter().copied().chain(members.iter().copied()) {
        assert!(common::repo().join(path).exists(), "{path} does not exist");
        assert!(
            !docker_ignored(&ignore, path),
            "{path} is left out of the build context"
        );
    }
    for path in [
        "target",
        "target/debug/sprig",
        ".git",
        "web/node_modules",
        "sprig-data",
        "deployment/.env",
    ] {
        assert!(
            docker_ignored(&ignore, path),
            "{path} is in the build context"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml
// ---------------------------------------------------------------------------------------------

/// The subset of YAML the compose file is written in, flattened: ("services.sprig.image",
/// "sprig:latest"); list items, block or `[flow]`, as ("services.sprig.volumes[]",
/// "data:/data"); a key that opens a block as (path, ""). Checks what a YAML parser would:
/// no tabs, consistent indentation, `key: value` or `- item` lines.
fn flat_yaml(text: &str) -> Vec<(String, String)> {
    let mut parents: Vec<(usize, String)> = Vec::new();
    let mut entries = Vec::new();
    for (number, raw) in text.lines().enumerate() {
        let at = || format!("docker-compose.yml:{}: {raw}", number + 1);
        assert!(!raw.contains('\t'), "tab in {}", at());
        let line = strip_comment(raw).trim_end();
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        assert_eq!(indent % 2, 0, "odd indentation in {}", at());
        let content = line.trim_start();
        let path_of = |parents: &[(usize, String)]| {
            parents
                .iter()
                .map(|(_, k)| k.as_str())
                .collect::<Vec<_>>()
                .join(".")
        };
        if let Some(item) = content.strip_prefix("- ") {
            while parents.last().is_some_and(|(i, _)| *i > indent) {
                parents.pop();
            }
            assert!(!parents.is_empty(), "list item outside a key in {}", at());
            entries.push((format!("{}[]", path_of(&parents)), unquote(item)));
            continue;
        }
        let (key, value) = content
            .split_once(": ")
            .or_else(|| content.strip_suffix(':').map(|k| (k, "")))
            .unwrap_or_else(|| panic!("not `key: value` in {}", at()));
        assert!(
            !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)),
            "odd key in {}",
            at()
        );
        while parents.last().is_some_and(|(i, _)| *i >= indent) {
            parents.pop();
        }
        if let Some((parent_indent, _)) = parents.last() {
            assert!(indent > *parent_indent, "{}", at());
        } else {
            assert_eq!(indent, 0, "{}", at());
        }
        let path = if parents.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", path_of(&parents))
        };
        let value = value.trim();
        if value.is_empty() {
            parents.push((indent, key.to_string()));
        }
        // A flow sequence (`[a, "b"]`): its items too, as for a block list.
        if let Some(flow) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            for item in flow.split(',').filter(|i| !i.trim().is_empty()) {
                entries.push((format!("{path}[]"), unquote(item)));
            }
        }
        entries.push((path, unquote(value)));
    }
    entries
}

fn unquote(value: &str) -> String {
    let value = value.trim();
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return value[1..value.len() - 1].to_string();
        }
    }
    value.to_string()
}

#[test]
fn compose_runs_one_sprig_behind_nginx_with_a_token_and_a_named_volume() {
    let text = read(&deployment().join("docker-compose.yml"));
    let yaml = flat_yaml(&text);
    let get = |path: &str| -> Option<&str> {
        yaml.iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.as_str())
    };
    let items = |path: &str| -> Vec<&str> {
        yaml.iter()
            .filter(|(p, _)| *p == format!("{path}[]"))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let mut services: Vec<&str> = yaml
        .iter()
        .filter_map(|(p, _)| p.strip_prefix("services."))
        .filter(|rest| !rest.contains('.'))
        .collect();
    services.sort();
    assert_eq!(services, ["nginx", "sprig"]);
    let top: Vec<&str> = yaml
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| !p.contains('.') && !p.contains('['))
        .collect();
    assert_eq!(top, ["name", "services", "volumes"]);

    // sprig: built from this repository, one replica, token required, data on a named volume,
    // not published, enough time to shut down cleanly.
    assert_eq!(get("services.sprig.build.context"), Some(".."));
    assert_eq!(
        get("services.sprig.build.dockerfile"),
        Some("deployment/Dockerfile")
    );
    assert!(
        get("services.sprig.container_name").is_some(),
        "prevents --scale"
    );
    assert!(get("services.sprig.deploy.replicas").is_none());
    let token = get("services.sprig.environment.SPRIG_AUTH__TOKEN").expect("a token");
    assert!(
        token.starts_with("${SPRIG_AUTH__TOKEN:?"),
        "required: {token}"
    );
    assert_eq!(items("services.sprig.volumes"), ["data:/data"]);
    assert!(get("volumes.data").is_some(), "a named volume");
    for port in items("services.sprig.ports") {
        assert!(
            port.starts_with("127.0.0.1:"),
            "sprig published beyond loopback: {port}"
        );
    }
    let grace = sprig_defaults()["server"]["shutdown_grace_secs"]
        .as_u64()
        .unwrap();
    let stop = seconds(get("services.sprig.stop_grace_period").expect("stop_grace_period"));
    assert!(
        stop > grace,
        "stop_grace_period {stop} s <= sprig's shutdown grace {grace} s"
    );

    // nginx: publishes port 80, renders nginx.conf with every placeholder it uses.
    assert!(items("services.nginx.ports")
        .iter()
        .any(|p| p.ends_with(":80")));
    assert!(items("services.nginx.volumes")
        .contains(&"./nginx.conf:/etc/nginx/templates/default.conf.template:ro"));
    let template = read(&deployment().join("nginx.conf"));
    let mut placeholders: Vec<&str> = template
        .split("${")
        .skip(1)
        .map(|rest| &rest[..rest.find('}').unwrap()])
        .collect();
    placeholders.sort();
    placeholders.dedup();
    assert_eq!(placeholders, ["NGINX_LISTEN", "SPRIG_UPSTREAM"]);
    for name in placeholders {
        assert!(
            get(&format!("services.nginx.environment.{name}")).is_some(),
            "nginx's environment does not set {name}"
        );
    }
    assert_eq!(
        get("services.nginx.environment.SPRIG_UPSTREAM"),
        Some("sprig:8080")
    );
    assert_eq!(get("services.nginx.environment.NGINX_LISTEN"), Some("80"));
    assert!(get("services.nginx.depends_on.sprig.condition").is_some());

    // A real YAML parser and compose itself, where installed.
    let python = Command::new("python3")
        .args(["-c", "import sys, yaml; yaml.safe_load(open(sys.argv[1]))"])
        .arg(deployment().join("docker-compose.yml"))
        .output();
    match python {
        Ok(out) if out.status.success() => {}
        Ok(out) if String::from_utf8_lossy(&out.stderr).contains("No module named 'yaml'") => {
            notice(
                "SKIPPED deployment: YAML parse of docker-compose.yml (python3-yaml not installed)",
            )
        }
        Ok(out) => panic!(
            "docker-compose.yml is not valid YAML: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => {
            notice("SKIPPED deployment: YAML parse of docker-compose.yml (python3 not installed)")
        }
    }
    let has_compose = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_compose {
        let out = Command::new("docker")
            .args(["compose", "-f"])
            .arg(deployment().join("docker-compose.yml"))
            .args(["config", "--quiet"])
            .env("SPRIG_AUTH__TOKEN", TOKEN)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker compose config: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        notice("SKIPPED deployment: `docker compose config` (no docker compose plugin)");
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------------

fn healthcheck(addr: &str) -> Output {
    Command::new("bash")
        .arg(deployment().join("healthcheck.sh"))
        .env("SPRIG_HEALTHCHECK_ADDR", addr)
        .output()
        .unwrap()
}

#[test]
fn the_image_health_check_follows_readyz() {
    let ready = Sprig::start();
    let out = healthcheck(&upstream_of(&ready));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Listening but not ready (no model and bootstrapping off): unhealthy, with the reason.
    let not_ready = Sprig::start_with(
        Options {
            no_wait_ready: true,
            ..Options::default()
        }
        .env("SPRIG_BOOTSTRAP__ENABLED", "false"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while not_ready.status_of("/readyz") != Some(503) {
        assert!(Instant::now() < deadline, "/readyz never answered 503");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = healthcheck(&upstream_of(&not_ready));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("503"), "{stdout}");

    // Nothing listening.
    let out = healthcheck(&format!("127.0.0.1:{}", free_loopback_port()));
    assert_eq!(out.status.code(), Some(1));
    ready.stop();
    not_ready.stop();
}

/// A `docker` that records its arguments (and the token compose would see) and reports a
/// healthy sprig; a `curl` that succeeds.
fn stub_tools(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let log = dir.join("docker.log");
    let docker = format!(
        "#!/bin/bash\n\
         echo \"$* | token=${{SPRIG_AUTH__TOKEN:-}}\" >> '{log}'\n\
         case \" $* \" in\n\
         \x20 *' compose version '*) echo 'Docker Compose version v2.30.0' ;;\n\
         \x20 *' ps -q sprig '*) echo 0123456789ab ;;\n\
         \x20 ' inspect '*) echo healthy ;;\n\
         esac\n\
         exit 0\n",
        log = log.display()
    );
    for (name, script) in [("docker", docker.as_str()), ("curl", "#!/bin/sh\nexit 0\n")] {
        let path = bin.join(name);
        fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

fn deploy(dir: &Path, env_file: &Path, args: &[&str], token: Option<&str>) -> Output {
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    command
        .arg(deployment().join("deploy.sh"))
        .args(args)
        .env("PATH", path)
        .env("SPRIG_DEPLOY_ENV_FILE", env_file)
        .env("SPRIG_DEPLOY_TIMEOUT", "10")
        .env_remove("SPRIG_HTTP_PORT")
        .env_remove("SPRIG_AUTH__TOKEN");
    if let Some(token) = token {
        command.env("SPRIG_AUTH__TOKEN", token);
    }
    command.output().unwrap()
}

fn saved_token(env_file: &Path) -> String {
    let text = read(env_file);
    let tokens: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("SPRIG_AUTH__TOKEN="))
        .collect();
    assert_eq!(tokens.len(), 1, "one token line: {text}");
    tokens[0].to_string()
}

#[test]
fn deploy_script_needs_a_token_then_drives_compose() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    stub_tools(dir.path());
    let log = dir.path().join("docker.log");
    let text = |out: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let compose = deployment().join("docker-compose.yml");

    // No token anywhere: refused before docker is touched.
    let fresh = dir.path().join("fresh.env");
    let out = deploy(dir.path(), &fresh, &[], None);
    assert!(!out.status.success());
    assert!(text(&out).contains("--generate-token"), "{}", text(&out));
    let out = deploy(dir.path(), &fresh, &[], Some("short"));
    assert!(!out.status.success());
    assert!(text(&out).contains("at least 16"), "{}", text(&out));
    assert!(!log.exists(), "docker ran without a valid token");

    // --generate-token: a private env file with a random token, then compose up, the wait
    // for health and the URLs.
    let out = deploy(dir.path(), &fresh, &["--generate-token"], None);
    assert!(out.status.success(), "{}", text(&out));
    let token = saved_token(&fresh);
    assert!(
        token.len() >= 32 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "{token}"
    );
    assert_eq!(
        fs::metadata(&fresh).unwrap().permissions().mode() & 0o077,
        0
    );
    let up = format!(
        "compose -f {} --env-file {} up -d --build | token={token}",
        compose.display(),
        fresh.display()
    );
    let calls = read(&log);
    assert!(
        calls.lines().any(|l| l == up),
        "expected `{up}` in:\n{calls}"
    );
    assert!(calls.lines().any(|l| l.starts_with("inspect ")), "{calls}");
    assert!(
        text(&out).contains("http://localhost/docs"),
        "{}",
        text(&out)
    );

    // A copy of .env.example: its empty token is refused, then filled in place; its port is
    // used. Later runs read the token from the file, and --generate-token keeps it.
    let example = dir.path().join("example.env");
    fs::write(
        &example,
        read(&deployment().join(".env.example"))
            .replace("SPRIG_HTTP_PORT=80", "SPRIG_HTTP_PORT=8088"),
    )
    .unwrap();
    let out = deploy(dir.path(), &example, &[], None);
    assert!(!out.status.success(), "an empty token: {}", text(&out));
    let out = deploy(dir.path(), &example, &["--generate-token"], None);
    assert!(out.status.success(), "{}", text(&out));
    let token = saved_token(&example);
    assert!(token.len() >= 32, "{token}");
    assert!(read(&example).contains("SPRIG_HTTP_PORT=8088"));
    assert!(
        text(&out).contains("http://localhost:8088/"),
        "{}",
        text(&out)
    );
    let saved = read(&example);
    fs::remove_file(&log).unwrap();
    let out = deploy(
        dir.path(),
        &example,
        &["--generate-token", "--no-build"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(read(&example), saved);
    let calls = read(&log);
    assert!(
        calls
            .lines()
            .any(|l| l.ends_with(&format!("up -d | token={token}"))),
        "{calls}"
    );
}
