//! sprig's durable background jobs: an [apalis] worker over the job records of sprig-store's
//! [`JobStore`], so the queue lives in the same database as everything else and no broker is
//! needed. One record is the truth: the job a user follows is the entry its worker claims, and
//! its state is its place in the queue (as a Meilisearch task is).
//!
//! ```ignore
//! let queue = JobQueue::<Retrain>::new(stores.jobs.clone(), "retrain");
//! // At start-up, before the worker runs: settle what a crash left behind (one process: every
//! // running job; replicas sharing the queue: those whose worker has been silent for a lease).
//! recover_interrupted(&*stores.jobs, "retrain", Duration::ZERO)?;
//! tokio::spawn(run_worker(queue.clone(), |job_id, args: Retrain| async move { retrain(job_id, args).await }, shutdown));
//! let job = queue.push_exclusive(&Retrain { epochs: 5 })?; // picked up at once
//! ```
//!
//! Semantics:
//! - Jobs run one at a time, oldest first. A handler may write its job's end state itself (with
//!   whatever detail it has); otherwise its `Ok` marks the job succeeded and its `Err(error)`
//!   failed with that error. A panic marks it failed with code [`PANICKED`].
//! - Queued jobs survive restarts and run once a worker is running again.
//! - A job that was running when the process died is **not** run again: there is no telling how
//!   far it got, and a retrain half-done should be restarted by a person, not silently.
//!   [`recover_interrupted`] marks it failed with code [`INTERRUPTED`].
//! - A worker records that it is alive every heartbeat interval, also while its handler runs (a
//!   long job does not stop it); a worker silent for longer than a lease is taken for dead.
//!   Worker names are unique per process ([`JobQueue::worker_name`]).
//! - Cancellation is cooperative: stopping the worker waits for the running handler to return.
//!
//! The codes this crate writes into failed jobs ([`INTERRUPTED`], [`PANICKED`],
//! [`INVALID_ARGUMENTS`]) are names of sprig's one error-code enum (core's `ErrorCode`; a test
//! there keeps them so).
//!
//! [apalis]: https://docs.rs/apalis

mod backend;
mod codes;
mod error;

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis_core::error::WorkerError;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::builder::WorkerBuilder;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sprig_store::{JobError, JobRecord, JobStore};

use backend::QueuePersistence;
pub use backend::{JobQueueBackend, JsonCodec};
pub use codes::{INTERRUPTED, INVALID_ARGUMENTS, PANICKED};
pub use error::JobsError;

/// How often a worker records that it is alive unless told otherwise.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);

/// A handle on one named queue of jobs with arguments `T` (stored as JSON). Cheap to clone;
/// pushes through any clone wake the worker started with [`run_worker`] on a clone.
pub struct JobQueue<T> {
    persistence: QueuePersistence<T>,
    heartbeat: Duration,
}

impl<T> Clone for JobQueue<T> {
    fn clone(&self) -> Self {
        Self {
            persistence: self.persistence.clone(),
            heartbeat: self.heartbeat,
        }
    }
}

impl<T> JobQueue<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// The queue of the jobs of kind `kind` in `jobs`, with the [`DEFAULT_HEARTBEAT`].
    pub fn new(jobs: Arc<dyn JobStore>, kind: &str) -> Self {
        Self {
            persistence: QueuePersistence::new(jobs, kind),
            heartbeat: DEFAULT_HEARTBEAT,
        }
    }

    /// Sets how often the worker records that it is alive. New work does not wait for it:
    /// pushes wake the worker.
    pub fn with_heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// The queue's name: the kind of its jobs.
    pub fn name(&self) -> &str {
        &self.persistence.queue
    }

    /// The name this process's worker on this queue registers under: the queue, the host, the
    /// process id and the start time, so no two processes (replicas in containers all run as
    /// pid 1) share one.
    pub fn worker_name(&self) -> String {
        format!("{}@{}", self.name(), instance_name())
    }

    /// Queues a job durably and wakes the worker; returns the job's id.
    pub async fn push(&self, args: T) -> Result<u64, JobsError> {
        Ok(self
            .persistence
            .push(serde_json::to_value(&args)?, false)?
            .id)
    }

    /// Queues a job unless another exclusive job of this kind is queued or running (then
    /// [`StoreError::Conflict`](sprig_store::StoreError::Conflict) names it), and wakes the
    /// worker.
    pub fn push_exclusive(&self, args: &T) -> Result<JobRecord, JobsError> {
        self.persistence.push(serde_json::to_value(args)?, true)
    }

    /// The arguments of job `id`, e.g. of a job returned by [`recover_interrupted`].
    pub fn args(&self, id: u64) -> Result<Option<T>, JobsError> {
        let job = self.persistence.jobs.get(id)?;
        Ok(job.map(|j| serde_json::from_value(j.params)).transpose()?)
    }

    /// The apalis backend of this queue, for building a worker by hand.
    pub fn backend(&self) -> JobQueueBackend<T> {
        JobQueueBackend::new(self.persistence.clone(), self.heartbeat)
    }
}

/// Runs one apalis worker on `queue` until `shutdown` resolves, then waits for the running
/// handler (if any) to return. `handler` gets each job's id and arguments, one job at a time;
/// its `Err(error)` fails the job with that error (unless the handler wrote an end state
/// itself).
///
/// Call [`recover_interrupted`] before, so that jobs a crash left running are settled first.
pub async fn run_worker<T, F, Fut, S>(
    queue: JobQueue<T>,
    handler: F,
    shutdown: S,
) -> Result<(), JobsError>
where
    T: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static,
    F: Fn(u64, T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    S: Future<Output = ()> + Send + 'static,
{
    // Panics are caught here rather than with apalis' `catch_panic` layer, whose handler type
    // keeps the worker future from being provably `Send` (so it could not be spawned). The call
    // sits inside the caught future so that a panic before its first await is caught too.
    // apalis carries a handler's error as text: the job's error travels as JSON in it.
    let handler = move |args: T, task: TaskId| {
        let handler = handler.clone();
        async move {
            let id = task
                .as_int()
                .ok_or_else(|| format!("foreign task id {task}"))?;
            let result = match AssertUnwindSafe(async move { handler(id, args).await })
                .catch_unwind()
                .await
            {
                Ok(result) => result,
                Err(panic) => Err(JobError {
                    code: PANICKED.into(),
                    message: panic_message(&*panic),
                }),
            };
            result.map_err(|error| serde_json::to_string(&error).unwrap_or(error.message))
        }
    };
    let name = queue.worker_name();
    let worker = WorkerBuilder::new(name)
        .backend(queue.backend())
        .concurrency(1)
        .build(handler);
    worker
        .run_until(async move {
            shutdown.await;
            Ok::<_, WorkerError>(())
        })
        .await?;
    Ok(())
}

/// This process among the others sharing a queue: `host-pid-starttime`.
fn instance_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".into());
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        format!("{host}-{}-{started:x}", std::process::id())
    })
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message");
    format!("job handler panicked: {message}")
}

/// Settles the jobs of `kind` that a dead process left running: each is marked failed with code
/// [`INTERRUPTED`] instead of being run again. Returns them.
///
/// A job counts as left behind when its worker has been silent for `lease`. With one process
/// per queue, call it at start-up with `Duration::ZERO`: every job running then belongs to a
/// process that no longer exists. With replicas sharing the queue, call it with a lease of a few
/// heartbeats, at start-up and then periodically, so a replica killed mid-job has its job settled
/// by another within about the lease.
pub fn recover_interrupted(
    jobs: &dyn JobStore,
    kind: &str,
    lease: Duration,
) -> Result<Vec<JobRecord>, JobsError> {
    let error = JobError {
        code: INTERRUPTED.into(),
        message: "the process running this job stopped before it finished; start it again".into(),
    };
    let failed = jobs.fail_orphaned(kind, lease, &error)?;
    for job in &failed {
        tracing::warn!(
            job = job.id,
            kind,
            worker = job.worker.as_deref().unwrap_or("?"),
            "job interrupted: its worker stopped"
        );
    }
    Ok(failed)
}
