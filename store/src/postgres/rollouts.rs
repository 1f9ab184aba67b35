//! [`RolloutStore`] on PostgreSQL: one row per rollout, at most one `running` (a partial unique
//! index), figures merged under the row's lock so replicas' additions never overwrite each other.

use chrono::Utc;

use super::{from_json, to_json, PgStore};
use crate::error::{Result, StoreError};
use crate::rollout::*;
use crate::stores::RolloutStore;

/// Serialises starts across replicas (the running check and the new id).
const ROLLOUT_LOCK: i64 = 0x5370_7269_6700_0004;

impl RolloutStore for PgStore {
    fn start(&self, new: NewRollout) -> Result<RolloutRecord> {
        let pool = self.pool();
        self.run(async move {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(ROLLOUT_LOCK)
                .execute(&mut *tx)
                .await?;
            let running: Option<serde_json::Value> =
                sqlx::query_scalar("SELECT record FROM rollouts WHERE running")
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(running) = running {
                let running: RolloutRecord = from_json(running)?;
                return Err(StoreError::RolloutRunning {
                    id: running.id,
                    version: running.version,
                });
            }
            let id: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) + 1 FROM rollouts")
                .fetch_one(&mut *tx)
                .await?;
            let record = RolloutRecord::from_new(id as u64, new, Utc::now());
            sqlx::query("INSERT INTO rollouts (id, running, record) VALUES ($1, true, $2)")
                .bind(id)
                .bind(to_json(&record)?)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(record)
        })
    }

    fn running(&self) -> Result<Option<RolloutRecord>> {
        self.rollout_where(None)
    }

    fn get(&self, id: u64) -> Result<Option<RolloutRecord>> {
        self.rollout_where(Some(id))
    }

    fn list(&self) -> Result<Vec<RolloutRecord>> {
        let pool = self.pool();
        self.run(async move {
            let records: Vec<serde_json::Value> =
                sqlx::query_scalar("SELECT record FROM rollouts ORDER BY id DESC")
                    .fetch_all(&pool)
                    .await?;
            records.into_iter().map(from_json).collect()
        })
    }

    fn add_figures(&self, id: u64, figures: &RolloutFigures) -> Result<RolloutRecord> {
        let figures = figures.clone();
        self.change_rollout(id, move |record| {
            record.figures.merge(&figures);
            true
        })?
        .ok_or(StoreError::NotFound {
            what: "rollout",
            id: id.to_string(),
        })
    }

    fn finish(
        &self,
        id: u64,
        state: RolloutState,
        verdict: Verdict,
    ) -> Result<Option<RolloutRecord>> {
        self.change_rollout(id, move |record| {
            if record.state != RolloutState::Running {
                return false;
            }
            record.end(state, verdict.clone());
            true
        })
    }
}

impl PgStore {
    /// The running rollout (`id` none) or rollout `id`.
    fn rollout_where(&self, id: Option<u64>) -> Result<Option<RolloutRecord>> {
        let pool = self.pool();
        self.run(async move {
            let query = match id {
                Some(id) => {
                    sqlx::query_scalar("SELECT record FROM rollouts WHERE id = $1").bind(id as i64)
                }
                None => sqlx::query_scalar("SELECT record FROM rollouts WHERE running"),
            };
            let record: Option<serde_json::Value> = query.fetch_optional(&pool).await?;
            record.map(from_json).transpose()
        })
    }

    /// Read-modify-write of one rollout under its row lock; `change` returns whether to write.
    /// `None` when the rollout does not exist or `change` declined.
    fn change_rollout(
        &self,
        id: u64,
        change: impl FnOnce(&mut RolloutRecord) -> bool + Send + 'static,
    ) -> Result<Option<RolloutRecord>> {
        let pool = self.pool();
        self.run(async move {
            let mut tx = pool.begin().await?;
            let record: Option<serde_json::Value> =
                sqlx::query_scalar("SELECT record FROM rollouts WHERE id = $1 FOR UPDATE")
                    .bind(id as i64)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(record) = record else {
                return Ok(None);
            };
            let mut record: RolloutRecord = from_json(record)?;
            if !change(&mut record) {
                return Ok(None);
            }
            sqlx::query("UPDATE rollouts SET running = $2, record = $3 WHERE id = $1")
                .bind(id as i64)
                .bind(record.state == RolloutState::Running)
                .bind(to_json(&record)?)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(record))
        })
    }
}
