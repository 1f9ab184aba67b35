//! [`JobStore`] on sled: job records, the queue of queued jobs in id order, the exclusive job
//! per kind, and the workers serving each kind.

use chrono::Utc;
use sled::Transactional;

use super::encoding::{
    abort, decode, encode, from_tx, id_of, key, next_counter, paginate, scan, tx_decode,
};
use super::{SledStore, NEXT_JOB_ID};
use crate::error::{Result, StoreError};
use crate::stores::JobStore;
use crate::types::*;

impl SledStore {
    fn write_worker(&self, kind: &str, worker: &str, registering: bool) -> Result<WorkerRecord> {
        let key = worker_key(kind, worker);
        let now = Utc::now();
        let previous: Option<WorkerRecord> = self
            .job_workers
            .get(&key)?
            .map(|v| decode(&v))
            .transpose()?;
        let record = WorkerRecord {
            name: worker.to_string(),
            queue: kind.to_string(),
            registered_at: match previous {
                Some(previous) if !registering => previous.registered_at,
                _ => now,
            },
            last_seen: now,
        };
        self.job_workers.insert(key, encode(&record))?;
        Ok(record)
    }
}

impl JobStore for SledStore {
    fn create(&self, kind: &str, params: serde_json::Value, exclusive: bool) -> Result<JobRecord> {
        (&self.meta, &self.jobs, &self.active_jobs, &self.job_queue)
            .transaction(|(meta, jobs, active, queue)| {
                if exclusive {
                    if let Some(existing) = active.get(kind.as_bytes())? {
                        let job: JobRecord = match jobs.get(&existing)? {
                            Some(bytes) => tx_decode(&bytes)?,
                            None => {
                                return abort(StoreError::Corrupt(
                                    "active job index is stale".into(),
                                ))
                            }
                        };
                        if !job.state.is_terminal() {
                            return abort(StoreError::Conflict {
                                kind: kind.into(),
                                job_id: job.id,
                            });
                        }
                    }
                }
                let id = next_counter(meta, NEXT_JOB_ID)?;
                let job = JobRecord::new(id, kind, params.clone(), Utc::now());
                jobs.insert(&key(id), encode(&job))?;
                queue.insert(&key(id), kind.as_bytes())?;
                if exclusive {
                    active.insert(kind.as_bytes(), &key(id))?;
                }
                // A queued job must survive a crash: the caller is told it will run.
                jobs.flush();
                Ok(job)
            })
            .map_err(from_tx)
    }

    fn get(&self, id: u64) -> Result<Option<JobRecord>> {
        self.jobs.get(key(id))?.map(|v| decode(&v)).transpose()
    }

    fn list(&self, page: PageRequest) -> Result<Page<JobRecord>> {
        paginate(self.jobs.iter().rev().map(|entry| decode(&entry?.1)), page)
    }

    fn list_in(&self, kind: &str, state: JobState, limit: usize) -> Result<Vec<JobRecord>> {
        let mut found = Vec::new();
        if state == JobState::Queued {
            // The queue index holds exactly the queued jobs, in id order.
            for entry in self.job_queue.iter() {
                let (id, queued_kind) = entry?;
                if found.len() == limit {
                    break;
                }
                if queued_kind.as_ref() == kind.as_bytes() {
                    if let Some(job) = JobStore::get(self, id_of(&id)?)? {
                        found.push(job);
                    }
                }
            }
            return Ok(found);
        }
        for job in self.jobs.iter().values() {
            let job: JobRecord = decode(&job?)?;
            if found.len() == limit {
                break;
            }
            if job.kind == kind && job.state == state {
                found.push(job);
            }
        }
        Ok(found)
    }

    fn update(&self, id: u64, change: &mut dyn FnMut(&mut JobRecord)) -> Result<JobRecord> {
        // sled may retry the closure on conflict, so the change is applied to a fresh copy each time.
        let change = std::cell::RefCell::new(change);
        (&self.jobs, &self.active_jobs, &self.job_queue)
            .transaction(|(jobs, active, queue)| {
                let Some(bytes) = jobs.get(key(id))? else {
                    return abort(StoreError::NotFound {
                        what: "job",
                        id: id.to_string(),
                    });
                };
                let mut job: JobRecord = tx_decode(&bytes)?;
                let before = job.state;
                (change.borrow_mut())(&mut job);
                jobs.insert(&key(id), encode(&job))?;
                if job.state.is_terminal()
                    && active.get(job.kind.as_bytes())?.as_deref() == Some(&key(id)[..])
                {
                    active.remove(job.kind.as_bytes())?;
                }
                if job.state != before {
                    if job.state == JobState::Queued {
                        queue.insert(&key(id), job.kind.as_bytes())?;
                    } else {
                        queue.remove(&key(id))?;
                    }
                    // A claim must survive a crash, or a job that already ran would run again;
                    // an end state must not be lost once reported.
                    jobs.flush();
                }
                Ok(job)
            })
            .map_err(from_tx)
    }

    fn active(&self, kind: &str) -> Result<Option<JobRecord>> {
        match self.active_jobs.get(kind.as_bytes())? {
            Some(id) => Ok(JobStore::get(self, id_of(&id)?)?.filter(|j| !j.state.is_terminal())),
            None => Ok(None),
        }
    }

    fn count_by_state(&self) -> Result<Vec<(JobState, u64)>> {
        let mut counts: Vec<(JobState, u64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
        for job in scan::<JobRecord>(&self.jobs)? {
            if let Some(entry) = counts.iter_mut().find(|(s, _)| *s == job.state) {
                entry.1 += 1;
            }
        }
        Ok(counts)
    }

    fn register_worker(&self, kind: &str, worker: &str) -> Result<WorkerRecord> {
        self.write_worker(kind, worker, true)
    }

    fn heartbeat(&self, kind: &str, worker: &str) -> Result<WorkerRecord> {
        self.write_worker(kind, worker, false)
    }

    fn workers(&self, kind: &str) -> Result<Vec<WorkerRecord>> {
        let mut prefix = kind.as_bytes().to_vec();
        prefix.push(0);
        let mut found = Vec::new();
        for value in self.job_workers.scan_prefix(prefix).values() {
            let record: WorkerRecord = decode(&value?)?;
            // A kind containing NUL could share the prefix; the record says for sure.
            if record.queue == kind {
                found.push(record);
            }
        }
        Ok(found)
    }
}

fn worker_key(kind: &str, worker: &str) -> Vec<u8> {
    [kind.as_bytes(), &[0], worker.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sled_jobs_their_queue_and_ids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (queued, running) = {
            let store = SledStore::open(dir.path()).unwrap();
            let running = store.create("q", json!(1), false).unwrap();
            let queued = store.create("q", json!(2), false).unwrap();
            store.claim("q", "w", 1).unwrap();
            (queued, running)
        };
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(
            JobStore::get(&store, running.id).unwrap().unwrap().state,
            JobState::Running
        );
        let claimed = store.claim("q", "w", 5).unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!((claimed[0].id, &claimed[0].params), (queued.id, &json!(2)));
        assert!(store.create("q", json!(3), false).unwrap().id > queued.id);
    }

    /// A data dir from before jobs and queue were one record: its queued job still runs, its
    /// old queue trees are gone.
    #[test]
    fn sled_queued_jobs_of_the_old_task_queue_layout_are_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let queued = {
            let store = SledStore::open(dir.path()).unwrap();
            let queued = store.create("retrain", json!({}), true).unwrap();
            // What the old layout had: no queue index entry, a task tree beside the job.
            store.job_queue.clear().unwrap();
            store
                .db
                .open_tree("tasks")
                .unwrap()
                .insert(b"x", b"y")
                .unwrap();
            store.db.flush().unwrap();
            queued
        };
        let store = SledStore::open(dir.path()).unwrap();
        assert!(!store.db.tree_names().iter().any(|n| n.as_ref() == b"tasks"));
        let claimed = store.claim("retrain", "w", 1).unwrap();
        assert_eq!(
            claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
            [queued.id]
        );
    }
}
