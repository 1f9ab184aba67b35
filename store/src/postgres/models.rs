//! [`ModelStore`] on PostgreSQL: versions numbered max + 1 under a lock (never reused, no gaps),
//! weights in `bytea`, and activation as one transaction that also notifies every replica.

use sqlx::Row;

use super::listener::{payload, CHANGES_CHANNEL};
use super::{from_json, to_json, PgStore};
use crate::changes::Change;
use crate::error::{Result, StoreError};
use crate::stores::ModelStore;
use crate::types::*;

/// Serialises version creation across replicas (numbers are max + 1).
const VERSION_LOCK: i64 = 0x5370_7269_6700_0003;

/// Serialises activations across replicas, so each log entry's `from` is the version it replaced.
const ACTIVATION_LOCK: i64 = 0x5370_7269_6700_0002;

impl ModelStore for PgStore {
    fn create(&self, version: NewModelVersion) -> Result<ModelVersionRecord> {
        let pool = self.pool();
        self.run(async move {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(VERSION_LOCK)
                .execute(&mut *tx)
                .await?;
            let number: i32 =
                sqlx::query_scalar("SELECT coalesce(max(version), 0) + 1 FROM model_versions")
                    .fetch_one(&mut *tx)
                    .await?;
            let mut record = version.record;
            record.version = number as u32;
            sqlx::query(
                "INSERT INTO model_versions (version, record, artifact) VALUES ($1, $2, $3)",
            )
            .bind(number)
            .bind(to_json(&record)?)
            .bind(&version.artifact)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(record)
        })
    }

    fn get(&self, version: u32) -> Result<Option<ModelVersionRecord>> {
        let pool = self.pool();
        self.run(async move {
            let record: Option<serde_json::Value> =
                sqlx::query_scalar("SELECT record FROM model_versions WHERE version = $1")
                    .bind(version as i32)
                    .fetch_optional(&pool)
                    .await?;
            record.map(from_json).transpose()
        })
    }

    fn list(&self) -> Result<Vec<ModelVersionRecord>> {
        let pool = self.pool();
        self.run(async move {
            let records: Vec<serde_json::Value> =
                sqlx::query_scalar("SELECT record FROM model_versions ORDER BY version")
                    .fetch_all(&pool)
                    .await?;
            records.into_iter().map(from_json).collect()
        })
    }

    fn artifact(&self, version: u32) -> Result<Option<Vec<u8>>> {
        let pool = self.pool();
        self.run(async move {
            Ok(
                sqlx::query_scalar("SELECT artifact FROM model_versions WHERE version = $1")
                    .bind(version as i32)
                    .fetch_optional(&pool)
                    .await?,
            )
        })
    }

    fn active(&self) -> Result<Option<u32>> {
        let pool = self.pool();
        self.run(async move {
            let version: Option<i32> = sqlx::query_scalar("SELECT version FROM active_model")
                .fetch_optional(&pool)
                .await?;
            Ok(version.map(|v| v as u32))
        })
    }

    fn activate(&self, version: u32, reason: &str) -> Result<ActivationRecord> {
        self.activate_unless_active(version, reason, false)
            .map(|entry| entry.expect("an unconditional activation always happens"))
    }

    fn activate_first(&self, version: u32, reason: &str) -> Result<Option<ActivationRecord>> {
        self.activate_unless_active(version, reason, true)
    }

    fn history(&self) -> Result<Vec<ActivationRecord>> {
        let pool = self.pool();
        self.run(async move {
            let rows = sqlx::query("SELECT sequence, record FROM activations ORDER BY sequence")
                .fetch_all(&pool)
                .await?;
            rows.iter()
                .map(|row| {
                    let mut entry: ActivationRecord = from_json(row.try_get("record")?)?;
                    entry.sequence = row.try_get::<i64, _>("sequence")? as u64;
                    Ok(entry)
                })
                .collect()
        })
    }
}

impl PgStore {
    /// Activates `version` (unless `only_first` and a version is active already), in one
    /// transaction that also notifies every replica.
    fn activate_unless_active(
        &self,
        version: u32,
        reason: &str,
        only_first: bool,
    ) -> Result<Option<ActivationRecord>> {
        let (pool, reason) = (self.pool(), reason.to_string());
        self.run(async move {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(ACTIVATION_LOCK)
                .execute(&mut *tx)
                .await?;
            let exists: Option<i32> =
                sqlx::query_scalar("SELECT version FROM model_versions WHERE version = $1")
                    .bind(version as i32)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound {
                    what: "model version",
                    id: version.to_string(),
                });
            }
            let from: Option<i32> = sqlx::query_scalar("SELECT version FROM active_model")
                .fetch_optional(&mut *tx)
                .await?;
            if only_first && from.is_some() {
                return Ok(None);
            }
            sqlx::query(
                "INSERT INTO active_model (version) VALUES ($1) \
                 ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
            )
            .bind(version as i32)
            .execute(&mut *tx)
            .await?;
            let mut entry = ActivationRecord {
                sequence: 0,
                at: chrono::Utc::now(),
                from: from.map(|v| v as u32),
                to: version,
                reason,
            };
            let sequence: i64 = sqlx::query_scalar(
                "INSERT INTO activations (record) VALUES ($1) RETURNING sequence",
            )
            .bind(to_json(&entry)?)
            .fetch_one(&mut *tx)
            .await?;
            entry.sequence = sequence as u64;
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGES_CHANNEL)
                .bind(payload(&Change::ActiveModel(version)))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(entry))
        })
    }
}
