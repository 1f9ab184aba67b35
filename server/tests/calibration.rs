//! Served confidences are scaled by the active version's calibration temperature. The version
//! record is changed behind the server's back (on PostgreSQL, with SQL) so the same image's
//! answer can be compared before and after with nothing else different.

mod common;

use common::{held_out_images, Options, Sprig};
use serde_json::Value;
use sprig_store::pg_test_cluster::cluster_or_skip;

fn probabilities(answer: &Value) -> Vec<f32> {
    let map = answer["probabilities"].as_object().unwrap();
    let mut classes: Vec<&String> = map.keys().collect();
    classes.sort();
    classes
        .iter()
        .map(|c| map[*c].as_f64().unwrap() as f32)
        .collect()
}

#[tokio::test]
async fn predictions_are_scaled_by_the_active_versions_temperature() {
    const TEST: &str = "predictions_are_scaled_by_the_active_versions_temperature";
    let Some(cluster) = cluster_or_skip(&format!("calibration::{TEST}")) else {
        return;
    };
    let url = cluster.create_database();
    let options = || Options::default().env("SPRIG_STORE__URL", &url);
    let (_, _, image) = held_out_images().remove(0);

    let server = Sprig::start_with(options());
    let (status, raw) = server.predict("leaf.jpg", image.clone()).await;
    assert_eq!(status, 200, "{raw}");
    // The bootstrap version was scored on too few images (the demo set's validation split) to
    // be calibrated: its answers are the model's own.
    let (_, model) = server.get("/api/models/1").await;
    assert!(model["evaluation"]["calibration"].is_null(), "{model}");
    assert!(server.stop().success());

    cluster.sql(
        &url,
        r#"UPDATE model_versions SET record = jsonb_set(record, '{evaluation,calibration}',
           '{"temperature": 3.0, "ece_before": 0.1, "ece_after": 0.02, "bins": []}')
           WHERE version = 1"#,
    );
    let server = Sprig::start_with(options());
    let (_, model) = server.get("/api/models/1").await;
    assert_eq!(model["evaluation"]["calibration"]["temperature"], 3.0);
    let (status, scaled) = server.predict("leaf.jpg", image).await;
    assert_eq!(status, 200, "{scaled}");
    let expected = sprig_core::calibration::scale(&probabilities(&raw), 3.0);
    let served = probabilities(&scaled);
    assert_eq!(raw["predicted_class"], scaled["predicted_class"]);
    for (served, expected) in served.iter().zip(&expected) {
        // Both sides are f32 probabilities; only rounding separates them.
        assert!(
            (served - expected).abs() < 1e-5,
            "served {served:?}, expected {expected:?} from {raw} at T = 3"
        );
    }
    let top = served.iter().copied().fold(0.0f32, f32::max);
    assert!((scaled["confidence"].as_f64().unwrap() as f32 - top).abs() < 1e-6);
    assert!(
        top < raw["confidence"].as_f64().unwrap() as f32,
        "T > 1 softens"
    );
    assert!(server.stop().success());
}
