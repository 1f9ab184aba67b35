//! What the multi-replica tests share: a replica's options on a PostgreSQL store, with a short
//! heartbeat and lease so a lost replica is noticed within seconds.

use super::{Options, Sprig};

pub const HEARTBEAT_SECS: u64 = 1;
pub const LEASE_SECS: u64 = 4;

pub fn replica(store_url: &str) -> Options {
    Options::default()
        .env("SPRIG_STORE__URL", store_url)
        .env("SPRIG_CLUSTER__HEARTBEAT_SECS", &HEARTBEAT_SECS.to_string())
        .env("SPRIG_CLUSTER__LEASE_SECS", &LEASE_SECS.to_string())
        .env("SPRIG_TRAINING__AUGMENT_VIEWS", "0")
        .env("SPRIG_TRAINING__ACTIVATION_POLICY", "manual")
}

pub async fn predict_version(server: &Sprig, image: &[u8]) -> u64 {
    let (status, answer) = server.predict("leaf.jpg", image.to_vec()).await;
    assert_eq!(status, 200, "{answer}");
    answer["model_version"].as_u64().unwrap()
}
