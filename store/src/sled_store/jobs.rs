//! [`JobStore`] on sled: job records and the index of the active job per kind.

use chrono::Utc;
use sled::Transactional;

use super::encoding::{
    abort, decode, encode, from_tx, id_of, key, next_counter, paginate, scan, tx_decode,
};
use super::{SledStore, NEXT_JOB_ID};
use crate::error::{Result, StoreError};
use crate::stores::JobStore;
use crate::types::*;

impl JobStore for SledStore {
    fn create_exclusive(&self, kind: &str, params: serde_json::Value) -> Result<JobRecord> {
        (&self.meta, &self.jobs, &self.active_jobs)
            .transaction(|(meta, jobs, active)| {
                if let Some(existing) = active.get(kind.as_bytes())? {
                    let job: JobRecord = match jobs.get(&existing)? {
                        Some(bytes) => tx_decode(&bytes)?,
                        None => {
                            return abort(StoreError::Corrupt("active job index is stale".into()))
                        }
                    };
                    if !job.state.is_terminal() {
                        return abort(StoreError::Conflict {
                            kind: kind.into(),
                            job_id: job.id,
                        });
                    }
                }
                let id = next_counter(meta, NEXT_JOB_ID)?;
                let job = JobRecord::new(id, kind, params.clone(), Utc::now());
                jobs.insert(&key(id), encode(&job))?;
                active.insert(kind.as_bytes(), &key(id))?;
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

    fn update(&self, id: u64, change: &mut dyn FnMut(&mut JobRecord)) -> Result<JobRecord> {
        // sled may retry the closure on conflict, so the change is applied to a fresh copy each time.
        let change = std::cell::RefCell::new(change);
        (&self.jobs, &self.active_jobs)
            .transaction(|(jobs, active)| {
                let Some(bytes) = jobs.get(key(id))? else {
                    return abort(StoreError::NotFound {
                        what: "job",
                        id: id.to_string(),
                    });
                };
                let mut job: JobRecord = tx_decode(&bytes)?;
                (change.borrow_mut())(&mut job);
                jobs.insert(&key(id), encode(&job))?;
                if job.state.is_terminal()
                    && active.get(job.kind.as_bytes())?.as_deref() == Some(&key(id)[..])
                {
                    active.remove(job.kind.as_bytes())?;
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
}
