//! The generated Rust client (`openapi/client`, built by progenitor from the committed spec)
//! drives a real sprig through the whole loop: upload to two classes, retrain, poll to completion,
//! list models, roll back to the older version, predict, read metrics — plus typed errors and the
//! documented server-sent event shape. A spec the generator misreads fails here, not in users' code.

mod common;

use std::time::{Duration, Instant};

use common::{test_image, Options, Sprig};
use futures::StreamExt;
use sprig_client::types::{ActivateRequest, ErrorCode, JobStateName, UploadStatus};
use sprig_client::{Client, Error};

const JOB_TIMEOUT: Duration = Duration::from_secs(300);

fn client(server: &Sprig) -> Client {
    // Activation loads and warms a version up, which can outlast the generated 15-second default.
    let http = sprig_client::reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    Client::new_with_client(&server.url, http)
}

#[tokio::test]
async fn generated_client_runs_the_whole_loop() {
    let server = Sprig::start_with(
        Options::bootstrapped()
            .env("SPRIG_TRAINING__EPOCHS", "3")
            .env("SPRIG_TRAINING__AUGMENT_VIEWS", "0")
            .env("SPRIG_TRAINING__ACTIVATION_POLICY", "always"),
    );
    let client = client(&server);

    let ready = client.readiness().send().await.unwrap();
    assert_eq!(ready.model_version, 1);

    // Upload held-out images to two classes, one raw `application/octet-stream` body each.
    let uploads = [
        ("bean_rust", "test-bean_rust_0019.jpg"),
        ("bean_rust", "test-bean_rust_0021.jpg"),
        ("healthy", "test-healthy_0007.jpg"),
        ("healthy", "test-healthy_0005.jpg"),
    ];
    for (class, name) in uploads {
        let response = client
            .upload_images()
            .class(class)
            .filename(name)
            .body(test_image(class, name))
            .send()
            .await
            .unwrap();
        assert_eq!(
            (response.stored, response.rejected),
            (1, 0),
            "{name}: {response:?}"
        );
        let item = &response.items[0];
        assert_eq!(item.status, UploadStatus::Stored);
        let image = item.image.as_ref().unwrap();
        assert_eq!(
            (image.class.as_str(), image.filename.as_deref()),
            (class, Some(name))
        );
    }

    // Retrain with the server's defaults (the generated builder sends `{}`), poll to completion.
    let accepted = client.start_retrain().send().await.unwrap();
    assert_eq!(accepted.status(), 202);
    let job_id = accepted.job_id;
    let deadline = Instant::now() + JOB_TIMEOUT;
    let job = loop {
        let job = client
            .get_job()
            .id(job_id)
            .send()
            .await
            .unwrap()
            .into_inner();
        if !matches!(job.state, JobStateName::Queued | JobStateName::Running) {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "job {job_id} did not finish: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(job.state, JobStateName::Succeeded, "{job:?}");
    assert_eq!(job.model_version, Some(2));
    assert!(!job.epochs.is_empty(), "{job:?}");
    let status = client.retrain_status().send().await.unwrap();
    assert!(!status.is_running);
    assert_eq!(
        (status.job_id, status.state),
        (Some(job_id), Some(JobStateName::Succeeded))
    );

    // A finished job's event stream is its final state as one `job` event (the documented shape).
    let events = client.stream_job_events().id(job_id).send().await.unwrap();
    let mut stream = events.into_inner();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(text.contains("event: job"), "{text}");
    let data = text
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .unwrap();
    let streamed: sprig_client::types::JobInfo = serde_json::from_str(data).unwrap();
    assert_eq!(
        (streamed.id, streamed.state),
        (job_id, JobStateName::Succeeded)
    );

    // Both versions listed, the new one active (policy `always`); roll back to the older one.
    let models = client.list_models().send().await.unwrap();
    let versions: Vec<u32> = models.items.iter().map(|m| m.version).collect();
    assert_eq!(versions, vec![1, 2]);
    assert_eq!(models.active_version, Some(2));
    // Version 2 trained on the 60 demo photos and the uploads (version 1, the shipped one, on
    // 900 photos this instance does not hold).
    let snapshot = &models.items[1].data_snapshot;
    assert_eq!(snapshot.total_images, 60 + uploads.len() as u64);
    assert_eq!(models.items[0].data_snapshot.total_images, 900);
    let activation = client
        .activate_model()
        .version(1)
        .body(ActivateRequest {
            reason: Some("generated-client test: roll back".parse().unwrap()),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(
        (activation.activation.from, activation.activation.to),
        (Some(2), 1)
    );
    assert!(activation.model.active);
    let model = client.get_model().version(1).send().await.unwrap();
    assert!(model.active);

    // Predict a file with the version we rolled back to.
    let prediction = client
        .predict()
        .filename("leaf.jpg")
        .body(test_image(
            "angular_leaf_spot",
            "test-angular_leaf_spot_0003.jpg",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(prediction.model_version, 1);
    assert_eq!(prediction.filename.as_deref(), Some("leaf.jpg"));
    assert!(prediction
        .probabilities
        .contains_key(&prediction.predicted_class));
    let batch = client
        .predict_batch()
        .filename("one.jpg")
        .body(test_image("healthy", "test-healthy_0007.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!((batch.succeeded, batch.failed), (1, 0));

    // Metrics see the rollback, the predictions and the uploads.
    let metrics = client.system_metrics().send().await.unwrap();
    assert_eq!(metrics.active_model_version, Some(1));
    assert!(metrics.prediction_count >= 2, "{metrics:?}");
    assert_eq!(metrics.class_count, 3);
    assert!(!metrics.retrain_running);
    let history = client.activation_history().send().await.unwrap();
    assert_eq!(history.items.last().map(|a| a.to), Some(1));
}

#[tokio::test]
async fn generated_client_surfaces_typed_errors() {
    let server = Sprig::start();
    let client = client(&server);

    // The shared error schema comes back typed, with its stable code as an enum to match on.
    match client.get_job().id(9_999).send().await {
        Err(Error::ErrorResponse(response)) => {
            assert_eq!(response.status(), 404);
            assert!(!response.success);
            assert_eq!(response.error.code, ErrorCode::NotFound);
        }
        other => panic!("expected a 404 error body, got {other:?}"),
    }

    // A raw-body upload needs the class in the query (no class is an invalid class name).
    let image = test_image("healthy", "test-healthy_0007.jpg");
    match client.upload_images().body(image.clone()).send().await {
        Err(Error::ErrorResponse(response)) => {
            assert_eq!(response.status(), 422);
            assert_eq!(response.error.code, ErrorCode::InvalidClassName);
        }
        other => panic!("expected a 422 error body, got {other:?}"),
    }

    // Not an image: 422 with the decoder's code.
    match client.predict().body(b"not an image".to_vec()).send().await {
        Err(Error::ErrorResponse(response)) => {
            assert_eq!(response.status(), 422);
            assert_eq!(response.error.code, ErrorCode::UnsupportedFormat);
        }
        other => panic!("expected a 422 error body, got {other:?}"),
    }
}
