//! Auth on writes: bearer token checked in constant time, reads open unless protected, health
//! always open, no unauthenticated exposure beyond loopback, and the token never logged.

mod common;

use common::{test_image, Options, Sprig};
use reqwest::Method;
use serde_json::{json, Value};

const TOKEN: &str = "test-token-0123456789abcdef";

async fn call(server: &Sprig, method: Method, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = server.client.request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if path == "/api/images" {
        let form = reqwest::multipart::Form::new().text("class", "authz").part(
            "files",
            reqwest::multipart::Part::bytes(test_image("healthy", "test-healthy_0030.jpg"))
                .file_name("a.jpg"),
        );
        request = request.multipart(form);
    } else if path.ends_with("/predict") {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(test_image("healthy", "test-healthy_0007.jpg"))
                .file_name("a.jpg"),
        );
        request = request.multipart(form);
    } else if path.starts_with("/api/images/") {
        request = request.json(&json!({"class": "healthy"}));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn writes_need_the_token_reads_do_not() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let server = Sprig::start_with(Options {
        log_file: Some(log.path().to_path_buf()),
        ..Options::bootstrapped()
            .env("SPRIG_AUTH__TOKEN", TOKEN)
            .env("SPRIG_LOG__LEVEL", "trace")
            .env("SPRIG_TRAINING__AUGMENT_VIEWS", "0")
            .env("SPRIG_TRAINING__EPOCHS", "2")
    });
    let writes = [
        (Method::POST, "/api/images"),
        (Method::PATCH, "/api/images/1"),
        (Method::POST, "/api/models/1/activate"),
        (Method::DELETE, "/api/images/2"),
        (Method::DELETE, "/api/classes/healthy"),
        (Method::POST, "/api/retrain"),
        (Method::POST, "/api/jobs/1/cancel"),
    ];
    for (method, path) in &writes {
        for token in [None, Some("wrong-token-0123456789abcdef"), Some("")] {
            let (status, body) = call(&server, method.clone(), path, token).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
            assert_eq!(body["error"]["code"], "unauthorized");
            assert_eq!(body["success"], false);
        }
    }
    // Nothing changed.
    assert_eq!(server.get("/api/dataset/stats").await.1["total_images"], 60);
    assert_eq!(server.get("/api/jobs").await.1["total"], 0);

    for path in [
        "/api/models",
        "/api/images",
        "/api/metrics",
        "/api/dataset/stats",
        "/metrics",
        "/livez",
        "/readyz",
    ] {
        assert_eq!(
            call(&server, Method::GET, path, None).await.0,
            200,
            "{path} is open"
        );
    }
    assert_eq!(
        call(&server, Method::POST, "/api/predict", None).await.0,
        200,
        "predicting is a read"
    );

    // With the token, writes go through.
    let (status, body) = call(&server, Method::POST, "/api/images", Some(TOKEN)).await;
    assert_eq!((status, body["stored"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(
        call(&server, Method::PATCH, "/api/images/1", Some(TOKEN))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&server, Method::POST, "/api/models/1/activate", Some(TOKEN))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&server, Method::POST, "/api/retrain", Some(TOKEN))
            .await
            .0,
        202
    );
    drop(server);

    let log = std::fs::read_to_string(log.path()).unwrap();
    assert!(log.len() > 1000, "the trace log was captured");
    assert!(!log.contains(TOKEN), "the token must never appear in logs");
}

/// Every operation in the spec: its method, its path with `1` for each parameter, and whether it
/// declares the bearer scheme.
fn spec_operations() -> Vec<(Method, String, bool)> {
    let spec = std::fs::read_to_string(common::repo().join("openapi/openapi.json")).unwrap();
    let spec: Value = serde_json::from_str(&spec).unwrap();
    let mut operations = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let concrete: String = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "1"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let secured = operation.get("security").is_some();
            operations.push((method, concrete.clone(), secured));
        }
    }
    assert!(operations.len() > 25, "{} operations", operations.len());
    operations
}

async fn status(server: &Sprig, method: &Method, path: &str, token: Option<&str>) -> u16 {
    let mut request = server.client.request(method.clone(), server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status().as_u16()
}

/// Access is derived from each operation (its method and path), not from a check each handler
/// must remember: every operation the spec lists answers 401 without the token exactly when it
/// should, and declares the bearer scheme exactly when it takes one.
#[tokio::test]
async fn every_operation_in_the_spec_has_its_auth_outcome() {
    // Health is open; predicting is a read; every other non-GET is a write.
    let health = |path: &str| path == "/livez" || path == "/readyz";
    let is_read = |method: &Method, path: &str| {
        *method == Method::GET || (*method == Method::POST && path.starts_with("/api/predict"))
    };
    let open = Sprig::start_with(Options::bootstrapped().env("SPRIG_AUTH__TOKEN", TOKEN));
    let protected = Sprig::start_with(
        Options::bootstrapped()
            .env("SPRIG_AUTH__TOKEN", TOKEN)
            .env("SPRIG_AUTH__PROTECT_READS", "true"),
    );
    for (method, path, secured) in spec_operations() {
        assert_eq!(
            secured,
            !health(&path),
            "{method} {path}: bearer scheme declared"
        );
        if health(&path) {
            assert_ne!(
                status(&protected, &method, &path, None).await,
                401,
                "{path}"
            );
            continue;
        }
        let anonymous = status(&open, &method, &path, None).await;
        if is_read(&method, &path) {
            assert_ne!(anonymous, 401, "{method} {path} is a read: open by default");
        } else {
            assert_eq!(anonymous, 401, "{method} {path} is a write");
        }
        for token in [None, Some("wrong-token-0123456789abcdef")] {
            let answer = status(&protected, &method, &path, token).await;
            assert_eq!(
                answer, 401,
                "{method} {path} with {token:?} under protect_reads"
            );
        }
        let with_token = status(&protected, &method, &path, Some(TOKEN)).await;
        assert_ne!(with_token, 401, "{method} {path} with the token");
    }
}

#[tokio::test]
async fn protect_reads_covers_every_api_read_but_not_health() {
    let server = Sprig::start_with(
        Options::bootstrapped()
            .env("SPRIG_AUTH__TOKEN", TOKEN)
            .env("SPRIG_AUTH__PROTECT_READS", "true"),
    );
    for path in [
        "/api/models",
        "/api/images",
        "/api/metrics",
        "/api/predictions",
        "/metrics",
        "/api/retrain_status",
    ] {
        assert_eq!(
            call(&server, Method::GET, path, None).await.0,
            401,
            "{path}"
        );
        assert_eq!(
            call(&server, Method::GET, path, Some(TOKEN)).await.0,
            200,
            "{path}"
        );
    }
    assert_eq!(
        call(&server, Method::POST, "/api/predict", None).await.0,
        401
    );
    assert_eq!(
        call(&server, Method::POST, "/api/predict", Some(TOKEN))
            .await
            .0,
        200
    );
    for path in ["/livez", "/readyz", "/", "/openapi.json"] {
        assert_eq!(
            call(&server, Method::GET, path, None).await.0,
            200,
            "{path} stays open"
        );
    }
}

#[test]
fn refuses_to_expose_an_unauthenticated_server() {
    let data = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sprig"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--addr", "0.0.0.0:0"])
        .env_remove("SPRIG_AUTH__TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("without an API token") && stderr.contains("--insecure-no-auth"),
        "{stderr}"
    );

    // With a token, or with the explicit override, it starts.
    for (env, args) in [
        (Some(TOKEN), vec![]),
        (None, vec!["--insecure-no-auth".to_string()]),
    ] {
        let mut options = Options {
            addr: Some("0.0.0.0:0".into()),
            serve_args: args,
            no_wait_ready: true,
            ..Options::default()
        };
        if let Some(token) = env {
            options = options.env("SPRIG_AUTH__TOKEN", token);
        }
        let server = Sprig::start_with(options);
        assert!(server.url.contains("0.0.0.0:"), "{}", server.url);
        drop(server);
    }
}
