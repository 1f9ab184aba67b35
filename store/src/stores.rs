//! The storage traits, one per concern, and [`Stores`], all of one data dir's as trait objects.

use std::sync::Arc;

use crate::changes::ChangeFeed;
use crate::error::{Result, StoreError};
use crate::review::{ReviewItem, ReviewOutcome, ReviewSummary};
use crate::rollout::{NewRollout, RolloutFigures, RolloutRecord, RolloutState, Verdict};
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
    /// Remembers the class a reviewer gave a prediction's image; false when the prediction is
    /// no longer in the history.
    fn set_label(&self, id: u64, class: &str) -> Result<bool>;
}

/// The review queue: predicted images kept for a person to label, within a disk budget.
pub trait ReviewStore: Send + Sync {
    /// Keeps `item` (pending) with its image `bytes`, then evicts the oldest pending items (by
    /// prediction id) until the kept bytes fit in `max_bytes`. Returns the prediction ids evicted
    /// (this one too, when it alone is over the budget). Keeping a prediction already kept, or
    /// an image with the same content as a pending item (one label answers both), changes
    /// nothing.
    fn keep(&self, item: ReviewItem, bytes: Vec<u8>, max_bytes: u64) -> Result<Vec<u64>>;
    /// Pending items, most uncertain first, then newest first.
    fn pending(&self, page: PageRequest) -> Result<Page<ReviewItem>>;
    fn get(&self, prediction_id: u64) -> Result<Option<ReviewItem>>;
    /// The image of a pending item.
    fn image(&self, prediction_id: u64) -> Result<Option<Vec<u8>>>;
    /// Records a reviewer's decision on a pending item and lets its bytes go (unless another
    /// pending item has the same content). An item already settled is returned unchanged;
    /// `None` when the prediction was never kept or has been evicted.
    fn settle(&self, prediction_id: u64, outcome: &ReviewOutcome) -> Result<Option<ReviewItem>>;
    fn summary(&self) -> Result<ReviewSummary>;
    /// Every item, pending or settled, by prediction id (what a store migration carries).
    fn items(&self) -> Result<Vec<ReviewItem>>;
}

/// Rollouts: a candidate version tried on live traffic, one running at a time, with the
/// figures every process adds. Every method is atomic.
pub trait RolloutStore: Send + Sync {
    /// Starts `new` as the running rollout; refused with
    /// [`StoreError::RolloutRunning`](crate::StoreError::RolloutRunning) while another runs.
    fn start(&self, new: NewRollout) -> Result<RolloutRecord>;
    fn running(&self) -> Result<Option<RolloutRecord>>;
    fn get(&self, id: u64) -> Result<Option<RolloutRecord>>;
    /// Newest first.
    fn list(&self) -> Result<Vec<RolloutRecord>>;
    /// Adds one process's figures (whatever the state: figures gathered just before the end
    /// still count) and returns the record as it now is.
    fn add_figures(&self, id: u64, figures: &RolloutFigures) -> Result<RolloutRecord>;
    /// Ends rollout `id` in `state` with `verdict` if it is still running; `None` when it is not
    /// (another process ended it first).
    fn finish(
        &self,
        id: u64,
        state: RolloutState,
        verdict: Verdict,
    ) -> Result<Option<RolloutRecord>>;
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

/// Jobs: the records users follow (state, progress, per-epoch metrics) and, the same records,
/// the durable queue workers claim them from. One record is the truth: a job's state is its
/// place in the queue (see [`JobRecord`]). Every method is atomic.
pub trait JobStore: Send + Sync {
    /// Queues a job of `kind`. With `exclusive`, refused with
    /// [`StoreError::Conflict`](crate::StoreError::Conflict) (carrying the existing job's id)
    /// while another exclusive job of the kind is queued or running.
    fn create(&self, kind: &str, params: serde_json::Value, exclusive: bool) -> Result<JobRecord>;
    fn get(&self, id: u64) -> Result<Option<JobRecord>>;
    /// Newest first.
    fn list(&self, page: PageRequest) -> Result<Page<JobRecord>>;
    /// Up to `limit` jobs of `kind` in `state`, oldest first.
    fn list_in(&self, kind: &str, state: JobState, limit: usize) -> Result<Vec<JobRecord>>;
    /// Read-modify-write of one job, atomically; `change` may run more than once, each time on
    /// a fresh copy. A change of state is durable when this returns.
    fn update(&self, id: u64, change: &mut dyn FnMut(&mut JobRecord)) -> Result<JobRecord>;
    /// The queued or running exclusive job of `kind`, if any.
    fn active(&self, kind: &str) -> Result<Option<JobRecord>>;
    fn count_by_state(&self) -> Result<Vec<(JobState, u64)>>;
    /// Records that `worker` serves the queue of `kind` (again, after a restart).
    fn register_worker(&self, kind: &str, worker: &str) -> Result<WorkerRecord>;
    /// Records that `worker` is alive; registers it if it is unknown.
    fn heartbeat(&self, kind: &str, worker: &str) -> Result<WorkerRecord>;
    /// The workers of `kind`, by name.
    fn workers(&self, kind: &str) -> Result<Vec<WorkerRecord>>;
    /// The store's clock, which worker heartbeats are stamped with (the database's, where
    /// several processes share it, so their clocks never have to agree).
    fn now(&self) -> Result<Timestamp> {
        Ok(chrono::Utc::now())
    }

    /// Moves up to `limit` of the oldest queued jobs of `kind` to running, owned by `worker`.
    /// A job is handed out by one claim only. Claiming counts as a sign of life of `worker` (as
    /// a heartbeat), so a job is never taken for orphaned the moment it is claimed.
    fn claim(&self, kind: &str, worker: &str, limit: usize) -> Result<Vec<JobRecord>> {
        self.heartbeat(kind, worker)?;
        let mut claimed = Vec::new();
        while claimed.len() < limit {
            let candidates = self.list_in(kind, JobState::Queued, limit - claimed.len())?;
            if candidates.is_empty() {
                break;
            }
            for candidate in candidates {
                // Another worker may claim (or a user cancel) it first: the one whose update
                // still finds it queued wins.
                let mut won = false;
                let at = self.now()?;
                let job = self.update(candidate.id, &mut |job| {
                    won = job.state == JobState::Queued;
                    if won {
                        job.start(worker, at);
                    }
                })?;
                if won {
                    claimed.push(job);
                }
            }
        }
        Ok(claimed)
    }

    /// Records how the run of a running job ended. A job that is not running is left as it is
    /// (a late or repeated report changes nothing) and returned unchanged; an unknown id is
    /// [`StoreError::NotFound`](crate::StoreError::NotFound).
    fn finish(&self, id: u64, outcome: &JobOutcome) -> Result<JobRecord> {
        let at = self.now()?;
        self.update(id, &mut |job| {
            if job.state == JobState::Running {
                job.settle(outcome, at);
            }
        })
    }

    /// Puts running jobs that were claimed but never started back in the queue (ids that are
    /// unknown or not running are skipped); returns how many went back.
    fn requeue(&self, ids: &[u64]) -> Result<u64> {
        let mut requeued = 0;
        for &id in ids {
            let mut back = false;
            let outcome = self.update(id, &mut |job| {
                back = job.state == JobState::Running;
                if back {
                    job.return_to_queue();
                }
            });
            match outcome {
                Ok(_) if back => requeued += 1,
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(requeued)
    }

    /// Marks failed, with `error`, every running job of `kind` whose worker has not been seen
    /// (registered or heartbeat) for `silent_for`, and returns them. With several processes on
    /// one queue this is how a dead process's job is told from a live one's; with one,
    /// `silent_for` zero settles them all.
    fn fail_orphaned(
        &self,
        kind: &str,
        silent_for: std::time::Duration,
        error: &JobError,
    ) -> Result<Vec<JobRecord>> {
        let now = self.now()?;
        let cutoff = chrono::Duration::from_std(silent_for)
            .ok()
            .and_then(|lease| now.checked_sub_signed(lease))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let workers = self.workers(kind)?;
        let alive = |name: &str| {
            workers
                .iter()
                .any(|w| w.name == name && w.last_seen >= cutoff)
        };
        let outcome = JobOutcome::Failed(error.clone());
        let mut failed = Vec::new();
        for job in self.list_in(kind, JobState::Running, usize::MAX)? {
            if job.worker.as_deref().is_some_and(alive) {
                continue;
            }
            // Still the same run: a job requeued and claimed again meanwhile is left alone.
            let mut settled = false;
            let record = self.update(job.id, &mut |current| {
                settled = current.state == JobState::Running && current.worker == job.worker;
                if settled {
                    current.settle(&outcome, now);
                }
            })?;
            if settled {
                failed.push(record);
            }
        }
        Ok(failed)
    }
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
    /// Jobs, and the queue their workers claim them from.
    pub jobs: Arc<dyn JobStore>,
    pub features: Arc<dyn FeatureCache>,
    /// Predicted images kept for review.
    pub reviews: Arc<dyn ReviewStore>,
    pub rollouts: Arc<dyn RolloutStore>,
    /// What other processes change (nothing, for an embedded store).
    pub changes: Arc<dyn ChangeFeed>,
    pub database: Arc<dyn Database>,
}
