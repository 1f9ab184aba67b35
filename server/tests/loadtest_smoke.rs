//! A 15-second run of the light load scenario (goose, the real request mix) against a fresh
//! server: zero failed requests. It asserts correctness under load, not a speed.

mod common;

use std::time::Duration;

use common::Sprig;
use sprig_loadtest::{run, Load, Plan};

#[tokio::test]
async fn light_scenario_smoke_run_has_no_failures() {
    let server = Sprig::start();
    let plan = Plan {
        host: server.url.clone(),
        load: Load::Light,
        duration: Some(Duration::from_secs(15)),
        images: common::repo().join("data/beans-sample/test"),
        token: None,
        allow_remote: false,
        html_report: None,
        server_pid: None,
    };
    let summary = run(&plan).await.expect("the load test runs");
    assert_eq!(summary.total.failures, 0, "{summary:#?}");
    for kind in [
        "predict",
        "predict_batch",
        "metrics",
        "prediction_stats",
        "dataset_stats",
        "list_images",
        "upload",
    ] {
        let requests = summary.by_request.get(kind).map_or(0, |r| r.requests);
        assert!(requests > 0, "{kind} was exercised: {summary:#?}");
    }
    assert!(summary
        .by_request
        .values()
        .all(|r| r.status_codes.keys().all(|&code| code == 200)));
    // The server recorded what it served.
    let (_, stats) = server.get("/api/stats/predictions").await;
    let predicted = summary.by_request["predict"].requests as u64
        + 4 * summary.by_request["predict_batch"].requests as u64;
    assert_eq!(stats["total"].as_u64(), Some(predicted));
}

#[test]
fn refuses_remote_targets_unless_allowed() {
    let plan = Plan {
        host: "http://192.0.2.10:8080".into(),
        load: Load::Light,
        duration: Some(Duration::from_secs(1)),
        images: common::repo().join("data/beans-sample/test"),
        token: None,
        allow_remote: false,
        html_report: None,
        server_pid: None,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let error = runtime.block_on(run(&plan)).unwrap_err();
    assert!(error.to_string().contains("loopback"), "{error}");
}
