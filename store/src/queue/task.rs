//! The queue's contract: a task's record and outcome, and the [`TaskQueue`] trait.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::types::Timestamp;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting to be claimed.
    Pending,
    /// Claimed by a worker.
    Running,
    /// Finished successfully.
    Done,
    /// Finished with an error.
    Failed,
    /// Aborted (e.g. the handler panicked).
    Killed,
}

/// A task's metadata; its payload is read with [`TaskQueue::payload`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Assigned by the queue, increasing in push order.
    pub id: u64,
    pub queue: String,
    pub status: TaskStatus,
    /// Runs recorded so far (set when an outcome is recorded).
    pub attempts: u32,
    /// Error of the last recorded run, if it did not succeed.
    pub last_error: Option<String>,
    /// The worker that claimed the task last.
    pub worker: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

/// A task handed to a worker by [`TaskQueue::claim`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedTask {
    pub record: TaskRecord,
    pub payload: Vec<u8>,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    Done,
    /// The handler reported an error.
    Failed(String),
    /// The run was aborted.
    Killed(String),
}

/// A worker known to the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerRecord {
    pub name: String,
    pub queue: String,
    pub registered_at: Timestamp,
    pub last_seen: Timestamp,
}

/// Durable named queues of tasks. Every method is atomic.
pub trait TaskQueue: Send + Sync {
    /// Appends a pending task to `queue`.
    fn push(&self, queue: &str, payload: Vec<u8>) -> Result<TaskRecord>;
    /// The payload given to [`push`](Self::push).
    fn payload(&self, id: u64) -> Result<Option<Vec<u8>>>;
    fn get(&self, id: u64) -> Result<Option<TaskRecord>>;
    /// The tasks of `queue` in `status`, oldest first.
    fn list(&self, queue: &str, status: TaskStatus) -> Result<Vec<TaskRecord>>;
    /// Moves up to `limit` of the oldest pending tasks of `queue` to running, owned by `worker`.
    /// A task is handed out by one claim only. Claiming counts as a sign of life of `worker` (as
    /// a heartbeat), so a task is never taken for orphaned the moment it is claimed.
    fn claim(&self, queue: &str, worker: &str, limit: usize) -> Result<Vec<ClaimedTask>>;
    /// Records how the run of a running task ended, with the number of runs so far. A task
    /// that is not running is left as it is (a late or repeated report changes nothing) and
    /// returned unchanged; an unknown id is [`StoreError::NotFound`].
    fn finish(&self, id: u64, attempts: u32, outcome: TaskOutcome) -> Result<TaskRecord>;
    /// Puts running tasks that were claimed but never started back to pending (ids that are
    /// unknown or not running are skipped); returns how many were re-queued.
    fn requeue(&self, ids: &[u64]) -> Result<u64>;
    /// Marks failed, with `error` and one more attempt, every running task of `queue` whose
    /// worker has not been seen (registered or heartbeat) for `silent_for`, in one atomic step
    /// per task, and returns them. With several processes on one queue this is how a dead
    /// process's task is told from a live one's; with one, `silent_for` zero settles them all.
    fn fail_orphaned(
        &self,
        queue: &str,
        silent_for: std::time::Duration,
        error: &str,
    ) -> Result<Vec<TaskRecord>>;
    /// Records that `worker` serves `queue` (again, after a restart).
    fn register_worker(&self, queue: &str, worker: &str) -> Result<WorkerRecord>;
    /// Records that `worker` is alive; registers it if it is unknown.
    fn heartbeat(&self, queue: &str, worker: &str) -> Result<WorkerRecord>;
    /// The workers of `queue`, by name.
    fn workers(&self, queue: &str) -> Result<Vec<WorkerRecord>>;
}
