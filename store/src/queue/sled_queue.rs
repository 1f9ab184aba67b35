//! [`TaskQueue`] on sled.

use chrono::Utc;
use serde::Serialize;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::{Db, Transactional, Tree};

use super::task::{ClaimedTask, TaskOutcome, TaskQueue, TaskRecord, TaskStatus, WorkerRecord};
use crate::error::{Result, StoreError};

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
        self.heartbeat(queue, worker)?;
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

    fn fail_orphaned(
        &self,
        queue: &str,
        silent_for: std::time::Duration,
        error: &str,
    ) -> Result<Vec<TaskRecord>> {
        let cutoff =
            Utc::now() - chrono::Duration::from_std(silent_for).unwrap_or(chrono::Duration::MAX);
        let workers = self.workers(queue)?;
        let mut failed = Vec::new();
        for task in self.list(queue, TaskStatus::Running)? {
            let alive = task
                .worker
                .as_ref()
                .and_then(|name| workers.iter().find(|w| &w.name == name))
                .is_some_and(|w| w.last_seen >= cutoff);
            if alive {
                continue;
            }
            let outcome = TaskOutcome::Failed(error.to_string());
            let record = self.finish(task.id, task.attempts + 1, outcome)?;
            if record.status == TaskStatus::Failed {
                failed.push(record);
            }
        }
        Ok(failed)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
