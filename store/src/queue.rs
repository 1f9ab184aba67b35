//! The durable task queue behind sprig's background jobs (apalis runs on top of it, see the
//! `sprig-jobs` crate). The trait knows nothing about apalis: payloads are bytes and ids are
//! `u64`, so another engine can implement it and [`conformance_tests`] checks that it behaves.
//!
//! A task's life: `pending` → `running` (claimed by a worker) → `done` | `failed` | `killed`.
//! A claimed task may also go back to `pending` when its worker gives it up before starting it.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::{Db, Transactional, Tree};

use crate::{Result, StoreError, Timestamp};

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
    /// A task is handed out by one claim only.
    fn claim(&self, queue: &str, worker: &str, limit: usize) -> Result<Vec<ClaimedTask>>;
    /// Records how the run of a running task ended, with the number of runs so far. A task
    /// that is not running is left as it is (a late or repeated report changes nothing) and
    /// returned unchanged; an unknown id is [`StoreError::NotFound`].
    fn finish(&self, id: u64, attempts: u32, outcome: TaskOutcome) -> Result<TaskRecord>;
    /// Puts running tasks that were claimed but never started back to pending (ids that are
    /// unknown or not running are skipped); returns how many were re-queued.
    fn requeue(&self, ids: &[u64]) -> Result<u64>;
    /// Records that `worker` serves `queue` (again, after a restart).
    fn register_worker(&self, queue: &str, worker: &str) -> Result<WorkerRecord>;
    /// Records that `worker` is alive; registers it if it is unknown.
    fn heartbeat(&self, queue: &str, worker: &str) -> Result<WorkerRecord>;
    /// The workers of `queue`, by name.
    fn workers(&self, queue: &str) -> Result<Vec<WorkerRecord>>;
}

const NEXT_TASK_ID: &[u8] = b"next_task_id";

/// [`TaskQueue`] on sled. Trees: `tasks` (id → record), `task_payloads` (id → bytes),
/// `task_pending` (id → queue name, the pending index in id order), `task_workers`
/// (queue NUL worker → record) and `task_meta` (the id counter).
#[derive(Clone)]
pub struct SledTaskQueue {
    tasks: Tree,
    payloads: Tree,
    pending: Tree,
    workers: Tree,
    meta: Tree,
}

type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

impl SledTaskQueue {
    /// Opens the queue's trees in `db`.
    pub fn open(db: &Db) -> Result<Self> {
        Ok(Self {
            tasks: db.open_tree("tasks")?,
            payloads: db.open_tree("task_payloads")?,
            pending: db.open_tree("task_pending")?,
            workers: db.open_tree("task_workers")?,
            meta: db.open_tree("task_meta")?,
        })
    }

    fn write_worker(&self, queue: &str, worker: &str, registering: bool) -> Result<WorkerRecord> {
        let key = worker_key(queue, worker);
        let now = Utc::now();
        let previous: Option<WorkerRecord> =
            self.workers.get(&key)?.map(|v| decode(&v)).transpose()?;
        let record = WorkerRecord {
            name: worker.to_string(),
            queue: queue.to_string(),
            registered_at: match previous {
                Some(previous) if !registering => previous.registered_at,
                _ => now,
            },
            last_seen: now,
        };
        self.workers.insert(key, encode(&record)?)?;
        Ok(record)
    }

    /// Claims the given pending candidates; those claimed meanwhile by someone else are skipped.
    fn claim_candidates(&self, candidates: &[u64], worker: &str) -> Result<Vec<ClaimedTask>> {
        (&self.tasks, &self.payloads, &self.pending)
            .transaction(|(tasks, payloads, pending)| {
                let mut claimed = Vec::new();
                for &id in candidates {
                    if pending.remove(&key(id))?.is_none() {
                        continue;
                    }
                    let mut record = tx_record(tasks, id)?;
                    record.status = TaskStatus::Running;
                    record.worker = Some(worker.to_string());
                    record.started_at = Some(Utc::now());
                    tasks.insert(&key(id), tx_encode(&record)?)?;
                    let payload = payloads
                        .get(key(id))?
                        .ok_or_else(|| corrupt(id, "payload"))?;
                    claimed.push(ClaimedTask {
                        record,
                        payload: payload.to_vec(),
                    });
                }
                if !claimed.is_empty() {
                    // A claim must survive a crash, or a task that already ran would run again.
                    tasks.flush();
                }
                Ok(claimed)
            })
            .map_err(from_tx)
    }
}

impl TaskQueue for SledTaskQueue {
    fn push(&self, queue: &str, payload: Vec<u8>) -> Result<TaskRecord> {
        (&self.meta, &self.tasks, &self.payloads, &self.pending)
            .transaction(|(meta, tasks, payloads, pending)| {
                let id = next_id(meta)?;
                let record = TaskRecord {
                    id,
                    queue: queue.to_string(),
                    status: TaskStatus::Pending,
                    attempts: 0,
                    last_error: None,
                    worker: None,
                    created_at: Utc::now(),
                    started_at: None,
                    finished_at: None,
                };
                tasks.insert(&key(id), tx_encode(&record)?)?;
                payloads.insert(&key(id), payload.as_slice())?;
                pending.insert(&key(id), queue.as_bytes())?;
                tasks.flush();
                Ok(record)
            })
            .map_err(from_tx)
    }

    fn payload(&self, id: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.payloads.get(key(id))?.map(|v| v.to_vec()))
    }

    fn get(&self, id: u64) -> Result<Option<TaskRecord>> {
        self.tasks.get(key(id))?.map(|v| decode(&v)).transpose()
    }

    fn list(&self, queue: &str, status: TaskStatus) -> Result<Vec<TaskRecord>> {
        let mut found = Vec::new();
        for value in self.tasks.iter().values() {
            let record: TaskRecord = decode(&value?)?;
            if record.queue == queue && record.status == status {
                found.push(record);
            }
        }
        Ok(found)
    }

    fn claim(&self, queue: &str, worker: &str, limit: usize) -> Result<Vec<ClaimedTask>> {
        // sled transactions cannot iterate, so candidates are read from the index first and
        // re-checked inside the transaction; retry if another claim took them all meanwhile.
        if limit == 0 {
            return Ok(Vec::new());
        }
        loop {
            let mut candidates = Vec::new();
            for entry in self.pending.iter() {
                let (id, name) = entry?;
                if name.as_ref() == queue.as_bytes() {
                    candidates.push(id_of(&id)?);
                    if candidates.len() == limit {
                        break;
                    }
                }
            }
            if candidates.is_empty() {
                return Ok(Vec::new());
            }
            let claimed = self.claim_candidates(&candidates, worker)?;
            if !claimed.is_empty() {
                return Ok(claimed);
            }
        }
    }

    fn finish(&self, id: u64, attempts: u32, outcome: TaskOutcome) -> Result<TaskRecord> {
        self.tasks
            .transaction(|tasks| {
                let mut record = match tasks.get(key(id))? {
                    Some(bytes) => tx_decode::<TaskRecord>(&bytes)?,
                    None => {
                        return Err(ConflictableTransactionError::Abort(StoreError::NotFound {
                            what: "task",
                            id: id.to_string(),
                        }))
                    }
                };
                if record.status != TaskStatus::Running {
                    return Ok(record);
                }
                (record.status, record.last_error) = match &outcome {
                    TaskOutcome::Done => (TaskStatus::Done, None),
                    TaskOutcome::Failed(error) => (TaskStatus::Failed, Some(error.clone())),
                    TaskOutcome::Killed(error) => (TaskStatus::Killed, Some(error.clone())),
                };
                record.attempts = attempts;
                record.finished_at = Some(Utc::now());
                tasks.insert(&key(id), tx_encode(&record)?)?;
                tasks.flush();
                Ok(record)
            })
            .map_err(from_tx)
    }

    fn requeue(&self, ids: &[u64]) -> Result<u64> {
        (&self.tasks, &self.pending)
            .transaction(|(tasks, pending)| {
                let mut requeued = 0;
                for &id in ids {
                    let Some(bytes) = tasks.get(key(id))? else {
                        continue;
                    };
                    let mut record: TaskRecord = tx_decode(&bytes)?;
                    if record.status != TaskStatus::Running {
                        continue;
                    }
                    record.status = TaskStatus::Pending;
                    record.worker = None;
                    record.started_at = None;
                    tasks.insert(&key(id), tx_encode(&record)?)?;
                    pending.insert(&key(id), record.queue.as_bytes())?;
                    requeued += 1;
                }
                if requeued > 0 {
                    tasks.flush();
                }
                Ok(requeued)
            })
            .map_err(from_tx)
    }

    fn register_worker(&self, queue: &str, worker: &str) -> Result<WorkerRecord> {
        self.write_worker(queue, worker, true)
    }

    fn heartbeat(&self, queue: &str, worker: &str) -> Result<WorkerRecord> {
        self.write_worker(queue, worker, false)
    }

    fn workers(&self, queue: &str) -> Result<Vec<WorkerRecord>> {
        let mut prefix = queue.as_bytes().to_vec();
        prefix.push(0);
        let mut found = Vec::new();
        for value in self.workers.scan_prefix(prefix).values() {
            let record: WorkerRecord = decode(&value?)?;
            // A queue name containing NUL could share the prefix; the record says for sure.
            if record.queue == queue {
                found.push(record);
            }
        }
        Ok(found)
    }
}

fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn id_of(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StoreError::Corrupt("task key is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

fn worker_key(queue: &str, worker: &str) -> Vec<u8> {
    [queue.as_bytes(), &[0], worker.as_bytes()].concat()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(serde_json::from_slice(bytes)?)
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(value)?)
}

fn tx_decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> TxResult<T> {
    serde_json::from_slice(bytes).map_err(|e| ConflictableTransactionError::Abort(e.into()))
}

fn tx_encode<T: Serialize>(value: &T) -> TxResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ConflictableTransactionError::Abort(e.into()))
}

fn tx_record(tasks: &TransactionalTree, id: u64) -> TxResult<TaskRecord> {
    let bytes = tasks.get(key(id))?.ok_or_else(|| corrupt(id, "record"))?;
    tx_decode(&bytes)
}

/// An index entry whose task is missing.
fn corrupt(id: u64, what: &str) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(StoreError::Corrupt(format!("task {id} has no {what}")))
}

/// Reads and increments the id counter; ids start at 1.
fn next_id(meta: &TransactionalTree) -> std::result::Result<u64, UnabortableTransactionError> {
    let next = match meta.get(NEXT_TASK_ID)? {
        Some(bytes) => u64::from_be_bytes(bytes.as_ref().try_into().unwrap_or([0; 8])).max(1),
        None => 1,
    };
    meta.insert(NEXT_TASK_ID, &(next + 1).to_be_bytes())?;
    Ok(next)
}

fn from_tx(error: TransactionError<StoreError>) -> StoreError {
    match error {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

/// The behaviour every [`TaskQueue`] must show, written against the trait only. Each case uses
/// its own queue names, so they may share one database; [`queue_conformance`] runs them all.
///
/// [`queue_conformance`]: conformance_tests::queue_conformance
pub mod conformance_tests {
    use super::*;

    /// Runs every case below.
    pub fn queue_conformance(queue: &dyn TaskQueue) {
        push_get_and_payload(queue);
        claim_takes_oldest_pending_once(queue);
        finish_records_outcome(queue);
        requeue_returns_claimed_tasks(queue);
        list_by_status(queue);
        workers_register_and_heartbeat(queue);
    }

    /// Pushed tasks are pending, with increasing ids and their payload kept as given.
    pub fn push_get_and_payload(queue: &dyn TaskQueue) {
        let first = queue.push("c-push", b"{\"a\":1}".to_vec()).unwrap();
        let second = queue.push("c-push", vec![0, 255, 7]).unwrap();
        assert!(second.id > first.id);
        assert_eq!(first.queue, "c-push");
        assert_eq!(first.status, TaskStatus::Pending);
        assert_eq!(first.attempts, 0);
        assert_eq!(
            (first.last_error.clone(), first.worker.clone()),
            (None, None)
        );
        assert_eq!(queue.get(first.id).unwrap(), Some(first.clone()));
        assert_eq!(
            queue.payload(first.id).unwrap(),
            Some(b"{\"a\":1}".to_vec())
        );
        assert_eq!(queue.payload(second.id).unwrap(), Some(vec![0, 255, 7]));
        assert_eq!(queue.get(u64::MAX).unwrap(), None);
        assert_eq!(queue.payload(u64::MAX).unwrap(), None);
    }

    /// Claims hand out the oldest pending tasks of the queue, each once, up to the limit.
    pub fn claim_takes_oldest_pending_once(queue: &dyn TaskQueue) {
        let ids: Vec<u64> = (0..3u8)
            .map(|n| queue.push("c-claim", vec![n]).unwrap().id)
            .collect();
        let other = queue.push("c-claim-other", vec![9]).unwrap();

        let first = queue.claim("c-claim", "w1", 2).unwrap();
        assert_eq!(
            first.iter().map(|t| t.record.id).collect::<Vec<_>>(),
            ids[..2]
        );
        assert_eq!(first[0].payload, vec![0]);
        let record = &first[0].record;
        assert_eq!(record.status, TaskStatus::Running);
        assert_eq!(record.worker.as_deref(), Some("w1"));
        assert!(record.started_at.is_some());
        assert_eq!(queue.get(ids[0]).unwrap().as_ref(), Some(record));

        let second = queue.claim("c-claim", "w2", 5).unwrap();
        assert_eq!(
            second.iter().map(|t| t.record.id).collect::<Vec<_>>(),
            ids[2..]
        );
        assert!(queue.claim("c-claim", "w1", 5).unwrap().is_empty());
        assert_eq!(
            queue.get(other.id).unwrap().unwrap().status,
            TaskStatus::Pending
        );
        assert!(queue.claim("c-claim-empty", "w1", 1).unwrap().is_empty());
    }

    /// Outcomes are recorded on running tasks only; unknown ids are not found.
    pub fn finish_records_outcome(queue: &dyn TaskQueue) {
        for _ in 0..3 {
            queue.push("c-finish", Vec::new()).unwrap();
        }
        let claimed = queue.claim("c-finish", "w", 3).unwrap();
        let [done, failed, killed] = [0, 1, 2].map(|i| claimed[i].record.id);

        let record = queue.finish(done, 1, TaskOutcome::Done).unwrap();
        assert_eq!(
            (record.status, record.attempts, record.last_error),
            (TaskStatus::Done, 1, None)
        );
        assert!(record.finished_at.is_some());
        let record = queue
            .finish(failed, 2, TaskOutcome::Failed("boom".into()))
            .unwrap();
        assert_eq!(record.status, TaskStatus::Failed);
        assert_eq!(
            (record.attempts, record.last_error.as_deref()),
            (2, Some("boom"))
        );
        let record = queue
            .finish(killed, 1, TaskOutcome::Killed("panic".into()))
            .unwrap();
        assert_eq!(
            (record.status, record.last_error.as_deref()),
            (TaskStatus::Killed, Some("panic"))
        );
        assert_eq!(queue.get(killed).unwrap(), Some(record));

        // A repeated report does not overwrite the first.
        let again = queue
            .finish(done, 5, TaskOutcome::Failed("late".into()))
            .unwrap();
        assert_eq!((again.status, again.attempts), (TaskStatus::Done, 1));
        // Neither does a report for a task that never ran.
        let pending = queue.push("c-finish", Vec::new()).unwrap();
        let unchanged = queue.finish(pending.id, 1, TaskOutcome::Done).unwrap();
        assert_eq!(unchanged, pending);
        assert!(matches!(
            queue.finish(u64::MAX, 1, TaskOutcome::Done),
            Err(StoreError::NotFound { what: "task", .. })
        ));
    }

    /// Re-queued running tasks are pending again and claimed before younger tasks.
    pub fn requeue_returns_claimed_tasks(queue: &dyn TaskQueue) {
        let old = queue.push("c-requeue", vec![1]).unwrap();
        let young = queue.push("c-requeue", vec![2]).unwrap();
        let claimed = queue.claim("c-requeue", "w", 1).unwrap();
        assert_eq!(claimed[0].record.id, old.id);

        assert_eq!(queue.requeue(&[old.id, young.id, u64::MAX]).unwrap(), 1);
        let record = queue.get(old.id).unwrap().unwrap();
        assert_eq!(
            (record.status, record.worker, record.started_at),
            (TaskStatus::Pending, None, None)
        );

        let again = queue.claim("c-requeue", "w", 1).unwrap();
        assert_eq!(again[0].record.id, old.id);
        queue.finish(old.id, 1, TaskOutcome::Done).unwrap();
        assert_eq!(queue.requeue(&[old.id]).unwrap(), 0);
        assert_eq!(queue.get(old.id).unwrap().unwrap().status, TaskStatus::Done);
    }

    /// Listing filters by queue and status and keeps push order.
    pub fn list_by_status(queue: &dyn TaskQueue) {
        let ids: Vec<u64> = (0..4)
            .map(|_| queue.push("c-list", Vec::new()).unwrap().id)
            .collect();
        queue.push("c-list-other", Vec::new()).unwrap();
        queue.claim("c-list", "w", 2).unwrap();
        queue
            .finish(ids[0], 1, TaskOutcome::Failed("x".into()))
            .unwrap();

        let ids_in = |status| -> Vec<u64> {
            queue
                .list("c-list", status)
                .unwrap()
                .iter()
                .map(|t| t.id)
                .collect()
        };
        assert_eq!(ids_in(TaskStatus::Pending), ids[2..]);
        assert_eq!(ids_in(TaskStatus::Running), ids[1..2]);
        assert_eq!(ids_in(TaskStatus::Failed), ids[..1]);
        assert!(ids_in(TaskStatus::Done).is_empty());
    }

    /// Workers are listed per queue; heartbeats move `last_seen` and keep `registered_at`.
    pub fn workers_register_and_heartbeat(queue: &dyn TaskQueue) {
        let registered = queue.register_worker("c-workers", "w1").unwrap();
        queue.register_worker("c-workers-other", "w1").unwrap();
        assert_eq!(registered.last_seen, registered.registered_at);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let beat = queue.heartbeat("c-workers", "w1").unwrap();
        assert_eq!(beat.registered_at, registered.registered_at);
        assert!(beat.last_seen > registered.last_seen);
        // A heartbeat from an unknown worker registers it.
        queue.heartbeat("c-workers", "w2").unwrap();

        let workers = queue.workers("c-workers").unwrap();
        let names: Vec<&str> = workers.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["w1", "w2"]);
        assert_eq!(workers[0], beat);
        assert_eq!(queue.workers("c-workers-other").unwrap().len(), 1);
        assert!(queue.workers("c-workers-none").unwrap().is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::conformance_tests::*;
    use super::*;

    fn with_queue(test: impl FnOnce(&dyn TaskQueue)) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        test(&SledTaskQueue::open(&db).unwrap());
    }

    #[test]
    fn sled_push_get_and_payload() {
        with_queue(push_get_and_payload);
    }

    #[test]
    fn sled_claim_takes_oldest_pending_once() {
        with_queue(claim_takes_oldest_pending_once);
    }

    #[test]
    fn sled_finish_records_outcome() {
        with_queue(finish_records_outcome);
    }

    #[test]
    fn sled_requeue_returns_claimed_tasks() {
        with_queue(requeue_returns_claimed_tasks);
    }

    #[test]
    fn sled_list_by_status() {
        with_queue(list_by_status);
    }

    #[test]
    fn sled_workers_register_and_heartbeat() {
        with_queue(workers_register_and_heartbeat);
    }

    #[test]
    fn sled_all_cases_share_one_database() {
        with_queue(queue_conformance);
    }

    #[test]
    fn sled_tasks_and_ids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let open = || sled::Config::new().path(dir.path()).open().unwrap();
        let (pending, running) = {
            let db = open();
            let queue = SledTaskQueue::open(&db).unwrap();
            let running = queue.push("q", vec![1]).unwrap();
            let pending = queue.push("q", vec![2]).unwrap();
            queue.claim("q", "w", 1).unwrap();
            (pending, running)
        };
        let db = open();
        let queue = SledTaskQueue::open(&db).unwrap();
        assert_eq!(
            queue.get(running.id).unwrap().unwrap().status,
            TaskStatus::Running
        );
        let claimed = queue.claim("q", "w", 5).unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(
            (claimed[0].record.id, claimed[0].payload.clone()),
            (pending.id, vec![2])
        );
        assert!(queue.push("q", Vec::new()).unwrap().id > pending.id);
    }

    #[test]
    fn concurrent_claims_never_share_a_task() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let queue = SledTaskQueue::open(&db).unwrap();
        for _ in 0..40 {
            queue.push("q", Vec::new()).unwrap();
        }
        let mut ids: Vec<u64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|w| {
                    let queue = &queue;
                    scope.spawn(move || {
                        let mut mine = Vec::new();
                        loop {
                            let claimed = queue.claim("q", &format!("w{w}"), 3).unwrap();
                            if claimed.is_empty() {
                                return mine;
                            }
                            mine.extend(claimed.iter().map(|t| t.record.id));
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        ids.sort_unstable();
        assert_eq!(ids, (1..=40).collect::<Vec<_>>());
    }
}
