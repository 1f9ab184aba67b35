//! [`TaskQueue`] on PostgreSQL: claims with `FOR UPDATE SKIP LOCKED`, so replicas polling the
//! same queue never hand one task to two workers, and worker heartbeats in a table, so a replica
//! can tell a running task whose worker died.

use chrono::Utc;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};

use super::{db_id, id, PgStore};
use crate::error::{Result, StoreError};
use crate::queue::{ClaimedTask, TaskOutcome, TaskQueue, TaskRecord, TaskStatus, WorkerRecord};

const TASK_COLUMNS: &str =
    "id, queue, status, attempts, last_error, worker, created_at, started_at, finished_at";

fn status_name(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Pending => "pending",
        TaskStatus::Running => "running",
        TaskStatus::Done => "done",
        TaskStatus::Failed => "failed",
        TaskStatus::Killed => "killed",
    }
}

fn task(row: &PgRow) -> Result<TaskRecord> {
    let status: String = row.try_get("status")?;
    Ok(TaskRecord {
        id: id(row.try_get("id")?),
        queue: row.try_get("queue")?,
        status: serde_json::from_value(serde_json::Value::String(status))?,
        attempts: row.try_get::<i32, _>("attempts")?.max(0) as u32,
        last_error: row.try_get("last_error")?,
        worker: row.try_get("worker")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

fn worker(row: &PgRow) -> Result<WorkerRecord> {
    Ok(WorkerRecord {
        name: row.try_get("name")?,
        queue: row.try_get("queue")?,
        registered_at: row.try_get("registered_at")?,
        last_seen: row.try_get("last_seen")?,
    })
}

impl PgStore {
    fn write_worker(&self, queue: &str, name: &str, registering: bool) -> Result<WorkerRecord> {
        let (pool, queue, name) = (self.pool(), queue.to_string(), name.to_string());
        self.run(async move {
            let row = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO task_workers (queue, name, registered_at, last_seen) \
                 VALUES ($1, $2, now(), now()) ON CONFLICT (queue, name) DO UPDATE SET \
                 last_seen = now(){} RETURNING queue, name, registered_at, last_seen",
                if registering {
                    ", registered_at = now()"
                } else {
                    ""
                }
            )))
            .bind(queue)
            .bind(name)
            .fetch_one(&pool)
            .await?;
            worker(&row)
        })
    }
}

impl TaskQueue for PgStore {
    fn push(&self, queue: &str, payload: Vec<u8>) -> Result<TaskRecord> {
        let (pool, queue) = (self.pool(), queue.to_string());
        self.run(async move {
            let row = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO tasks (queue, status, created_at, payload) \
                 VALUES ($1, 'pending', $2, $3) RETURNING {TASK_COLUMNS}"
            )))
            .bind(queue)
            .bind(Utc::now())
            .bind(payload)
            .fetch_one(&pool)
            .await?;
            task(&row)
        })
    }

    fn payload(&self, task_id: u64) -> Result<Option<Vec<u8>>> {
        let pool = self.pool();
        self.run(async move {
            Ok(
                sqlx::query_scalar("SELECT payload FROM tasks WHERE id = $1")
                    .bind(db_id(task_id))
                    .fetch_optional(&pool)
                    .await?,
            )
        })
    }

    fn get(&self, task_id: u64) -> Result<Option<TaskRecord>> {
        let pool = self.pool();
        self.run(async move {
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"
            )))
            .bind(db_id(task_id))
            .fetch_optional(&pool)
            .await?;
            row.as_ref().map(task).transpose()
        })
    }

    fn list(&self, queue: &str, status: TaskStatus) -> Result<Vec<TaskRecord>> {
        let (pool, queue) = (self.pool(), queue.to_string());
        self.run(async move {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {TASK_COLUMNS} FROM tasks WHERE queue = $1 AND status = $2 ORDER BY id"
            )))
            .bind(queue)
            .bind(status_name(status))
            .fetch_all(&pool)
            .await?;
            rows.iter().map(task).collect()
        })
    }

    fn claim(&self, queue: &str, worker: &str, limit: usize) -> Result<Vec<ClaimedTask>> {
        self.heartbeat(queue, worker)?;
        let (pool, queue, worker) = (self.pool(), queue.to_string(), worker.to_string());
        self.run(async move {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "UPDATE tasks SET status = 'running', worker = $2, started_at = now() \
                 WHERE id IN (SELECT id FROM tasks WHERE queue = $1 AND status = 'pending' \
                              ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING {TASK_COLUMNS}, payload"
            )))
            .bind(queue)
            .bind(worker)
            .bind(limit as i64)
            .fetch_all(&pool)
            .await?;
            let mut claimed = rows
                .iter()
                .map(|row| {
                    Ok(ClaimedTask {
                        record: task(row)?,
                        payload: row.try_get("payload")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            claimed.sort_by_key(|c| c.record.id);
            Ok(claimed)
        })
    }

    fn finish(&self, task_id: u64, attempts: u32, outcome: TaskOutcome) -> Result<TaskRecord> {
        let pool = self.pool();
        self.run(async move {
            let (status, error) = match outcome {
                TaskOutcome::Done => (TaskStatus::Done, None),
                TaskOutcome::Failed(error) => (TaskStatus::Failed, Some(error)),
                TaskOutcome::Killed(error) => (TaskStatus::Killed, Some(error)),
            };
            let row = sqlx::query(AssertSqlSafe(format!(
                "UPDATE tasks SET status = $2, attempts = $3, last_error = $4, finished_at = now() \
                 WHERE id = $1 AND status = 'running' RETURNING {TASK_COLUMNS}"
            )))
            .bind(db_id(task_id))
            .bind(status_name(status))
            .bind(attempts as i32)
            .bind(error)
            .fetch_optional(&pool)
            .await?;
            let row = match row {
                Some(row) => row,
                // Not running: a late or repeated report changes nothing.
                None => sqlx::query(AssertSqlSafe(format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"
                )))
                .bind(db_id(task_id))
                .fetch_optional(&pool)
                .await?
                .ok_or_else(|| StoreError::NotFound {
                    what: "task",
                    id: task_id.to_string(),
                })?,
            };
            task(&row)
        })
    }

    fn requeue(&self, ids: &[u64]) -> Result<u64> {
        let pool = self.pool();
        let ids: Vec<i64> = ids.iter().map(|&i| db_id(i)).collect();
        self.run(async move {
            let done = sqlx::query(
                "UPDATE tasks SET status = 'pending', worker = NULL, started_at = NULL \
                 WHERE id = ANY($1) AND status = 'running'",
            )
            .bind(ids)
            .execute(&pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    fn fail_orphaned(
        &self,
        queue: &str,
        silent_for: std::time::Duration,
        error: &str,
    ) -> Result<Vec<TaskRecord>> {
        let (pool, queue, error) = (self.pool(), queue.to_string(), error.to_string());
        self.run(async move {
            // One statement: a worker's heartbeat landing meanwhile either counts (the task
            // stays running) or comes too late, never half of each.
            let rows = sqlx::query(AssertSqlSafe(format!(
                "UPDATE tasks t SET status = 'failed', attempts = attempts + 1, last_error = $3, \
                     finished_at = now() \
                 WHERE queue = $1 AND status = 'running' AND NOT EXISTS ( \
                     SELECT 1 FROM task_workers w \
                     WHERE w.queue = t.queue AND w.name = t.worker AND w.last_seen >= now() - make_interval(secs => $2)) \
                 RETURNING {TASK_COLUMNS}"
            )))
            .bind(queue)
            .bind(silent_for.as_secs_f64())
            .bind(error)
            .fetch_all(&pool)
            .await?;
            let mut failed = rows.iter().map(task).collect::<Result<Vec<_>>>()?;
            failed.sort_by_key(|t| t.id);
            Ok(failed)
        })
    }

    fn register_worker(&self, queue: &str, worker: &str) -> Result<WorkerRecord> {
        self.write_worker(queue, worker, true)
    }

    fn heartbeat(&self, queue: &str, worker: &str) -> Result<WorkerRecord> {
        self.write_worker(queue, worker, false)
    }

    fn workers(&self, queue: &str) -> Result<Vec<WorkerRecord>> {
        let (pool, queue) = (self.pool(), queue.to_string());
        self.run(async move {
            let rows = sqlx::query(
                "SELECT queue, name, registered_at, last_seen FROM task_workers \
                 WHERE queue = $1 ORDER BY name",
            )
            .bind(queue)
            .fetch_all(&pool)
            .await?;
            rows.iter().map(worker).collect()
        })
    }
}
