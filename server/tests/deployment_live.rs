//! The container deployment in `deployment/` against running programs, as far as a machine
//! without a Docker engine allows:
//!
//! - `deployment/nginx.conf` under a real nginx (`nginx -t`, then sprig behind it on loopback:
//!   predict, upload, job events streamed through the proxy, 413 from the proxy). Skipped
//!   with a printed message when nginx is not installed (`apt-get install nginx-light`).
//! - The image's health-check script against a real sprig; `deploy.sh` against a stub `docker`.
//!
//! The files themselves (nginx's numbers, the Dockerfile, the compose file) are read in
//! `deployment.rs`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use common::deployment::{
    deployment, free_loopback_port, nginx_command, nginx_or_skip, nginx_prefix, read, Nginx, MIB,
    TOKEN,
};
use common::{test_image, Options, Sprig};
use futures::StreamExt;
use serde_json::Value;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
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
    let nginx = Nginx::start(&binary, &server.address());
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
    let nginx = Nginx::start(&binary, &server.address());
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
    let out = healthcheck(&ready.address());
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
    let out = healthcheck(&not_ready.address());
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
