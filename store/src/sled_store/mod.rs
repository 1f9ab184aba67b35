//! The sled implementation: one database per data dir, one tree per concern, JSON records under
//! big-endian u64 keys, and sled transactions wherever several trees must change together.

mod database;
mod encoding;
mod features;
mod images;
mod jobs;
mod models;
mod predictions;

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
}
