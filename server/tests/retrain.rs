//! Retraining as durable jobs over real HTTP: lifecycle, 409, live events, feature-cache reuse,
//! version metadata, activation policy, rollback, and phase-two fine-tuning. Hot swaps under load
//! and kill -9 recovery are in `retrain_recovery.rs`.

mod common;

use std::time::{Duration, Instant};

use common::retrain::{quick, retrain_to_success, start_retrain, JOB_TIMEOUT};
use common::{test_image, Options, Sprig};
use futures::StreamExt;
use serde_json::{json, Value};

#[tokio::test]
async fn retrain_lifecycle_events_metadata_and_conflict() {
    let server = Sprig::start_with(quick().env("SPRIG_TRAINING__ACTIVATION_POLICY", "always"));
    let (status, status_before) = server.get("/api/retrain_status").await;
    assert_eq!(
        (status, &status_before["is_running"]),
        (200, &Value::Bool(false))
    );
    assert!(status_before["last_retrain_time"].is_null());

    let response = server
        .client
        .post(server.url("/api/retrain"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202, "an empty body uses the defaults");
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let accepted: Value = response.json().await.unwrap();
    let id = accepted["job_id"].as_u64().unwrap();
    assert_eq!(location, format!("/api/jobs/{id}"));
    assert_eq!(accepted["job"]["state"], "queued");

    // Live events: the stream starts with the current state and ends when the job does.
    let events = server
        .client
        .get(server.url(&format!("/api/jobs/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");

    // A second retrain while this one is queued or running: 409 with the existing job's id.
    let (status, conflict) = start_retrain(&server, json!({"epochs": 3})).await;
    if status == 409 {
        assert_eq!(conflict["error"]["code"], "retrain_in_progress");
        assert_eq!(conflict["error"]["job_id"], id);
    } else {
        assert_eq!(
            status, 202,
            "only possible if the first job already finished: {conflict}"
        );
    }

    let mut stream = events.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = tokio::time::timeout(JOB_TIMEOUT, stream.next())
        .await
        .expect("events keep coming")
    {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let jobs: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert!(text.contains("event: job"), "{text}");
    assert!(jobs.len() >= 3, "several updates streamed: {}", jobs.len());
    assert_eq!(
        jobs.last().unwrap()["state"],
        "succeeded",
        "the stream ends with the final state"
    );
    let progress: Vec<f64> = jobs
        .iter()
        .map(|j| j["progress"].as_f64().unwrap())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1] + 1e-9),
        "progress never goes back: {progress:?}"
    );
    assert!(
        jobs.iter()
            .any(|j| j["state"] == "running" && !j["epochs"].as_array().unwrap().is_empty()),
        "epochs streamed while running"
    );

    let job = server.wait_job(id, JOB_TIMEOUT).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["progress"], 100.0);
    assert_eq!(job["model_version"], 2);
    assert!(job["started_at"].is_string() && job["finished_at"].is_string());
    let epochs = job["epochs"].as_array().unwrap();
    assert!(!epochs.is_empty() && epochs.len() <= 8);
    for (i, epoch) in epochs.iter().enumerate() {
        assert_eq!(epoch["epoch"], i as u64 + 1);
        for key in [
            "train_loss",
            "train_accuracy",
            "val_loss",
            "val_accuracy",
            "learning_rate",
        ] {
            assert!(epoch[key].is_number(), "{key}: {epoch}");
        }
    }
    for phase in ["features_ms", "training_ms", "evaluation_ms"] {
        assert!(job["timings_ms"][phase].is_u64(), "{phase}: {job}");
    }

    // The version is complete and immutable.
    let (_, model) = server.get("/api/models/2").await;
    assert_eq!(model["version"], 2);
    assert_eq!(model["active"], true, "policy always activates");
    assert_eq!(model["origin"], "retrain");
    assert_eq!(model["job_id"], id);
    assert_eq!(model["backend"], "flex");
    assert_eq!(model["backbone"], "mobilenet_v2");
    assert_eq!(
        model["classes"],
        json!(["angular_leaf_spot", "bean_rust", "healthy"])
    );
    assert_eq!(model["hyperparameters"]["learning_rate"], 0.0001);
    assert_eq!(
        model["hyperparameters"]["warm_start"], true,
        "same classes: starts from version 1's head"
    );
    assert_eq!(model["data_snapshot"]["total_images"], 60);
    assert_eq!(
        model["data_snapshot"]["image_set_hash"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    let snapshot_total: u64 = model["data_snapshot"]["class_counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["train"].as_u64().unwrap() + c["validation"].as_u64().unwrap())
        .sum();
    assert_eq!(snapshot_total, 60);
    assert_eq!(model["epochs"].as_array().unwrap().len(), epochs.len());
    assert!(model["duration_ms"].as_u64().unwrap() > 0);
    let evaluation = &model["evaluation"];
    let examples = evaluation["examples"].as_u64().unwrap();
    assert!(examples > 0);
    let matrix = evaluation["confusion_matrix"].as_array().unwrap();
    assert_eq!(matrix.len(), 3);
    assert_eq!(
        matrix
            .iter()
            .flat_map(|row| row.as_array().unwrap())
            .map(|v| v.as_u64().unwrap())
            .sum::<u64>(),
        examples
    );
    assert_eq!(evaluation["per_class"].as_array().unwrap().len(), 3);
    // Far above chance (1/3) on the validation split.
    assert!(
        evaluation["accuracy"].as_f64().unwrap() >= 0.6,
        "{evaluation}"
    );
    assert!(
        evaluation["macro_f1"].as_f64().unwrap() >= 0.5,
        "{evaluation}"
    );

    let (_, retrain_status) = server.get("/api/retrain_status").await;
    assert_eq!(retrain_status["is_running"], false);
    assert_eq!(retrain_status["progress"], 100);
    assert_eq!(retrain_status["job_id"], id);
    assert!(retrain_status["last_retrain_time"].is_string());
    let (_, history) = server.get("/api/models/history").await;
    let last = history["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["from"].as_u64(), last["to"].as_u64()),
        (Some(1), Some(2))
    );
    let (_, jobs) = server.get("/api/jobs").await;
    assert_eq!(jobs["items"][0]["id"], id);
}

/// A retrain (or activation) body is the object the spec describes: not `null`, no field set to
/// `null` (left out, a field takes the config's default), no unknown field; each is a 400 naming
/// what is wrong, and no job is queued.
#[tokio::test]
async fn request_bodies_are_objects_without_nulls_or_unknown_fields() {
    let server = Sprig::start_with(quick());
    let cases = [
        ("/api/retrain", json!(null), "RetrainRequest"),
        (
            "/api/retrain",
            json!({"learning_rate": null}),
            "learning_rate",
        ),
        (
            "/api/retrain",
            json!({"epochs": 3, "backbone": null}),
            "backbone",
        ),
        ("/api/retrain", json!({"epochz": 3}), "epochz"),
        // The activation body is held to the same rules.
        ("/api/models/1/activate", json!({"reason": null}), "reason"),
        ("/api/models/1/activate", json!({"reasn": "typo"}), "reasn"),
    ];
    for (path, body, names) in cases {
        let (status, refused) = server.post_json(path, body.clone()).await;
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (400, Some("invalid_body")),
            "{path} {body}: {refused}"
        );
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(names), "{path} {body}: {message}");
    }
    let (_, status) = server.get("/api/retrain_status").await;
    assert_eq!(status["is_running"], false, "{status}");
    let (_, jobs) = server.get("/api/jobs").await;
    assert_eq!(jobs["total"], 0, "{jobs}");

    // Relabelling needs its `class`: a misspelt one is named as unknown, the missing one as required.
    let relabel = [
        (
            Some(json!({"klass": "healthy"})),
            &["unknown field `klass`", "`class` is required"][..],
        ),
        (
            Some(json!({"class": null})),
            &["`class` is required and cannot be null"][..],
        ),
        (Some(json!({})), &["`class` is required"][..]),
        (None, &["needs a JSON RelabelRequest body"][..]),
    ];
    for (body, expected) in relabel {
        let request = server.client.patch(server.url("/api/images/1"));
        let request = match &body {
            Some(body) => request.json(body),
            None => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let refused: Value = response.json().await.unwrap();
        assert_eq!(
            (status, refused["error"]["code"].as_str()),
            (400, Some("invalid_body")),
            "{body:?}: {refused}"
        );
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        for part in expected {
            assert!(message.contains(part), "{body:?}: {message}");
        }
    }
    let (_, image) = server.get("/api/images/1").await;
    assert_ne!(
        image["class"],
        Value::Null,
        "the image kept its class: {image}"
    );
}

#[tokio::test]
async fn feature_cache_means_old_images_cost_nothing() {
    let server = Sprig::start_with(quick());
    let (_, first) = start_retrain(&server, json!({})).await;
    let job = server
        .wait_job(first["job_id"].as_u64().unwrap(), JOB_TIMEOUT)
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    // The shipped first version computed none: the first retrain computes every demo photo's.
    assert_eq!(job["features_computed"], 60, "{job}");
    assert_eq!(job["features_reused"], 0);

    let new: Vec<(String, Vec<u8>)> = [
        "test-healthy_0005.jpg",
        "test-healthy_0009.jpg",
        "test-healthy_0030.jpg",
    ]
    .iter()
    .map(|f| (f.to_string(), test_image("healthy", f)))
    .collect();
    assert_eq!(server.upload("healthy", new).await.1["stored"], 3);
    let (_, second) = start_retrain(&server, json!({})).await;
    let job = server
        .wait_job(second["job_id"].as_u64().unwrap(), JOB_TIMEOUT)
        .await;
    assert_eq!(
        job["features_computed"], 3,
        "only the new images went through the backbone: {job}"
    );
    assert_eq!(job["features_reused"], 60);
}

#[tokio::test]
async fn activation_policy_manual_keeps_the_active_version_and_rollback_works() {
    // The server would activate every version; this one retrain asks to keep the active one.
    let server = Sprig::start_with(quick().env("SPRIG_TRAINING__ACTIVATION_POLICY", "always"));
    let (status, refused) = server
        .post_json("/api/retrain", json!({"activation_policy": "sometimes"}))
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (400, Some("invalid_body")),
        "{refused}"
    );
    let (_, accepted) = start_retrain(
        &server,
        json!({"epochs": 4, "learning_rate": 0.001, "activation_policy": "manual"}),
    )
    .await;
    let job = server
        .wait_job(accepted["job_id"].as_u64().unwrap(), JOB_TIMEOUT)
        .await;
    assert_eq!(job["state"], "succeeded");
    assert!(
        job["message"].as_str().unwrap().contains("not activated"),
        "{job}"
    );
    let (_, models) = server.get("/api/models").await;
    assert_eq!(models["active_version"], 1);
    assert_eq!(models["items"].as_array().unwrap().len(), 2);
    assert_eq!(models["items"][1]["hyperparameters"]["epochs"], 4);
    assert_eq!(
        models["items"][1]["hyperparameters"]["activation_policy"], "manual",
        "the version records the policy it was trained under"
    );

    // Roll forward, then back.
    let (status, forward) = server
        .post_json("/api/models/2/activate", json!({"reason": "try v2"}))
        .await;
    assert_eq!(status, 200, "{forward}");
    assert_eq!(forward["activation"]["from"], 1);
    assert_eq!(forward["model"]["active"], true);
    let (_, p) = server
        .predict("x.jpg", test_image("healthy", "test-healthy_0007.jpg"))
        .await;
    assert_eq!(p["model_version"], 2);
    let response = server
        .client
        .post(server.url("/api/models/1/activate"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (_, p) = server
        .predict("x.jpg", test_image("healthy", "test-healthy_0007.jpg"))
        .await;
    assert_eq!(p["model_version"], 1);
    let (_, history) = server.get("/api/models/history").await;
    let moves: Vec<(Option<u64>, u64, String)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["from"].as_u64(),
                h["to"].as_u64().unwrap(),
                h["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(moves.len(), 3, "{moves:?}");
    assert_eq!(
        (moves[1].0, moves[1].1, moves[1].2.as_str()),
        (Some(1), 2, "try v2")
    );
    assert_eq!((moves[2].0, moves[2].1), (Some(2), 1));
    let (status, missing) = server.post_json("/api/models/99/activate", json!({})).await;
    assert_eq!(
        (status, missing["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test]
async fn jobs_fail_and_cancel_cleanly() {
    // Slow feature extraction (many augmented views) so the job can be caught running.
    let server =
        Sprig::start_with(Options::bootstrapped().env("SPRIG_TRAINING__AUGMENT_VIEWS", "16"));
    let (_, accepted) = start_retrain(&server, json!({})).await;
    let id = accepted["job_id"].as_u64().unwrap();
    let deadline = Instant::now() + JOB_TIMEOUT;
    while server.get(&format!("/api/jobs/{id}")).await.1["state"] != "running" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, cancelling) = server
        .post_json(&format!("/api/jobs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(status, 200, "{cancelling}");
    assert_eq!(cancelling["cancel_requested"], true);
    let started = Instant::now();
    let job = server.wait_job(id, JOB_TIMEOUT).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "cooperative cancel stops within a batch"
    );
    assert_eq!(
        server.get("/api/models").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "no version from a cancelled job"
    );
    let (status, finished) = server
        .post_json(&format!("/api/jobs/{id}/cancel"), json!({}))
        .await;
    assert_eq!(
        (status, finished["error"]["code"].as_str()),
        (409, Some("job_finished"))
    );

    // Not enough data: one class left → the job fails with a stable code.
    for class in ["bean_rust", "healthy"] {
        server
            .client
            .delete(server.url(&format!("/api/classes/{class}?force=true")))
            .send()
            .await
            .unwrap();
    }
    let (_, accepted) = start_retrain(&server, json!({})).await;
    let job = server
        .wait_job(accepted["job_id"].as_u64().unwrap(), JOB_TIMEOUT)
        .await;
    assert_eq!(job["state"], "failed");
    assert_eq!(job["error"]["code"], "not_enough_data", "{job}");
    let (status, bad) = start_retrain(&server, json!({"epochs": 0})).await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(
        server.get("/readyz").await.0,
        200,
        "the active model still serves"
    );
}

#[tokio::test]
async fn phase_two_fine_tunes_the_last_blocks_on_request() {
    let server = Sprig::start_with(
        quick()
            .env("SPRIG_TRAINING__ACTIVATION_POLICY", "always")
            .env("SPRIG_TRAINING__FINE_TUNE_EPOCHS", "2"),
    );
    let (_, settings) = server.get("/api/config").await;
    assert_eq!(
        settings["training"]["fine_tune"], false,
        "off by default on a CPU backend"
    );
    // The tail model does not pool the texture block: that pooling's request is refused
    // before anything runs.
    let (status, refused) = start_retrain(
        &server,
        json!({"epochs": 3, "fine_tune": true, "pooling": "every_block_texture"}),
    )
    .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (422, Some("conflicting_options")),
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("fine-tuning needs pooling \"final\" or \"every_block\""),
        "{refused}"
    );
    let job = retrain_to_success(
        &server,
        json!({"epochs": 3, "fine_tune": true, "pooling": "final"}),
    )
    .await;
    assert!(job["timings_ms"]["fine_tuning_ms"].is_u64(), "{job}");
    let (_, model) = server.get("/api/models/2").await;
    assert_eq!(model["hyperparameters"]["fine_tune"], true);
    assert_eq!(model["hyperparameters"]["pooling"], "final");
    assert_eq!(model["hyperparameters"]["fine_tune_blocks"], 2);
    let epochs = model["epochs"].as_array().unwrap();
    let phase_one = epochs.len() - 2;
    assert!((1..=3).contains(&phase_one), "{} epochs", epochs.len());
    assert_eq!(
        epochs.last().unwrap()["epoch"].as_u64(),
        Some(epochs.len() as u64),
        "phase 2 continues the count"
    );
    assert!(
        model["evaluation"]["accuracy"].as_f64().unwrap() >= 0.6,
        "{}",
        model["evaluation"]
    );
    // The fine-tuned version serves predictions.
    let (status, p) = server
        .predict("x.jpg", test_image("healthy", "test-healthy_0007.jpg"))
        .await;
    assert_eq!((status, p["model_version"].as_u64()), (200, Some(2)), "{p}");
    assert_eq!(p["predicted_class"], "healthy");

    // Under the default pooling (every block) the tuned blocks' taps are pooled too.
    let job = retrain_to_success(&server, json!({"epochs": 3, "fine_tune": true})).await;
    assert!(job["timings_ms"]["fine_tuning_ms"].is_u64(), "{job}");
    let (_, model) = server.get("/api/models/3").await;
    assert_eq!(model["hyperparameters"]["pooling"], "every_block");
    assert_eq!(model["hyperparameters"]["fine_tune"], true);
    let (status, p) = server
        .predict("x.jpg", test_image("healthy", "test-healthy_0007.jpg"))
        .await;
    assert_eq!((status, p["model_version"].as_u64()), (200, Some(3)), "{p}");
}
