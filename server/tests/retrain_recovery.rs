//! Retraining under stress, over real HTTP: versions swapped under concurrent predictions, and a
//! kill -9 during a retrain or during activation, then a restart on the same data dir.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::retrain::{quick, start_retrain, JOB_TIMEOUT};
use common::{test_image, Options, Sprig};
use serde_json::json;

#[tokio::test]
async fn hot_swap_under_concurrent_load_drops_nothing() {
    let server = Arc::new(Sprig::start_with(
        quick().env("SPRIG_TRAINING__ACTIVATION_POLICY", "manual"),
    ));
    let (_, accepted) = start_retrain(&server, json!({"epochs": 3})).await;
    assert_eq!(
        server
            .wait_job(accepted["job_id"].as_u64().unwrap(), JOB_TIMEOUT)
            .await["state"],
        "succeeded"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let server = server.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let image = test_image("bean_rust", "test-bean_rust_0037.jpg");
                let mut versions = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let (status, p) = server.predict("x.jpg", image.clone()).await;
                    assert_eq!(status, 200, "a prediction failed during a swap: {p}");
                    versions.push(p["model_version"].as_u64().unwrap());
                }
                versions
            })
        })
        .collect();
    for round in 0..6 {
        let version = if round % 2 == 0 { 2 } else { 1 };
        let (status, body) = server
            .post_json(&format!("/api/models/{version}/activate"), json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    for client in clients {
        seen.extend(client.await.expect("no client saw a failure"));
    }
    assert_eq!(seen, [1, 2].into(), "answers came from both versions");
}

#[tokio::test]
async fn kill_9_during_a_retrain_marks_it_interrupted_and_keeps_serving() {
    let mut server =
        Sprig::start_with(Options::bootstrapped().env("SPRIG_TRAINING__AUGMENT_VIEWS", "16"));
    let keep = server.take_temp();
    let (_, accepted) = start_retrain(&server, json!({})).await;
    let id = accepted["job_id"].as_u64().unwrap();
    let deadline = Instant::now() + JOB_TIMEOUT;
    loop {
        let (_, job) = server.get(&format!("/api/jobs/{id}")).await;
        if job["state"] == "running" && job["progress"].as_f64().unwrap() > 1.0 {
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let data_dir = server.kill9();

    let server = Sprig::start_with(Options {
        data_dir: Some(data_dir),
        ..Options::default()
    });
    let (_, job) = server.get(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "interrupted");
    let (_, models) = server.get("/api/models").await;
    assert_eq!(
        models["items"].as_array().unwrap().len(),
        1,
        "no half-written version is visible"
    );
    assert_eq!(models["active_version"], 1);
    let (status, p) = server
        .predict("x.jpg", test_image("healthy", "test-healthy_0007.jpg"))
        .await;
    assert_eq!((status, p["model_version"].as_u64()), (200, Some(1)));
    // The interrupted job does not block new retrains.
    let (status, _) = start_retrain(&server, json!({"epochs": 2, "augment_views": 0})).await;
    assert_eq!(status, 202);
    drop(keep);
}

#[tokio::test]
async fn kill_9_during_activation_leaves_one_version_active() {
    let mut server = Sprig::start_with(quick().env("SPRIG_TRAINING__ACTIVATION_POLICY", "manual"));
    let keep = server.take_temp();
    let (_, accepted) = start_retrain(&server, json!({"epochs": 2})).await;
    server
        .wait_job(accepted["job_id"].as_u64().unwrap(), JOB_TIMEOUT)
        .await;
    let flipper = {
        let client = server.client.clone();
        let base = server.url("");
        tokio::spawn(async move {
            for round in 0.. {
                let version = if round % 2 == 0 { 2 } else { 1 };
                if client
                    .post(format!("{base}/api/models/{version}/activate"))
                    .send()
                    .await
                    .is_err()
                {
                    return round;
                }
            }
            unreachable!()
        })
    };
    // Each activation loads the version and is flushed to disk before its answer: let a few of
    // them complete before the crash (counted in the log, not timed: a busy machine is slower).
    let logged = server.get("/api/models/history").await.1["items"]
        .as_array()
        .unwrap()
        .len();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.get("/api/models/history").await.1["items"]
        .as_array()
        .map_or(0, |items| items.len())
        < logged + 3
    {
        assert!(std::time::Instant::now() < deadline, "activations complete");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let data_dir = server.kill9();
    let rounds = flipper.await.unwrap();
    assert!(rounds > 1, "activations were in flight");

    let server = Sprig::start_with(Options {
        data_dir: Some(data_dir),
        ..Options::default()
    });
    let (_, models) = server.get("/api/models").await;
    let active = models["active_version"]
        .as_u64()
        .expect("a version is active");
    assert!(active == 1 || active == 2);
    let (_, history) = server.get("/api/models/history").await;
    assert_eq!(
        history["items"].as_array().unwrap().last().unwrap()["to"].as_u64(),
        Some(active),
        "the log agrees with the active version"
    );
    assert_eq!(
        server.get("/readyz").await.1["model_version"].as_u64(),
        Some(active)
    );
    drop(keep);
}
