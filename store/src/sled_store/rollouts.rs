//! [`RolloutStore`] on sled: records under their id, the running one's id in `meta`, every
//! change one transaction over both.

use chrono::Utc;
use sled::Transactional;

use super::encoding::{abort, decode, encode, from_tx, key, next_counter, scan, tx_decode};
use super::{SledStore, NEXT_ROLLOUT, RUNNING_ROLLOUT};
use crate::error::{Result, StoreError};
use crate::rollout::*;
use crate::stores::RolloutStore;

impl RolloutStore for SledStore {
    fn start(&self, new: NewRollout) -> Result<RolloutRecord> {
        (&self.meta, &self.rollouts)
            .transaction(|(meta, rollouts)| {
                if let Some(id) = meta.get(RUNNING_ROLLOUT)? {
                    let running: RolloutRecord = match rollouts.get(id)? {
                        Some(bytes) => tx_decode(&bytes)?,
                        None => {
                            return abort(StoreError::Corrupt("running rollout missing".into()))
                        }
                    };
                    return abort(StoreError::RolloutRunning {
                        id: running.id,
                        version: running.version,
                    });
                }
                let id = next_counter(meta, NEXT_ROLLOUT)?;
                let record = RolloutRecord::from_new(id, new.clone(), Utc::now());
                rollouts.insert(&key(id), encode(&record))?;
                meta.insert(RUNNING_ROLLOUT, &key(id))?;
                Ok(record)
            })
            .map_err(from_tx)
    }

    fn running(&self) -> Result<Option<RolloutRecord>> {
        match self.meta.get(RUNNING_ROLLOUT)? {
            Some(id) => self.rollouts.get(id)?.map(|v| decode(&v)).transpose(),
            None => Ok(None),
        }
    }

    fn get(&self, id: u64) -> Result<Option<RolloutRecord>> {
        self.rollouts.get(key(id))?.map(|v| decode(&v)).transpose()
    }

    fn list(&self) -> Result<Vec<RolloutRecord>> {
        let mut records: Vec<RolloutRecord> = scan(&self.rollouts)?;
        records.reverse();
        Ok(records)
    }

    fn add_figures(&self, id: u64, figures: &RolloutFigures) -> Result<RolloutRecord> {
        self.rollouts
            .transaction(|rollouts| {
                let Some(bytes) = rollouts.get(key(id))? else {
                    return abort(StoreError::NotFound {
                        what: "rollout",
                        id: id.to_string(),
                    });
                };
                let mut record: RolloutRecord = tx_decode(&bytes)?;
                record.figures.merge(figures);
                rollouts.insert(&key(id), encode(&record))?;
                Ok(record)
            })
            .map_err(from_tx)
    }

    fn finish(
        &self,
        id: u64,
        state: RolloutState,
        verdict: Verdict,
    ) -> Result<Option<RolloutRecord>> {
        (&self.meta, &self.rollouts)
            .transaction(|(meta, rollouts)| {
                if meta.get(RUNNING_ROLLOUT)?.as_deref() != Some(&key(id)[..]) {
                    return Ok(None);
                }
                let Some(bytes) = rollouts.get(key(id))? else {
                    return Ok(None);
                };
                let mut record: RolloutRecord = tx_decode(&bytes)?;
                record.end(state, verdict.clone());
                rollouts.insert(&key(id), encode(&record))?;
                meta.remove(RUNNING_ROLLOUT)?;
                Ok(Some(record))
            })
            .map_err(from_tx)
    }
}
