//! [`ImageStore`] on PostgreSQL: one row per image, bytes in a `bytea` column (TOASTed out of
//! line), deduplicated by a unique content hash, so two replicas storing the same bytes at once
//! get one `stored` and one `duplicate`.

use sqlx::{AssertSqlSafe, Row};

use super::{db_id, from_json, id, to_json, PgStore};
use crate::error::Result;
use crate::stores::ImageStore;
use crate::types::*;

/// An image row's record (its id and class columns are the truth).
fn record(row: &sqlx::postgres::PgRow) -> Result<ImageRecord> {
    let mut record: ImageRecord = from_json(row.try_get("record")?)?;
    record.id = id(row.try_get("id")?);
    record.class = row.try_get("class")?;
    Ok(record)
}

/// Inserts one image row, with `id` or the next one; `None` when its content hash is stored
/// already. The one place an image row is written (uploads and `migrate-store` alike).
pub(super) async fn insert_row(
    executor: impl sqlx::PgExecutor<'_>,
    id: Option<i64>,
    record: &ImageRecord,
    bytes: &[u8],
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO images (id, sha256, class, split, byte_size, width, height, created_at, \
         record, bytes) VALUES (coalesce($1, nextval(pg_get_serial_sequence('images', 'id'))), \
         $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (sha256) DO NOTHING RETURNING id",
    )
    .bind(id)
    .bind(&record.sha256)
    .bind(&record.class)
    .bind(record.split.name())
    .bind(record.byte_size as i64)
    .bind(record.width as i32)
    .bind(record.height as i32)
    .bind(record.created_at)
    .bind(to_json(record)?)
    .bind(bytes)
    .fetch_optional(executor)
    .await?)
}

fn records(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<ImageRecord>> {
    rows.iter().map(record).collect()
}

impl ImageStore for PgStore {
    fn insert(&self, image: NewImage) -> Result<InsertOutcome> {
        let pool = self.pool();
        self.run(async move {
            let mut record = ImageRecord {
                id: 0,
                class: image.class,
                width: image.width,
                height: image.height,
                format: image.format,
                content_type: image.content_type,
                byte_size: image.bytes.len() as u64,
                sha256: image.sha256,
                source: image.source,
                filename: image.filename,
                split: image.split,
                created_at: image.created_at,
            };
            loop {
                if let Some(new_id) = insert_row(&pool, None, &record, &image.bytes).await? {
                    record.id = id(new_id);
                    return Ok(InsertOutcome::Stored(record));
                }
                // The conflicting row committed first; if it was deleted since, try again.
                let existing =
                    sqlx::query("SELECT id, class, record FROM images WHERE sha256 = $1")
                        .bind(&record.sha256)
                        .fetch_optional(&pool)
                        .await?;
                if let Some(row) = existing {
                    return Ok(InsertOutcome::Duplicate(self::record(&row)?));
                }
            }
        })
    }

    fn get(&self, image_id: u64) -> Result<Option<ImageRecord>> {
        let pool = self.pool();
        self.run(async move {
            let row = sqlx::query("SELECT id, class, record FROM images WHERE id = $1")
                .bind(db_id(image_id))
                .fetch_optional(&pool)
                .await?;
            row.as_ref().map(record).transpose()
        })
    }

    fn find_by_hash(&self, sha256: &str) -> Result<Option<ImageRecord>> {
        let (pool, sha256) = (self.pool(), sha256.to_string());
        self.run(async move {
            let row = sqlx::query("SELECT id, class, record FROM images WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(&pool)
                .await?;
            row.as_ref().map(record).transpose()
        })
    }

    fn content(&self, image_id: u64) -> Result<Option<Vec<u8>>> {
        let pool = self.pool();
        self.run(async move {
            Ok(sqlx::query_scalar("SELECT bytes FROM images WHERE id = $1")
                .bind(db_id(image_id))
                .fetch_optional(&pool)
                .await?)
        })
    }

    fn list(&self, filter: &ImageFilter, page: PageRequest) -> Result<Page<ImageRecord>> {
        let (pool, filter) = (self.pool(), filter.clone());
        self.run(async move {
            const MATCHES: &str =
                "($1::text IS NULL OR class = $1) AND ($2::text IS NULL OR split = $2)";
            let class = filter.class.as_deref();
            let split = filter.split.map(Split::name);
            let total: i64 =
                sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM images WHERE {MATCHES}")))
                    .bind(class)
                    .bind(split)
                    .fetch_one(&pool)
                    .await?;
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT id, class, record FROM images WHERE {MATCHES} ORDER BY id LIMIT $3 OFFSET $4"
            )))
            .bind(class)
            .bind(split)
            .bind(i64::from(page.per_page))
            .bind(page.offset() as i64)
            .fetch_all(&pool)
            .await?;
            Ok(Page {
                items: records(&rows)?,
                total: id(total),
            })
        })
    }

    fn all(&self) -> Result<Vec<ImageRecord>> {
        let pool = self.pool();
        self.run(async move {
            let rows = sqlx::query("SELECT id, class, record FROM images ORDER BY id")
                .fetch_all(&pool)
                .await?;
            records(&rows)
        })
    }

    fn relabel(&self, image_id: u64, class: &str) -> Result<Option<ImageRecord>> {
        let (pool, class) = (self.pool(), class.to_string());
        self.run(async move {
            let row = sqlx::query(
                "UPDATE images SET class = $2 WHERE id = $1 RETURNING id, class, record",
            )
            .bind(db_id(image_id))
            .bind(class)
            .fetch_optional(&pool)
            .await?;
            row.as_ref().map(record).transpose()
        })
    }

    fn delete(&self, image_id: u64) -> Result<Option<ImageRecord>> {
        let pool = self.pool();
        self.run(async move {
            let row = sqlx::query("DELETE FROM images WHERE id = $1 RETURNING id, class, record")
                .bind(db_id(image_id))
                .fetch_optional(&pool)
                .await?;
            row.as_ref().map(record).transpose()
        })
    }

    fn delete_class(&self, class: &str) -> Result<u64> {
        let (pool, class) = (self.pool(), class.to_string());
        self.run(async move {
            let done = sqlx::query("DELETE FROM images WHERE class = $1")
                .bind(class)
                .execute(&pool)
                .await?;
            Ok(done.rows_affected())
        })
    }

    fn classes(&self) -> Result<Vec<ClassSummary>> {
        Ok(ImageStore::stats(self)?.classes)
    }

    fn stats(&self) -> Result<DatasetStats> {
        Ok(DatasetStats::from_records(&ImageStore::all(self)?))
    }

    fn count(&self) -> Result<u64> {
        let pool = self.pool();
        self.run(async move {
            let count: i64 = sqlx::query_scalar("SELECT count(*) FROM images")
                .fetch_one(&pool)
                .await?;
            Ok(id(count))
        })
    }
}
