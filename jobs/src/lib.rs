//! sprig's durable background jobs: an [apalis] worker over sprig-store's [`TaskQueue`] (sled
//! today), so the queue lives in the same database as everything else and no broker is needed.
//!
//! ```ignore
//! let queue = JobQueue::<Retrain>::new(stores.tasks.clone(), "retrain");
//! // At start-up, before the worker runs: settle what a crash left behind (one process: every
//! // running task; replicas sharing the queue: those whose worker has been silent for a lease).
//! for task in recover_interrupted(&*stores.tasks, "retrain", Duration::ZERO)? {
//!     let args = queue.args(task.id)?; // mark the matching job record failed
//! }
//! tokio::spawn(run_worker(queue.clone(), |args: Retrain| async move { retrain(args).await }, shutdown));
//! let task_id = queue.push(Retrain { job_id }).await?; // picked up at once
//! ```
//!
//! Semantics:
//! - Tasks run one at a time, oldest first. A handler's `Err(message)` marks its task failed with
//!   that message; a panic marks it failed with the panic message.
//! - Pushed tasks survive restarts and run once a worker is running again.
//! - A task that was running when the process died is **not** run again: there is no telling how
//!   far it got, and a retrain half-done should be restarted by a person, not silently.
//!   [`recover_interrupted`] marks it failed with the reason [`INTERRUPTED`].
//! - A worker records that it is alive every heartbeat interval, also while its handler runs (a
//!   long job does not stop it); a worker silent for longer than a lease is taken for dead.
//!   Worker names are unique per process ([`JobQueue::worker_name`]).
//! - Cancellation is cooperative: stopping the worker waits for the running handler to return.
//!
//! [apalis]: https://docs.rs/apalis

mod backend;
mod error;

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use apalis::layers::WorkerBuilderExt;
use apalis_core::error::WorkerError;
use apalis_core::worker::builder::WorkerBuilder;
use futures::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sprig_store::{TaskQueue, TaskRecord};

use backend::QueuePersistence;
pub use backend::{JsonCodec, TaskQueueBackend};
pub use error::JobsError;

/// How often a worker records that it is alive unless told otherwise.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(30);

/// The reason recorded on tasks that were running when their process died.
pub const INTERRUPTED: &str = "interrupted";

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
    /// The queue `queue_name` of `tasks`, with the [`DEFAULT_HEARTBEAT`].
    pub fn new(tasks: Arc<dyn TaskQueue>, queue_name: &str) -> Self {
        Self {
            persistence: QueuePersistence::new(tasks, queue_name),
            heartbeat: DEFAULT_HEARTBEAT,
        }
    }

    /// Sets how often the worker records that it is alive. New work does not wait for it:
    /// pushes wake the worker.
    pub fn with_heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.persistence.queue
    }

    /// The name this process's worker on this queue registers under: the queue, the host, the
    /// process id and the start time, so no two processes (replicas in containers all run as
    /// pid 1) share one.
    pub fn worker_name(&self) -> String {
        format!("{}@{}", self.name(), instance_name())
    }

    /// Stores a job durably and wakes the worker; returns the task id.
    pub async fn push(&self, args: T) -> Result<u64, JobsError> {
        self.persistence.push(serde_json::to_vec(&args)?)
    }

    /// The arguments of task `id`, e.g. of a task returned by [`recover_interrupted`].
    pub fn args(&self, id: u64) -> Result<Option<T>, JobsError> {
        let payload = self.persistence.tasks.payload(id)?;
        Ok(payload.map(|p| serde_json::from_slice(&p)).transpose()?)
    }

    /// The apalis backend of this queue, for building a worker by hand.
    pub fn backend(&self) -> TaskQueueBackend<T> {
        TaskQueueBackend::new(self.persistence.clone(), self.heartbeat)
    }
}

/// Runs one apalis worker on `queue` until `shutdown` resolves, then waits for the running
/// handler (if any) to return. `handler` gets each job's arguments, one job at a time; its
/// `Err(message)` is recorded as the task's error.
///
/// Call [`recover_interrupted`] before, so that tasks a crash left running are settled first.
pub async fn run_worker<T, F, Fut, S>(
    queue: JobQueue<T>,
    handler: F,
    shutdown: S,
) -> Result<(), JobsError>
where
    T: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static,
    F: Fn(T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
    S: Future<Output = ()> + Send + 'static,
{
    // Panics are caught here rather than with apalis' `catch_panic` layer, whose handler type
    // keeps the worker future from being provably `Send` (so it could not be spawned). The call
    // sits inside the caught future so that a panic before its first await is caught too.
    let handler = move |args: T| {
        let handler = handler.clone();
        async move {
            match AssertUnwindSafe(async move { handler(args).await })
                .catch_unwind()
                .await
            {
                Ok(result) => result,
                Err(panic) => Err(panic_message(&*panic)),
            }
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

/// Settles the tasks of `queue_name` that a dead process left running: each is marked failed
/// with the reason [`INTERRUPTED`] (and one more attempt) instead of being run again. Returns
/// them, so the caller can update its own records.
///
/// A task counts as left behind when its worker has been silent for `lease`. With one process
/// per queue, call it at start-up with `Duration::ZERO`: every task running then belongs to a
/// process that no longer exists. With replicas sharing the queue, call it with a lease of a few
/// heartbeats, at start-up and then periodically, so a replica killed mid-job has its job settled
/// by another within about the lease.
pub fn recover_interrupted(
    tasks: &dyn TaskQueue,
    queue_name: &str,
    lease: Duration,
) -> Result<Vec<TaskRecord>, JobsError> {
    let failed = tasks.fail_orphaned(queue_name, lease, INTERRUPTED)?;
    for task in &failed {
        tracing::warn!(
            task = task.id,
            queue = queue_name,
            worker = task.worker.as_deref().unwrap_or("?"),
            "task interrupted: its worker stopped"
        );
    }
    Ok(failed)
}
