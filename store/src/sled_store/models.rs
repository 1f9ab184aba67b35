//! [`ModelStore`] on sled: immutable versions, their weights, the active version and the
//! activation log.

use chrono::Utc;
use sled::Transactional;

use super::encoding::{abort, decode, encode, from_tx, key, next_counter, scan, tx_decode};
use super::{SledStore, ACTIVE_MODEL, NEXT_ACTIVATION, NEXT_MODEL_VERSION};
use crate::error::{Result, StoreError};
use crate::stores::ModelStore;
use crate::types::*;

impl ModelStore for SledStore {
    fn create(&self, version: NewModelVersion) -> Result<ModelVersionRecord> {
        self.reserve.check(version.artifact.len() as u64)?;
        (&self.meta, &self.models, &self.model_blobs)
            .transaction(|(meta, models, blobs)| {
                let number = next_counter(meta, NEXT_MODEL_VERSION)?;
                let mut record = version.record.clone();
                record.version = u32::try_from(number).unwrap_or(u32::MAX);
                models.insert(&key(number), encode(&record))?;
                blobs.insert(&key(number), version.artifact.as_slice())?;
                Ok(record)
            })
            .map_err(from_tx)
    }

    fn get(&self, version: u32) -> Result<Option<ModelVersionRecord>> {
        self.models
            .get(key(u64::from(version)))?
            .map(|v| decode(&v))
            .transpose()
    }

    fn list(&self) -> Result<Vec<ModelVersionRecord>> {
        scan(&self.models)
    }

    fn artifact(&self, version: u32) -> Result<Option<Vec<u8>>> {
        Ok(self
            .model_blobs
            .get(key(u64::from(version)))?
            .map(|v| v.to_vec()))
    }

    fn active(&self) -> Result<Option<u32>> {
        self.meta.get(ACTIVE_MODEL)?.map(|v| decode(&v)).transpose()
    }

    fn activate(&self, version: u32, reason: &str) -> Result<ActivationRecord> {
        self.activate_unless_active(version, reason, false)
            .map(|entry| entry.expect("an unconditional activation always happens"))
    }

    fn activate_first(&self, version: u32, reason: &str) -> Result<Option<ActivationRecord>> {
        self.activate_unless_active(version, reason, true)
    }

    fn history(&self) -> Result<Vec<ActivationRecord>> {
        scan(&self.activations)
    }
}

impl SledStore {
    /// Activates `version` (unless `only_first` and a version is active already).
    fn activate_unless_active(
        &self,
        version: u32,
        reason: &str,
        only_first: bool,
    ) -> Result<Option<ActivationRecord>> {
        (&self.meta, &self.models, &self.activations)
            .transaction(|(meta, models, log)| {
                if models.get(key(u64::from(version)))?.is_none() {
                    return abort(StoreError::NotFound {
                        what: "model version",
                        id: version.to_string(),
                    });
                }
                let from: Option<u32> = match meta.get(ACTIVE_MODEL)? {
                    Some(bytes) => Some(tx_decode(&bytes)?),
                    None => None,
                };
                if only_first && from.is_some() {
                    return Ok(None);
                }
                let sequence = next_counter(meta, NEXT_ACTIVATION)?;
                let entry = ActivationRecord {
                    sequence,
                    at: Utc::now(),
                    from,
                    to: version,
                    reason: reason.into(),
                };
                meta.insert(ACTIVE_MODEL, encode(&version))?;
                log.insert(&key(sequence), encode(&entry))?;
                Ok(Some(entry))
            })
            .map_err(from_tx)
    }
}
