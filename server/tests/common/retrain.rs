//! What the retraining tests share.

use std::time::Duration;

use serde_json::Value;

use super::{Options, Sprig};

pub const JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// Quick retrains: no augmented views (all features are cached by the bootstrap), few epochs.
pub fn quick() -> Options {
    Options::bootstrapped()
        .env("SPRIG_TRAINING__AUGMENT_VIEWS", "0")
        .env("SPRIG_TRAINING__EPOCHS", "8")
}

pub async fn start_retrain(server: &Sprig, body: Value) -> (u16, Value) {
    server.post_json("/api/retrain", body).await
}

/// Starts a retrain that must be accepted and waits for it to succeed; returns its job.
pub async fn retrain_to_success(server: &Sprig, body: Value) -> Value {
    let (status, accepted) = start_retrain(server, body).await;
    assert_eq!(status, 202, "{accepted}");
    let job = server
        .wait_job(accepted["job_id"].as_u64().unwrap(), JOB_TIMEOUT)
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");
    job
}
