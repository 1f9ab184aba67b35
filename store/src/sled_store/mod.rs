//! The sled implementation: one database per data dir, one tree per concern, JSON records under
//! big-endian u64 keys, and sled transactions wherever several trees must change together.

mod database;
mod encoding;
mod features;
mod images;
mod jobs;
mod models;
mod predictions;
mod reviews;
mod rollouts;

use std::sync::Arc;

use sled::{Db, Tree};

use crate::space::SpaceReserve;

const SCHEMA_KEY: &[u8] = b"schema_version";
/// Written by readiness checks to find out whether the database still takes writes.
const PROBE_KEY: &[u8] = b"write_probe";
const NEXT_IMAGE_ID: &[u8] = b"next_image_id";
const NEXT_JOB_ID: &[u8] = b"next_job_id";
const NEXT_MODEL_VERSION: &[u8] = b"next_model_version";
const NEXT_ACTIVATION: &[u8] = b"next_activation";
const ACTIVE_MODEL: &[u8] = b"active_model";
const PREDICTION_STATS: &[u8] = b"stats";
const REVIEW_KEPT_BYTES: &[u8] = b"review_kept_bytes";
const REVIEW_EVICTED: &[u8] = b"review_evicted";
const NEXT_ROLLOUT: &[u8] = b"next_rollout";
/// The id of the running rollout, while one runs.
const RUNNING_ROLLOUT: &[u8] = b"running_rollout";

/// The sled database behind every store of a data dir.
#[derive(Clone)]
pub struct SledStore {
    db: Db,
    reserve: SpaceReserve,
    /// `durable.json` beside the database: the counters as of the last acknowledged flush.
    watermark_file: std::path::PathBuf,
    /// Concurrent flushes write it one at a time (through one temp file).
    watermark_lock: Arc<std::sync::Mutex<()>>,
    meta: Tree,
    images: Tree,
    image_blobs: Tree,
    image_hashes: Tree,
    predictions: Tree,
    prediction_stats: Tree,
    models: Tree,
    model_blobs: Tree,
    activations: Tree,
    jobs: Tree,
    /// The exclusive job of each kind (kind → id), while it is queued or running.
    active_jobs: Tree,
    /// The queued jobs, in id order (id → kind): what workers claim from.
    job_queue: Tree,
    /// kind NUL worker → [`WorkerRecord`](crate::WorkerRecord).
    job_workers: Tree,
    features: Tree,
    /// prediction id → [`ReviewItem`](crate::ReviewItem), pending or settled.
    review_items: Tree,
    /// [`ReviewItem::rank_key`](crate::ReviewItem::rank_key) → prediction id, pending items only.
    review_rank: Tree,
    /// Pending prediction ids, oldest first (what the disk budget evicts).
    review_age: Tree,
    /// sha256 → kept image bytes.
    review_blobs: Tree,
    /// sha256 → the pending item with that content (one per image).
    review_hashes: Tree,
    /// id → [`RolloutRecord`](crate::RolloutRecord).
    rollouts: Tree,
    /// Keeps and settlements take turns (eviction scans outside a transaction).
    review_lock: Arc<std::sync::Mutex<()>>,
}
