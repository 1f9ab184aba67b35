//! [`ReviewStore`] on PostgreSQL: items in one table, the bytes of pending ones (one pending item
//! per content hash) in another;
//! keeps and settlements of every replica take turns on one advisory lock, so the disk budget
//! holds across replicas.

use sqlx::{Postgres, Row, Transaction};

use super::{db_id, from_json, id, to_json, PgStore};
use crate::error::Result;
use crate::review::{ReviewItem, ReviewOutcome, ReviewState, ReviewSummary};
use crate::stores::ReviewStore;
use crate::types::{Page, PageRequest};

/// Any constant will do: it only has to be the same in every replica.
const REVIEW_LOCK: i64 = 0x5370_7269_6700_0002;

async fn lock(tx: &mut Transaction<'_, Postgres>) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(REVIEW_LOCK)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Drops the bytes of `sha256` (their pending item was settled or evicted).
async fn release(tx: &mut Transaction<'_, Postgres>, sha256: &str) -> Result<()> {
    sqlx::query("DELETE FROM review_blobs WHERE sha256 = $1")
        .bind(sha256)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn state_name(state: ReviewState) -> &'static str {
    match state {
        ReviewState::Pending => "pending",
        ReviewState::Labelled => "labelled",
        ReviewState::Dismissed => "dismissed",
    }
}

async fn kept_bytes(tx: &mut Transaction<'_, Postgres>) -> Result<u64> {
    let total: i64 = sqlx::query_scalar("SELECT coalesce(sum(size), 0)::bigint FROM review_blobs")
        .fetch_one(&mut **tx)
        .await?;
    Ok(id(total))
}

impl ReviewStore for PgStore {
    fn keep(&self, item: ReviewItem, bytes: Vec<u8>, max_bytes: u64) -> Result<Vec<u64>> {
        let pool = self.pool();
        self.run(async move {
            let mut item = item;
            item.state = ReviewState::Pending;
            item.size_bytes = bytes.len() as u64;
            let mut tx = pool.begin().await?;
            lock(&mut tx).await?;
            let inserted = sqlx::query(
                "INSERT INTO review_items (prediction_id, state, uncertainty, sha256, record) \
                 SELECT $1, 'pending', $2, $3, $4 WHERE NOT EXISTS \
                     (SELECT 1 FROM review_items WHERE sha256 = $3 AND state = 'pending') \
                 ON CONFLICT (prediction_id) DO NOTHING",
            )
            .bind(db_id(item.prediction_id))
            .bind(item.uncertainty)
            .bind(&item.image_sha256)
            .bind(to_json(&item)?)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let mut evicted = Vec::new();
            if inserted > 0 {
                sqlx::query(
                    "INSERT INTO review_blobs (sha256, size, bytes) VALUES ($1, $2, $3) \
                     ON CONFLICT (sha256) DO NOTHING",
                )
                .bind(&item.image_sha256)
                .bind(db_id(item.size_bytes))
                .bind(&bytes)
                .execute(&mut *tx)
                .await?;
                while kept_bytes(&mut tx).await? > max_bytes {
                    let oldest = sqlx::query(
                        "DELETE FROM review_items WHERE prediction_id = (\
                             SELECT prediction_id FROM review_items WHERE state = 'pending' \
                             ORDER BY prediction_id LIMIT 1) \
                         RETURNING prediction_id, sha256",
                    )
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = oldest else { break };
                    let sha256: String = row.try_get("sha256")?;
                    release(&mut tx, &sha256).await?;
                    sqlx::query("UPDATE review_counters SET evicted = evicted + 1")
                        .execute(&mut *tx)
                        .await?;
                    evicted.push(id(row.try_get("prediction_id")?));
                }
            }
            tx.commit().await?;
            Ok(evicted)
        })
    }

    fn pending(&self, page: PageRequest) -> Result<Page<ReviewItem>> {
        let pool = self.pool();
        self.run(async move {
            let total: i64 =
                sqlx::query_scalar("SELECT count(*) FROM review_items WHERE state = 'pending'")
                    .fetch_one(&pool)
                    .await?;
            let records: Vec<serde_json::Value> = sqlx::query_scalar(
                "SELECT record FROM review_items WHERE state = 'pending' \
                 ORDER BY uncertainty DESC, prediction_id DESC LIMIT $1 OFFSET $2",
            )
            .bind(i64::from(page.per_page))
            .bind(page.offset() as i64)
            .fetch_all(&pool)
            .await?;
            Ok(Page {
                items: records.into_iter().map(from_json).collect::<Result<_>>()?,
                total: id(total),
            })
        })
    }

    fn get(&self, prediction_id: u64) -> Result<Option<ReviewItem>> {
        let pool = self.pool();
        self.run(async move {
            let record: Option<serde_json::Value> =
                sqlx::query_scalar("SELECT record FROM review_items WHERE prediction_id = $1")
                    .bind(db_id(prediction_id))
                    .fetch_optional(&pool)
                    .await?;
            record.map(from_json).transpose()
        })
    }

    fn image(&self, prediction_id: u64) -> Result<Option<Vec<u8>>> {
        let pool = self.pool();
        self.run(async move {
            Ok(sqlx::query_scalar(
                "SELECT b.bytes FROM review_items i JOIN review_blobs b ON b.sha256 = i.sha256 \
                 WHERE i.prediction_id = $1 AND i.state = 'pending'",
            )
            .bind(db_id(prediction_id))
            .fetch_optional(&pool)
            .await?)
        })
    }

    fn settle(&self, prediction_id: u64, outcome: &ReviewOutcome) -> Result<Option<ReviewItem>> {
        let (pool, outcome) = (self.pool(), outcome.clone());
        self.run(async move {
            let mut tx = pool.begin().await?;
            lock(&mut tx).await?;
            let record: Option<serde_json::Value> = sqlx::query_scalar(
                "SELECT record FROM review_items WHERE prediction_id = $1 FOR UPDATE",
            )
            .bind(db_id(prediction_id))
            .fetch_optional(&mut *tx)
            .await?;
            let Some(record) = record else {
                return Ok(None);
            };
            let mut item: ReviewItem = from_json(record)?;
            if item.state == ReviewState::Pending {
                item.settle(&outcome, chrono::Utc::now());
                sqlx::query(
                    "UPDATE review_items SET state = $2, record = $3 WHERE prediction_id = $1",
                )
                .bind(db_id(prediction_id))
                .bind(state_name(item.state))
                .bind(to_json(&item)?)
                .execute(&mut *tx)
                .await?;
                release(&mut tx, &item.image_sha256).await?;
            }
            tx.commit().await?;
            Ok(Some(item))
        })
    }

    fn summary(&self) -> Result<ReviewSummary> {
        let pool = self.pool();
        self.run(async move {
            let mut tx = pool.begin().await?;
            let pending: i64 =
                sqlx::query_scalar("SELECT count(*) FROM review_items WHERE state = 'pending'")
                    .fetch_one(&mut *tx)
                    .await?;
            let evicted: i64 = sqlx::query_scalar("SELECT evicted FROM review_counters")
                .fetch_one(&mut *tx)
                .await?;
            let mut summary = ReviewSummary {
                pending: id(pending),
                kept_bytes: kept_bytes(&mut tx).await?,
                evicted: id(evicted),
                ..ReviewSummary::default()
            };
            let settled: Vec<serde_json::Value> = sqlx::query_scalar(
                "SELECT record FROM review_items WHERE state <> 'pending' ORDER BY prediction_id",
            )
            .fetch_all(&mut *tx)
            .await?;
            for record in settled {
                summary.count_settled(&from_json(record)?);
            }
            tx.commit().await?;
            Ok(summary)
        })
    }

    fn items(&self) -> Result<Vec<ReviewItem>> {
        let pool = self.pool();
        self.run(async move {
            let records: Vec<serde_json::Value> =
                sqlx::query_scalar("SELECT record FROM review_items ORDER BY prediction_id")
                    .fetch_all(&pool)
                    .await?;
            records.into_iter().map(from_json).collect()
        })
    }
}

/// Writes an item (and a pending item's bytes) as it was, for a store migration.
pub(super) async fn import_item(
    tx: &mut Transaction<'_, Postgres>,
    item: &ReviewItem,
    bytes: Option<&[u8]>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO review_items (prediction_id, state, uncertainty, sha256, record) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(db_id(item.prediction_id))
    .bind(state_name(item.state))
    .bind(item.uncertainty)
    .bind(&item.image_sha256)
    .bind(to_json(item)?)
    .execute(&mut **tx)
    .await?;
    if let Some(bytes) = bytes {
        sqlx::query(
            "INSERT INTO review_blobs (sha256, size, bytes) VALUES ($1, $2, $3) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&item.image_sha256)
        .bind(bytes.len() as i64)
        .bind(bytes)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
