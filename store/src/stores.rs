//! The storage traits, one per concern, and [`Stores`], all of one data dir's as trait objects.

use std::sync::Arc;

use crate::changes::ChangeFeed;
use crate::error::Result;
use crate::queue::TaskQueue;
use crate::types::*;

/// Version of the on-disk format; a store written by another version is refused at open.
pub const SCHEMA_VERSION: u32 = 1;

/// Labelled training images: original bytes plus metadata, deduplicated by content hash.
pub trait ImageStore: Send + Sync {
    /// Stores bytes and metadata in one transaction, or reports the existing image with the
    /// same content hash.
    fn insert(&self, image: NewImage) -> Result<InsertOutcome>;
    fn get(&self, id: u64) -> Result<Option<ImageRecord>>;
    fn find_by_hash(&self, sha256: &str) -> Result<Option<ImageRecord>>;
    /// Original bytes as received.
    fn content(&self, id: u64) -> Result<Option<Vec<u8>>>;
    /// Matching images, oldest first.
    fn list(&self, filter: &ImageFilter, page: PageRequest) -> Result<Page<ImageRecord>>;
    /// Every image's metadata (training reads the whole data set).
    fn all(&self) -> Result<Vec<ImageRecord>>;
    fn relabel(&self, id: u64, class: &str) -> Result<Option<ImageRecord>>;
    fn delete(&self, id: u64) -> Result<Option<ImageRecord>>;
    /// Deletes every image of `class` in one transaction; returns how many.
    fn delete_class(&self, class: &str) -> Result<u64>;
    fn classes(&self) -> Result<Vec<ClassSummary>>;
    fn stats(&self) -> Result<DatasetStats>;
    fn count(&self) -> Result<u64>;
}

/// The log of served predictions and its running aggregates.
pub trait PredictionStore: Send + Sync {
    /// Records predictions (ids are assigned here, increasing with time) and updates the
    /// aggregates in the same transaction.
    fn record(&self, predictions: Vec<PredictionRecord>) -> Result<Vec<u64>>;
    /// Newest first.
    fn list(&self, page: PageRequest) -> Result<Page<PredictionRecord>>;
    fn stats(&self) -> Result<PredictionStats>;
    /// A fresh prediction id (monotonic across restarts).
    fn next_id(&self) -> Result<u64>;
    /// Deletes the oldest predictions beyond `max_count`, and every one recorded before
    /// `older_than`. The aggregates ([`PredictionStore::stats`]) keep counting them. Returns how
    /// many were deleted.
    fn prune(&self, max_count: u64, older_than: Option<Timestamp>) -> Result<u64>;
}

/// Immutable model versions, their weights, which one is active and the activation log.
pub trait ModelStore: Send + Sync {
    /// Assigns the next version number and writes record and weights atomically.
    fn create(&self, version: NewModelVersion) -> Result<ModelVersionRecord>;
    fn get(&self, version: u32) -> Result<Option<ModelVersionRecord>>;
    fn list(&self) -> Result<Vec<ModelVersionRecord>>;
    fn artifact(&self, version: u32) -> Result<Option<Vec<u8>>>;
    fn active(&self) -> Result<Option<u32>>;
    /// Makes `version` active and appends to the activation log, atomically.
    fn activate(&self, version: u32, reason: &str) -> Result<ActivationRecord>;
    /// Like [`activate`](Self::activate), only if no version is active yet, in the same atomic
    /// step: of several processes bootstrapping one shared store, the first wins and the others
    /// get `None`.
    fn activate_first(&self, version: u32, reason: &str) -> Result<Option<ActivationRecord>>;
    /// Oldest first.
    fn history(&self) -> Result<Vec<ActivationRecord>>;
}

/// User-visible job records (state, progress, per-epoch metrics).
pub trait JobStore: Send + Sync {
    /// Creates a queued job unless a job of the same kind is queued or running, in which case
    /// [`StoreError::Conflict`](crate::StoreError::Conflict) carries the existing job's id.
    fn create_exclusive(&self, kind: &str, params: serde_json::Value) -> Result<JobRecord>;
    fn get(&self, id: u64) -> Result<Option<JobRecord>>;
    /// Newest first.
    fn list(&self, page: PageRequest) -> Result<Page<JobRecord>>;
    /// Read-modify-write of one job, atomically.
    fn update(&self, id: u64, change: &mut dyn FnMut(&mut JobRecord)) -> Result<JobRecord>;
    /// The queued or running job of `kind`, if any.
    fn active(&self, kind: &str) -> Result<Option<JobRecord>>;
    fn count_by_state(&self) -> Result<Vec<(JobState, u64)>>;
}

/// Backbone features cached per (content hash, backbone, augmented view).
pub trait FeatureCache: Send + Sync {
    fn get(&self, key: &FeatureKey) -> Result<Option<Vec<f32>>>;
    fn put(&self, entries: Vec<(FeatureKey, Vec<f32>)>) -> Result<()>;
    fn count(&self) -> Result<u64>;
}

/// Storage lifecycle: durability and health.
pub trait Database: Send + Sync {
    /// Makes every acknowledged write durable.
    fn flush(&self) -> Result<()>;
    /// Cheap check that the store answers and takes writes (free-space reserve included).
    fn check(&self) -> Result<()>;
    /// Bytes the store uses on disk.
    fn size_on_disk(&self) -> Result<u64>;
    /// Whether other processes may use this store at the same time (replicas on one database):
    /// then a running job may belong to a live process elsewhere, and changes arrive through
    /// [`Stores::changes`].
    fn shared(&self) -> bool;
    /// Where the data lives, for logs (no password).
    fn describe(&self) -> String;
}

/// All the stores of one deployment (a data dir, or a database), as trait objects.
#[derive(Clone)]
pub struct Stores {
    pub images: Arc<dyn ImageStore>,
    pub predictions: Arc<dyn PredictionStore>,
    pub models: Arc<dyn ModelStore>,
    pub jobs: Arc<dyn JobStore>,
    pub tasks: Arc<dyn TaskQueue>,
    pub features: Arc<dyn FeatureCache>,
    /// What other processes change (nothing, for an embedded store).
    pub changes: Arc<dyn ChangeFeed>,
    pub database: Arc<dyn Database>,
}
