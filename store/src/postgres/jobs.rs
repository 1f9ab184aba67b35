//! [`JobStore`] on PostgreSQL. A partial unique index allows one queued or running job per kind
//! across every replica; updates are optimistic (a revision column), and every change notifies
//! the replicas following the job.

use chrono::Utc;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::listener::{payload, CHANGES_CHANNEL};
use super::{db_id, from_json, id, to_json, PgStore};
use crate::changes::Change;
use crate::error::{Result, StoreError};
use crate::stores::JobStore;
use crate::types::*;

fn job(row: &PgRow) -> Result<JobRecord> {
    let mut job: JobRecord = from_json(row.try_get("record")?)?;
    job.id = id(row.try_get("id")?);
    Ok(job)
}

async fn notify(tx: &mut sqlx::PgConnection, job_id: u64) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind(payload(&Change::Job(job_id)))
        .execute(tx)
        .await?;
    Ok(())
}

/// The queued or running job of `kind`.
async fn active_job(pool: &PgPool, kind: &str) -> Result<Option<JobRecord>> {
    let row = sqlx::query(
        "SELECT id, record FROM jobs WHERE kind = $1 AND state IN ('queued', 'running')",
    )
    .bind(kind)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(job).transpose()
}

impl JobStore for PgStore {
    fn create_exclusive(&self, kind: &str, params: serde_json::Value) -> Result<JobRecord> {
        let (pool, kind) = (self.pool(), kind.to_string());
        self.run(async move {
            loop {
                let mut tx = pool.begin().await?;
                let next: i64 =
                    sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('jobs', 'id'))")
                        .fetch_one(&mut *tx)
                        .await?;
                let record = JobRecord::new(id(next), &kind, params.clone(), Utc::now());
                let inserted = sqlx::query(
                    "INSERT INTO jobs (id, kind, state, record) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (kind) WHERE state IN ('queued', 'running') DO NOTHING",
                )
                .bind(next)
                .bind(&kind)
                .bind(record.state.name())
                .bind(to_json(&record)?)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 1 {
                    notify(&mut tx, record.id).await?;
                    tx.commit().await?;
                    return Ok(record);
                }
                tx.rollback().await?;
                // Another replica's job holds the slot; if it finished meanwhile, try again.
                if let Some(existing) = active_job(&pool, &kind).await? {
                    return Err(StoreError::Conflict {
                        kind,
                        job_id: existing.id,
                    });
                }
            }
        })
    }

    fn get(&self, job_id: u64) -> Result<Option<JobRecord>> {
        let pool = self.pool();
        self.run(async move {
            let row = sqlx::query("SELECT id, record FROM jobs WHERE id = $1")
                .bind(db_id(job_id))
                .fetch_optional(&pool)
                .await?;
            row.as_ref().map(job).transpose()
        })
    }

    fn list(&self, page: PageRequest) -> Result<Page<JobRecord>> {
        let pool = self.pool();
        self.run(async move {
            let total: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
                .fetch_one(&pool)
                .await?;
            let rows =
                sqlx::query("SELECT id, record FROM jobs ORDER BY id DESC LIMIT $1 OFFSET $2")
                    .bind(i64::from(page.per_page))
                    .bind(page.offset() as i64)
                    .fetch_all(&pool)
                    .await?;
            Ok(Page {
                items: rows.iter().map(job).collect::<Result<_>>()?,
                total: id(total),
            })
        })
    }

    fn update(&self, job_id: u64, change: &mut dyn FnMut(&mut JobRecord)) -> Result<JobRecord> {
        // Read, change here, write back if nobody wrote in between; otherwise again from a fresh
        // copy (the closure may run more than once, as with the embedded store).
        loop {
            let pool = self.pool();
            let current = self.run(async move {
                let row = sqlx::query("SELECT id, revision, record FROM jobs WHERE id = $1")
                    .bind(db_id(job_id))
                    .fetch_optional(&pool)
                    .await?;
                match row {
                    Some(row) => Ok(Some((job(&row)?, row.try_get::<i64, _>("revision")?))),
                    None => Ok(None),
                }
            })?;
            let Some((mut record, revision)) = current else {
                return Err(StoreError::NotFound {
                    what: "job",
                    id: job_id.to_string(),
                });
            };
            change(&mut record);
            let pool = self.pool();
            let written = record.clone();
            let stored = self.run(async move {
                let mut tx = pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE jobs SET record = $2, state = $3, revision = revision + 1 \
                     WHERE id = $1 AND revision = $4",
                )
                .bind(db_id(job_id))
                .bind(to_json(&written)?)
                .bind(written.state.name())
                .bind(revision)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                notify(&mut tx, job_id).await?;
                tx.commit().await?;
                Ok(true)
            })?;
            if stored {
                return Ok(record);
            }
        }
    }

    fn active(&self, kind: &str) -> Result<Option<JobRecord>> {
        let (pool, kind) = (self.pool(), kind.to_string());
        self.run(async move { active_job(&pool, &kind).await })
    }

    fn count_by_state(&self) -> Result<Vec<(JobState, u64)>> {
        let pool = self.pool();
        self.run(async move {
            let rows = sqlx::query("SELECT state, count(*) AS n FROM jobs GROUP BY state")
                .fetch_all(&pool)
                .await?;
            let mut counts: Vec<(JobState, u64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
            for row in rows {
                let state: String = row.try_get("state")?;
                if let Some(entry) = counts.iter_mut().find(|(s, _)| s.name() == state) {
                    entry.1 = id(row.try_get("n")?);
                }
            }
            Ok(counts)
        })
    }
}
