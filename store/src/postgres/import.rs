//! Moving up: a whole store (an embedded data dir) copied into an empty PostgreSQL database with
//! every id, version number and log sequence kept, then checked: counts per concern, and the
//! hash of every image's bytes and every version's weights recomputed from what PostgreSQL holds.

use sha2::{Digest, Sha256};

use super::{db_id, to_json, PgStore};
use crate::error::{Result, StoreError};
use crate::review::ReviewState;
use crate::stores::Stores;
use crate::types::*;

/// What was copied (and found again in the target).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub images: u64,
    pub image_bytes: u64,
    pub versions: u64,
    pub activations: u64,
    pub jobs: u64,
    /// Jobs still queued or running in the source, recorded as failed (`interrupted`): their
    /// queue entries are not carried, so nothing would ever run or settle them.
    pub jobs_interrupted: u64,
    pub predictions: u64,
    /// Review queue items, pending (with their images) or settled (with their labels).
    pub review_items: u64,
    /// Rollouts, ended or (at most one) running, with their figures.
    pub rollouts: u64,
}

/// Rows written per transaction while copying images (each holds an image's bytes).
const IMAGE_BATCH: usize = 64;

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every page of a paged listing.
fn all_pages<T>(mut page: impl FnMut(PageRequest) -> Result<Page<T>>) -> Result<Vec<T>> {
    let mut items = Vec::new();
    for number in 1.. {
        let next = page(PageRequest::new(number, 1000))?;
        let done = next.items.len() < 1000;
        items.extend(next.items);
        if done {
            break;
        }
    }
    Ok(items)
}

impl PgStore {
    /// Copies everything `from` holds into this database, which must be empty, and verifies
    /// the copy. `progress` hears what is being copied. The feature cache is not carried (it is
    /// recomputed by the first retrain), nor the job queue's entries (see
    /// [`ImportReport::jobs_interrupted`]).
    pub fn import(&self, from: &Stores, progress: &mut dyn FnMut(&str)) -> Result<ImportReport> {
        self.refuse_unless_empty()?;
        let mut report = ImportReport::default();

        progress("images");
        let images = from.images.all()?;
        for chunk in images.chunks(IMAGE_BATCH) {
            let mut rows = Vec::with_capacity(chunk.len());
            for record in chunk {
                let bytes = from.images.content(record.id)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("image {} has no content", record.id))
                })?;
                report.image_bytes += bytes.len() as u64;
                rows.push((record.clone(), bytes));
            }
            let pool = self.pool();
            self.run(async move {
                let mut tx = pool.begin().await?;
                for (record, bytes) in rows {
                    let stored = super::images::insert_row(
                        &mut *tx,
                        Some(db_id(record.id)),
                        &record,
                        &bytes,
                    )
                    .await?;
                    if stored.is_none() {
                        return Err(StoreError::Corrupt(format!(
                            "image {}: its content hash is stored twice in the source",
                            record.id
                        )));
                    }
                }
                tx.commit().await?;
                Ok(())
            })?;
        }
        report.images = images.len() as u64;

        progress("model versions");
        for record in from.models.list()? {
            let artifact = from.models.artifact(record.version)?.ok_or_else(|| {
                StoreError::Corrupt(format!("version {} has no weights", record.version))
            })?;
            let pool = self.pool();
            self.run(async move {
                sqlx::query(
                    "INSERT INTO model_versions (version, record, artifact) VALUES ($1, $2, $3)",
                )
                .bind(record.version as i32)
                .bind(to_json(&record)?)
                .bind(artifact)
                .execute(&pool)
                .await?;
                Ok(())
            })?;
            report.versions += 1;
        }
        let history = from.models.history()?;
        report.activations = history.len() as u64;
        let active = from.models.active()?;
        let pool = self.pool();
        self.run(async move {
            let mut tx = pool.begin().await?;
            for entry in history {
                sqlx::query(
                    "INSERT INTO activations (sequence, record) OVERRIDING SYSTEM VALUE VALUES ($1, $2)",
                )
                .bind(db_id(entry.sequence))
                .bind(to_json(&entry)?)
                .execute(&mut *tx)
                .await?;
            }
            if let Some(version) = active {
                sqlx::query("INSERT INTO active_model (version) VALUES ($1)")
                    .bind(version as i32)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })?;

        progress("jobs");
        let mut jobs = all_pages(|page| from.jobs.list(page))?;
        for job in &mut jobs {
            if !job.state.is_terminal() {
                job.state = JobState::Failed;
                job.message =
                    "interrupted: the store was migrated while this job was pending".into();
                job.error = Some(JobError {
                    code: "interrupted".into(),
                    message:
                        "the job did not finish before the store was migrated; start a new one"
                            .into(),
                });
                report.jobs_interrupted += 1;
            }
        }
        report.jobs = jobs.len() as u64;
        let pool = self.pool();
        self.run(async move {
            let mut tx = pool.begin().await?;
            for job in jobs {
                sqlx::query("INSERT INTO jobs (id, kind, state, record) VALUES ($1, $2, $3, $4)")
                    .bind(db_id(job.id))
                    .bind(&job.kind)
                    .bind(job.state.name())
                    .bind(to_json(&job)?)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })?;

        progress("predictions");
        let predictions = all_pages(|page| from.predictions.list(page))?;
        report.predictions = predictions.len() as u64;
        let stats = from.predictions.stats()?;
        let pool = self.pool();
        self.run(async move {
            let mut tx = pool.begin().await?;
            for prediction in predictions {
                sqlx::query("INSERT INTO predictions (id, created_at, record) VALUES ($1, $2, $3)")
                    .bind(db_id(prediction.id))
                    .bind(prediction.created_at)
                    .bind(to_json(&prediction)?)
                    .execute(&mut *tx)
                    .await?;
            }
            // The aggregates also count predictions the source's retention already pruned.
            sqlx::query("UPDATE prediction_stats SET stats = $1")
                .bind(to_json(&stats)?)
                .execute(&mut *tx)
                .await?;
            // New ids continue after the carried ones; none is ever handed out twice.
            for statement in [
                "SELECT setval(pg_get_serial_sequence('images', 'id'), greatest((SELECT max(id) FROM images), 1))",
                "SELECT setval(pg_get_serial_sequence('jobs', 'id'), greatest((SELECT max(id) FROM jobs), 1))",
                "SELECT setval(pg_get_serial_sequence('activations', 'sequence'), greatest((SELECT max(sequence) FROM activations), 1))",
                "SELECT setval('prediction_ids', greatest((SELECT max(id) FROM predictions), 1))",
            ] {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(())
        })?;

        progress("review queue");
        let mut items = Vec::new();
        for item in from.reviews.items()? {
            let bytes = match item.state {
                ReviewState::Pending => from.reviews.image(item.prediction_id)?,
                _ => None,
            };
            items.push((item, bytes));
        }
        report.review_items = items.len() as u64;
        let evicted = from.reviews.summary()?.evicted;
        let pool = self.pool();
        self.run(async move {
            let mut tx = pool.begin().await?;
            for (item, bytes) in &items {
                super::reviews::import_item(&mut tx, item, bytes.as_deref()).await?;
            }
            sqlx::query("UPDATE review_counters SET evicted = $1")
                .bind(db_id(evicted))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })?;

        progress("rollouts");
        let rollouts = from.rollouts.list()?;
        report.rollouts = rollouts.len() as u64;
        let pool = self.pool();
        self.run(async move {
            let mut tx = pool.begin().await?;
            for record in &rollouts {
                sqlx::query("INSERT INTO rollouts (id, running, record) VALUES ($1, $2, $3)")
                    .bind(db_id(record.id))
                    .bind(record.state == crate::rollout::RolloutState::Running)
                    .bind(to_json(record)?)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })?;

        progress("verifying");
        self.verify_import(from, &report)?;
        Ok(report)
    }

    /// Refuses to import into a database that already holds data.
    fn refuse_unless_empty(&self) -> Result<()> {
        let pool = self.pool();
        let rows: i64 = self.run(async move {
            Ok(sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM images) + (SELECT count(*) FROM model_versions) \
                 + (SELECT count(*) FROM jobs) + (SELECT count(*) FROM predictions)",
            )
            .fetch_one(&pool)
            .await?)
        })?;
        if rows > 0 {
            return Err(StoreError::Engine(format!(
                "the target database already holds {rows} records; import only into an empty one"
            )));
        }
        Ok(())
    }

    /// Counts per concern, and every image's and version's bytes hashed as stored here.
    fn verify_import(&self, from: &Stores, report: &ImportReport) -> Result<()> {
        use crate::stores::{
            ImageStore, JobStore, ModelStore, PredictionStore, ReviewStore, RolloutStore,
        };
        let mismatch = |what: &str, expected: u64, found: u64| {
            StoreError::Corrupt(format!(
                "after the copy the target holds {found} {what}, expected {expected}"
            ))
        };
        let first = PageRequest::new(1, 1);
        let counts = [
            ("images", report.images, ImageStore::count(self)?),
            (
                "model versions",
                report.versions,
                ModelStore::list(self)?.len() as u64,
            ),
            (
                "activations",
                report.activations,
                ModelStore::history(self)?.len() as u64,
            ),
            ("jobs", report.jobs, JobStore::list(self, first)?.total),
            (
                "predictions",
                report.predictions,
                PredictionStore::list(self, first)?.total,
            ),
        ];
        for (what, expected, found) in counts {
            if expected != found {
                return Err(mismatch(what, expected, found));
            }
        }
        for record in ImageStore::all(self)? {
            let bytes = ImageStore::content(self, record.id)?.unwrap_or_default();
            if sha256_hex(&bytes) != record.sha256 {
                return Err(StoreError::Corrupt(format!(
                    "image {}: the copied bytes do not hash to {}",
                    record.id, record.sha256
                )));
            }
        }
        for record in ModelStore::list(self)? {
            let ours = ModelStore::artifact(self, record.version)?.unwrap_or_default();
            let theirs = from.models.artifact(record.version)?.unwrap_or_default();
            if sha256_hex(&ours) != sha256_hex(&theirs) {
                return Err(StoreError::Corrupt(format!(
                    "version {}: the copied weights differ from the source's",
                    record.version
                )));
            }
        }
        let (ours, theirs) = (ReviewStore::summary(self)?, from.reviews.summary()?);
        if ours != theirs {
            return Err(StoreError::Corrupt(format!(
                "the review queue differs after the copy: {ours:?}, expected {theirs:?}"
            )));
        }
        if RolloutStore::list(self)? != from.rollouts.list()? {
            return Err(StoreError::Corrupt(
                "the rollouts differ after the copy".into(),
            ));
        }
        if ModelStore::active(self)? != from.models.active()? {
            return Err(StoreError::Corrupt(
                "the active version differs after the copy".into(),
            ));
        }
        Ok(())
    }
}
