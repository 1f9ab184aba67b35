//! [`JobStore`] on PostgreSQL. A partial unique index allows one queued or running exclusive job
//! per kind across every replica; updates are optimistic (a revision column), so of replicas
//! claiming one queued job only one finds it still queued; every change notifies the replicas
//! following the job. Worker heartbeats live in `job_workers`, stamped with the database's clock.

use chrono::Utc;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgPool, Row};

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

fn worker(row: &PgRow) -> Result<WorkerRecord> {
    Ok(WorkerRecord {
        name: row.try_get("name")?,
        queue: row.try_get("queue")?,
        registered_at: row.try_get("registered_at")?,
        last_seen: row.try_get("last_seen")?,
    })
}

/// The queued or running exclusive job of `kind`.
async fn active_job(pool: &PgPool, kind: &str) -> Result<Option<JobRecord>> {
    let row = sqlx::query(
        "SELECT id, record FROM jobs \
         WHERE kind = $1 AND exclusive AND state IN ('queued', 'running')",
    )
    .bind(kind)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(job).transpose()
}

impl PgStore {
    fn write_worker(&self, kind: &str, name: &str, registering: bool) -> Result<WorkerRecord> {
        let (pool, kind, name) = (self.pool(), kind.to_string(), name.to_string());
        self.run(async move {
            let row = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO job_workers (queue, name, registered_at, last_seen) \
                 VALUES ($1, $2, now(), now()) ON CONFLICT (queue, name) DO UPDATE SET \
                 last_seen = now(){} RETURNING queue, name, registered_at, last_seen",
                if registering {
                    ", registered_at = now()"
                } else {
                    ""
                }
            )))
            .bind(kind)
            .bind(name)
            .fetch_one(&pool)
            .await?;
            worker(&row)
        })
    }
}

impl JobStore for PgStore {
    fn create(&self, kind: &str, params: serde_json::Value, exclusive: bool) -> Result<JobRecord> {
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
                    "INSERT INTO jobs (id, kind, state, record, exclusive) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (kind) WHERE exclusive AND state IN ('queued', 'running') \
                     DO NOTHING",
                )
                .bind(next)
                .bind(&kind)
                .bind(record.state.name())
                .bind(to_json(&record)?)
                .bind(exclusive)
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

    fn list_in(&self, kind: &str, state: JobState, limit: usize) -> Result<Vec<JobRecord>> {
        let (pool, kind) = (self.pool(), kind.to_string());
        self.run(async move {
            let rows = sqlx::query(
                "SELECT id, record FROM jobs WHERE kind = $1 AND state = $2 ORDER BY id LIMIT $3",
            )
            .bind(kind)
            .bind(state.name())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&pool)
            .await?;
            rows.iter().map(job).collect()
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

    fn register_worker(&self, kind: &str, worker: &str) -> Result<WorkerRecord> {
        self.write_worker(kind, worker, true)
    }

    fn heartbeat(&self, kind: &str, worker: &str) -> Result<WorkerRecord> {
        self.write_worker(kind, worker, false)
    }

    fn workers(&self, kind: &str) -> Result<Vec<WorkerRecord>> {
        let (pool, kind) = (self.pool(), kind.to_string());
        self.run(async move {
            let rows = sqlx::query(
                "SELECT queue, name, registered_at, last_seen FROM job_workers \
                 WHERE queue = $1 ORDER BY name",
            )
            .bind(kind)
            .fetch_all(&pool)
            .await?;
            rows.iter().map(worker).collect()
        })
    }

    fn now(&self) -> Result<Timestamp> {
        let pool = self.pool();
        self.run(async move { Ok(sqlx::query_scalar("SELECT now()").fetch_one(&pool).await?) })
    }
}
