//! The foundation: health, metrics, spec, docs, error shape and clean shutdown, over real HTTP
//! against the real binary.

mod common;

use common::{Options, Sprig};
use serde_json::Value;

#[tokio::test]
async fn health_metrics_spec_and_docs() {
    let server = Sprig::start();

    let (status, live) = server.get("/livez").await;
    assert_eq!((status, live["status"].as_str()), (200, Some("ok")));

    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["model_version"], 1);
    assert_eq!(ready["backend"], "flex");

    let (status, metrics) = server.get("/api/metrics").await;
    assert_eq!(status, 200);
    for key in ["cpu_percent", "memory_percent", "disk_percent"] {
        let value = metrics[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is a number: {metrics}"));
        assert!((0.0..=100.0).contains(&value), "{key} = {value}");
    }
    let uptime = metrics["uptime"].as_str().expect("uptime is a string");
    assert!(
        uptime.ends_with('s')
            && uptime
                .split(' ')
                .all(|part| part[..part.len() - 1].parse::<u64>().is_ok()),
        "{uptime}"
    );
    for key in [
        "uptime_seconds",
        "process_rss_bytes",
        "image_count",
        "class_count",
        "prediction_count",
        "predictions_last_minute",
        "inference_queue_depth",
        "database_bytes",
    ] {
        assert!(
            metrics[key].is_u64(),
            "{key} is an unsigned integer: {metrics}"
        );
    }
    assert!(metrics["process_rss_bytes"].as_u64().unwrap() > 10_000_000);
    assert_eq!(metrics["active_model_version"], 1);
    assert_eq!(metrics["backend"], "flex");
    assert_eq!(metrics["image_count"], 60);
    assert_eq!(metrics["class_count"], 3);
    assert!(metrics["retrain_running"].is_boolean());

    // `batching.workers = 0` (the default) runs as many workers as the backend runs side by
    // side: one for flex, which parallelises inside a pass.
    let (status, settings) = server.get("/api/config").await;
    assert_eq!(status, 200);
    assert_eq!(settings["batching"]["workers"], 1, "{settings}");

    // One prediction, so the inference histograms have samples.
    let (status, _) = server
        .predict(
            "leaf.jpg",
            common::test_image("healthy", "test-healthy_0007.jpg"),
        )
        .await;
    assert_eq!(status, 200);
    let text = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert!(text.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = text.text().await.unwrap();
    let samples = parse_prometheus(&text);
    let has = |name: &str, label: &str| {
        samples
            .iter()
            .any(|(n, labels, _)| n == name && labels.contains(label))
    };
    assert!(
        has("sprig_http_requests_total", "route=\"predict\""),
        "{text}"
    );
    assert!(has(
        "sprig_http_request_duration_seconds_bucket",
        "status=\"200\""
    ));
    assert!(has(
        "sprig_inference_batch_duration_seconds_count",
        "model_version=\"1\""
    ));
    assert!(has(
        "sprig_inference_batch_size_bucket",
        "model_version=\"1\""
    ));
    assert!(has("sprig_jobs", "state=\"queued\""));

    let (status, spec) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3."),
        "OpenAPI 3 document"
    );
    let paths = spec["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/predict", "post"),
        ("/api/predict/batch", "post"),
        ("/api/predictions", "get"),
        ("/api/stats/predictions", "get"),
        ("/api/images", "post"),
        ("/api/images", "get"),
        ("/api/images/{id}", "get"),
        ("/api/images/{id}", "patch"),
        ("/api/images/{id}", "delete"),
        ("/api/images/{id}/content", "get"),
        ("/api/classes", "get"),
        ("/api/classes/{name}", "delete"),
        ("/api/dataset/stats", "get"),
        ("/api/retrain", "post"),
        ("/api/retrain_status", "get"),
        ("/api/jobs", "get"),
        ("/api/jobs/{id}", "get"),
        ("/api/jobs/{id}/cancel", "post"),
        ("/api/jobs/{id}/events", "get"),
        ("/api/models", "get"),
        ("/api/models/history", "get"),
        ("/api/models/{version}", "get"),
        ("/api/models/{version}/activate", "post"),
        ("/api/metrics", "get"),
        ("/metrics", "get"),
        ("/livez", "get"),
        ("/readyz", "get"),
    ] {
        let operation = &paths
            .get(path)
            .unwrap_or_else(|| panic!("spec lacks {path}"))[method];
        assert!(operation.is_object(), "spec lacks {method} {path}");
        assert!(
            operation["operationId"].is_string() && operation["summary"].is_string(),
            "{method} {path}"
        );
    }
    assert_eq!(
        spec,
        serde_json::from_str::<Value>(
            &std::fs::read_to_string(common::repo().join("openapi/openapi.json")).unwrap()
        )
        .unwrap()
    );

    let docs = server.client.get(server.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = docs.text().await.unwrap();
    assert!(html.contains("swagger"), "Swagger UI page");
    // Offline: nothing is loaded from another host.
    for pattern in [
        "src=\"http",
        "src='http",
        "href=\"http",
        "href='http",
        "url(http",
        "@import \"http",
    ] {
        assert!(
            !html.contains(pattern),
            "/docs loads an external resource ({pattern})"
        );
    }
}

/// Every sample line of a Prometheus text exposition, checked against the format.
fn parse_prometheus(text: &str) -> Vec<(String, String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE "),
                "bad comment line: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                assert!(labels.ends_with('}'), "bad labels: {line}");
                (name, labels.trim_end_matches('}'))
            }
            None => (series, ""),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        samples.push((name.to_string(), labels.to_string(), value));
    }
    assert!(!samples.is_empty());
    samples
}

/// One request on its own connection, the answer read to the close.
fn exchange(server: &Sprig, method: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::Write;
    let mut stream = common::raw::connect(server);
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.address()
    )
    .unwrap();
    common::raw::response_to_close(&mut stream)
}

/// GET routes of each kind: JSON, the embedded web page, and an image's bytes.
async fn get_routes(server: &Sprig) -> Vec<String> {
    let (_, images) = server.get("/api/images?per_page=1").await;
    let id = images["items"][0]["id"].as_u64().expect("an image id");
    ["/livez", "/readyz", "/api/models", "/"]
        .into_iter()
        .map(String::from)
        .chain([format!("/api/images/{id}/content")])
        .collect()
}

/// The headers of an answer but its date, sorted, and its `Content-Length` apart.
fn comparable(mut headers: Vec<(String, String)>) -> (Vec<(String, String)>, Option<String>) {
    headers.retain(|(name, _)| name != "date");
    headers.sort();
    let length = headers
        .iter()
        .position(|(name, _)| name == "content-length")
        .map(|i| headers.remove(i).1);
    (headers, length)
}

/// HEAD answers like GET on the GET routes (monitors and proxies probe with HEAD): the same status
/// and headers and not one body byte on the wire (`Content-Length`: the test below).
#[tokio::test]
async fn head_answers_like_get_without_the_body() {
    let server = Sprig::start();
    for path in get_routes(&server).await {
        let (status, headers, body) = exchange(&server, "GET", &path);
        assert_eq!(status, 200, "GET {path}");
        assert!(!body.is_empty(), "GET {path} has a body");
        let (head_status, head_headers, head_body) = exchange(&server, "HEAD", &path);
        assert_eq!(head_status, status, "HEAD {path}");
        assert!(
            head_body.is_empty(),
            "HEAD {path} sent {} body bytes",
            head_body.len()
        );
        let (headers, length) = comparable(headers);
        let (head_headers, head_length) = comparable(head_headers);
        assert_eq!(head_headers, headers, "HEAD {path} vs GET");
        assert_eq!(length, Some(body.len().to_string()), "GET {path}");
        if head_length.is_some() {
            assert_eq!(head_length, length, "HEAD {path}");
        }
    }
}

/// HEAD carries GET's `Content-Length` (`head_as_get` in server/src/http.rs), so a client learns
/// an image's size without fetching it. Seen failing before the fix: HEAD sent no length.
#[tokio::test]
async fn head_sends_the_content_length_of_get() {
    let server = Sprig::start();
    for path in get_routes(&server).await {
        let (_, headers, body) = exchange(&server, "GET", &path);
        let (_, head_headers, _) = exchange(&server, "HEAD", &path);
        assert_eq!(comparable(headers).1, Some(body.len().to_string()));
        assert_eq!(
            comparable(head_headers).1,
            Some(body.len().to_string()),
            "HEAD {path}"
        );
    }
}

#[tokio::test]
async fn errors_share_one_json_shape() {
    let server = Sprig::start();
    let expect = |status: u16, body: &Value, want_status: u16, code: &str| {
        assert_eq!(status, want_status, "{body}");
        assert_eq!(body["success"], false, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    };
    let (status, body) = server.get("/no/such/route").await;
    expect(status, &body, 404, "not_found");

    let response = server
        .client
        .post(server.url("/api/predict"))
        .header("content-type", "text/plain")
        .body("not an image")
        .send()
        .await
        .unwrap();
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let (status, body) = (
        response.status().as_u16(),
        response.json::<Value>().await.unwrap(),
    );
    expect(status, &body, 415, "unsupported_media_type");

    let response = server
        .client
        .post(server.url("/api/predict"))
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\ngarbage")
        .send()
        .await
        .unwrap();
    let (status, body) = (
        response.status().as_u16(),
        response.json::<Value>().await.unwrap(),
    );
    expect(status, &body, 400, "invalid_multipart");

    let (status, body) = server.get("/api/images/999999").await;
    expect(status, &body, 404, "not_found");
    let (status, body) = server.get("/api/images/not-a-number").await;
    expect(status, &body, 400, "invalid_parameter");
    let (status, body) = server
        .predict("notes.jpg", b"hello, this is text".to_vec())
        .await;
    expect(status, &body, 422, "unsupported_format");
    let response = server
        .client
        .put(server.url("/api/predict"))
        .send()
        .await
        .unwrap();
    let (status, body) = (
        response.status().as_u16(),
        response.json::<Value>().await.unwrap(),
    );
    expect(status, &body, 405, "method_not_allowed");

    // The server is still up.
    assert_eq!(server.get("/livez").await.0, 200);
}

#[tokio::test]
async fn graceful_shutdown_keeps_all_data() {
    let mut server = Sprig::start();
    let keep = server.take_temp();
    let (status, upload) = server
        .upload(
            "extra",
            vec![(
                "x.jpg".into(),
                common::test_image("healthy", "test-healthy_0005.jpg"),
            )],
        )
        .await;
    assert_eq!(status, 200, "{upload}");
    let (status, prediction) = server
        .predict(
            "leaf.jpg",
            common::test_image("bean_rust", "test-bean_rust_0037.jpg"),
        )
        .await;
    assert_eq!(status, 200);
    let data_dir = server.data_dir.clone();
    let exit = server.stop();
    assert!(exit.success(), "clean exit on SIGTERM: {exit:?}");

    let server = Sprig::start_with(Options {
        data_dir: Some(data_dir),
        ..Options::default()
    });
    let (_, classes) = server.get("/api/classes").await;
    assert!(classes["classes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "extra" && c["images"] == 1));
    let (_, predictions) = server.get("/api/predictions").await;
    assert_eq!(
        predictions["items"][0]["prediction_id"],
        prediction["prediction_id"]
    );
    let (_, models) = server.get("/api/models").await;
    assert_eq!(models["active_version"], 1);
    drop(server);
    drop(keep);
}
