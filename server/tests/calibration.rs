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
    let (status, first) = server.predict("leaf.jpg", image.clone()).await;
    assert_eq!(status, 200, "{first}");
    // The shipped first version is calibrated on the out-of-fold answers of 900 photos: its
    // answers are the model's own scaled by that temperature.
    let (_, model) = server.get("/api/models/1").await;
    let calibration = &model["evaluation"]["calibration"];
    assert_eq!(calibration["fitted_on"], "out_of_fold", "{model}");
    assert_eq!(calibration["fitted_answers"], 900, "{model}");
    let shipped = calibration["temperature"].as_f64().unwrap();
    assert!(shipped > 1.0, "the head is overconfident: T = {shipped}");
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
    // A record from before out-of-fold fitting reads as fitted on the validation split.
    assert_eq!(
        model["evaluation"]["calibration"]["fitted_on"],
        "validation"
    );
    let (status, scaled) = server.predict("leaf.jpg", image).await;
    assert_eq!(status, 200, "{scaled}");
    // Scaling composes: softmax(ln p / 3) = scale(softmax(ln p / T), 3 / T).
    let expected = sprig_core::calibration::scale(&probabilities(&first), 3.0 / shipped);
    let served = probabilities(&scaled);
    assert_eq!(first["predicted_class"], scaled["predicted_class"]);
    for (served, expected) in served.iter().zip(&expected) {
        // Both sides are f32 probabilities; only rounding separates them.
        assert!(
            (served - expected).abs() < 1e-5,
            "served {served:?}, expected {expected:?} from {first} at T = 3 (was {shipped})"
        );
    }
    let top = served.iter().copied().fold(0.0f32, f32::max);
    assert!((scaled["confidence"].as_f64().unwrap() as f32 - top).abs() < 1e-6);
    assert!(
        top < first["confidence"].as_f64().unwrap() as f32,
        "a larger T softens"
    );
    assert!(server.stop().success());
}
