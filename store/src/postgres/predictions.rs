//! [`PredictionStore`] on PostgreSQL: the log (ids from one sequence, so unique across replicas
//! and never reused) and one row of running aggregates, updated in the same transaction.

use sqlx::Row;

use super::{db_id, from_json, id, to_json, PgStore};
use crate::error::Result;
use crate::stores::PredictionStore;
use crate::types::*;

impl PredictionStore for PgStore {
    fn record(&self, predictions: Vec<PredictionRecord>) -> Result<Vec<u64>> {
        let pool = self.pool();
        self.run(async move {
            let mut predictions = predictions;
            let mut tx = pool.begin().await?;
            // Locks the aggregates row: replicas recording at once take turns here.
            let stats: Option<serde_json::Value> =
                sqlx::query_scalar("SELECT stats FROM prediction_stats FOR UPDATE")
                    .fetch_optional(&mut *tx)
                    .await?;
            let mut stats: PredictionStats = stats.map(from_json).transpose()?.unwrap_or_default();
            for prediction in &mut predictions {
                if prediction.id == 0 {
                    let next: i64 = sqlx::query_scalar("SELECT nextval('prediction_ids')")
                        .fetch_one(&mut *tx)
                        .await?;
                    prediction.id = id(next);
                }
                sqlx::query("INSERT INTO predictions (id, created_at, record) VALUES ($1, $2, $3)")
                    .bind(db_id(prediction.id))
                    .bind(prediction.created_at)
                    .bind(to_json(prediction)?)
                    .execute(&mut *tx)
                    .await?;
                stats.add(prediction);
            }
            sqlx::query(
                "INSERT INTO prediction_stats (stats) VALUES ($1) \
                 ON CONFLICT (singleton) DO UPDATE SET stats = excluded.stats",
            )
            .bind(to_json(&stats)?)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(predictions.iter().map(|p| p.id).collect())
        })
    }

    fn list(&self, page: PageRequest) -> Result<Page<PredictionRecord>> {
        let pool = self.pool();
        self.run(async move {
            let total: i64 = sqlx::query_scalar("SELECT count(*) FROM predictions")
                .fetch_one(&pool)
                .await?;
            let rows = sqlx::query(
                "SELECT id, record FROM predictions ORDER BY id DESC LIMIT $1 OFFSET $2",
            )
            .bind(i64::from(page.per_page))
            .bind(page.offset() as i64)
            .fetch_all(&pool)
            .await?;
            let items = rows
                .iter()
                .map(|row| {
                    let mut record: PredictionRecord = from_json(row.try_get("record")?)?;
                    record.id = id(row.try_get("id")?);
                    Ok(record)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Page {
                items,
                total: id(total),
            })
        })
    }

    fn stats(&self) -> Result<PredictionStats> {
        let pool = self.pool();
        self.run(async move {
            let stats: Option<serde_json::Value> =
                sqlx::query_scalar("SELECT stats FROM prediction_stats")
                    .fetch_optional(&pool)
                    .await?;
            let mut stats: PredictionStats = stats.map(from_json).transpose()?.unwrap_or_default();
            stats.confidence_histogram.resize(CONFIDENCE_BUCKETS, 0);
            Ok(stats)
        })
    }

    fn next_id(&self) -> Result<u64> {
        let pool = self.pool();
        self.run(async move {
            let next: i64 = sqlx::query_scalar("SELECT nextval('prediction_ids')")
                .fetch_one(&pool)
                .await?;
            Ok(id(next))
        })
    }

    fn prune(&self, max_count: u64, older_than: Option<Timestamp>) -> Result<u64> {
        let pool = self.pool();
        self.run(async move {
            let done = sqlx::query(
                "DELETE FROM predictions WHERE id IN (\
                     SELECT id FROM predictions ORDER BY id \
                     LIMIT greatest((SELECT count(*) FROM predictions) - $1, 0)) \
                 OR created_at < $2",
            )
            .bind(db_id(max_count))
            .bind(older_than)
            .execute(&pool)
            .await?;
            Ok(done.rows_affected())
        })
    }

    fn set_label(&self, id: u64, class: &str) -> Result<bool> {
        let (pool, class) = (self.pool(), class.to_string());
        self.run(async move {
            let done = sqlx::query(
                "UPDATE predictions SET record = jsonb_set(record, '{label}', to_jsonb($2::text)) \
                 WHERE id = $1",
            )
            .bind(db_id(id))
            .bind(class)
            .execute(&pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
    }
}
