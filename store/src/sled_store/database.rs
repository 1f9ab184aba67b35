//! Opening a data dir's database (schema check, damage turned into errors, the durability
//! watermark), `sprig check`'s verification, and the [`Database`] lifecycle.

use std::path::Path;
use std::sync::Arc;

use sled::Db;

use super::encoding::decode;
use super::{
    SledStore, NEXT_ACTIVATION, NEXT_IMAGE_ID, NEXT_JOB_ID, NEXT_MODEL_VERSION, PROBE_KEY,
    SCHEMA_KEY,
};
use crate::changes::NoChanges;
use crate::error::{Result, StoreError};
use crate::space::SpaceReserve;
use crate::stores::{Database, Stores, SCHEMA_VERSION};
use crate::types::{ImageRecord, JobRecord, JobState, ModelVersionRecord, PredictionRecord};

impl SledStore {
    /// Opens (or creates) the database under `dir`, checking the schema version, with sled's
    /// default page cache (1 GiB).
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with_cache(dir, sled::Config::new().cache_capacity)
    }

    /// Like [`SledStore::open`], with sled's page cache limited to `cache_bytes`. The cache fills
    /// as the database grows (every prediction is a record), so this bounds what a long-running
    /// server holds in memory for the database.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Engine(e.to_string()))?;
        let db = open_db(&dir.join("db"), cache_bytes)?;
        let tree = |name: &str| db.open_tree(name);
        let store = Self {
            meta: tree("meta")?,
            images: tree("images")?,
            image_blobs: tree("image_blobs")?,
            image_hashes: tree("image_hashes")?,
            predictions: tree("predictions")?,
            prediction_stats: tree("prediction_stats")?,
            models: tree("models")?,
            model_blobs: tree("model_blobs")?,
            activations: tree("activations")?,
            jobs: tree("jobs")?,
            active_jobs: tree("active_jobs")?,
            job_queue: tree("job_queue")?,
            job_workers: tree("job_workers")?,
            features: tree("features")?,
            review_items: tree("review_items")?,
            review_rank: tree("review_rank")?,
            review_age: tree("review_age")?,
            review_blobs: tree("review_blobs")?,
            review_hashes: tree("review_hashes")?,
            rollouts: tree("rollouts")?,
            review_lock: Arc::default(),
            db,
            reserve: SpaceReserve::new(dir, 0),
            watermark_file: dir.join("durable.json"),
            watermark_lock: Arc::default(),
        };
        store.check_schema()?;
        store.check_watermark()?;
        store.drop_task_queue()?;
        Ok(store)
    }

    /// Reads every record of every tree, decoding the typed ones: what `sprig check` runs.
    /// Returns (tree name, entries) per tree, or the first damage found.
    pub fn verify(&self) -> Result<Vec<(String, u64)>> {
        let mut report = Vec::new();
        for name in self.db.tree_names() {
            let tree = self.db.open_tree(&name)?;
            let mut entries = 0u64;
            for entry in tree.iter() {
                let (_, value) = entry?;
                match name.as_ref() {
                    b"images" => drop(decode::<ImageRecord>(&value)?),
                    b"predictions" => drop(decode::<PredictionRecord>(&value)?),
                    b"models" => drop(decode::<ModelVersionRecord>(&value)?),
                    b"jobs" => drop(decode::<JobRecord>(&value)?),
                    b"review_items" => drop(decode::<crate::review::ReviewItem>(&value)?),
                    b"rollouts" => drop(decode::<crate::rollout::RolloutRecord>(&value)?),
                    _ => {}
                }
                entries += 1;
            }
            report.push((String::from_utf8_lossy(&name).into_owned(), entries));
        }
        Ok(report)
    }

    /// The counters every acknowledged write moves forward.
    fn watermark(&self) -> Result<Vec<(String, u64)>> {
        [
            NEXT_IMAGE_ID,
            NEXT_JOB_ID,
            NEXT_MODEL_VERSION,
            NEXT_ACTIVATION,
        ]
        .iter()
        .map(|name| {
            let value = self.meta.get(name)?.map_or(1, |v| {
                u64::from_be_bytes(v.as_ref().try_into().unwrap_or([0; 8]))
            });
            Ok((String::from_utf8_lossy(name).into_owned(), value))
        })
        .collect()
    }

    /// sled recovers from damaged files by rolling back to the last intact point of its log, which
    /// silently drops writes it had acknowledged. The counters recorded at each acknowledged flush
    /// tell: any found lower now means acknowledged data is gone.
    fn check_watermark(&self) -> Result<()> {
        let Ok(text) = std::fs::read_to_string(&self.watermark_file) else {
            return Ok(()); // a data dir from before this check, or never flushed
        };
        let recorded: Vec<(String, u64)> = serde_json::from_str(&text)?;
        let now = self.watermark()?;
        for (name, was) in &recorded {
            let is = now.iter().find(|(n, _)| n == name).map_or(1, |(_, v)| *v);
            if is < *was {
                return Err(StoreError::Corrupt(format!(
                    "the database lost acknowledged writes ({name} was {was} at the last flush, \
                     {is} now): its files were damaged and it rolled back"
                )));
            }
        }
        Ok(())
    }

    fn record_watermark(&self) -> Result<()> {
        let _one_at_a_time = self
            .watermark_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let temp = self.watermark_file.with_extension("json.tmp");
        let engine = |e: std::io::Error| StoreError::Engine(e.to_string());
        let mut file = std::fs::File::create(&temp).map_err(engine)?;
        std::io::Write::write_all(&mut file, &serde_json::to_vec(&self.watermark()?)?)
            .map_err(engine)?;
        file.sync_all().map_err(engine)?;
        std::fs::rename(&temp, &self.watermark_file).map_err(engine)
    }

    /// Data dirs written before jobs and queue became one record kept queue entries apart
    /// (trees `tasks`, `task_payloads`, `task_pending`, `task_workers`, `task_meta`); the job
    /// records hold everything that mattered. Their queued jobs join the queue index, a job
    /// left running has no worker and is settled as interrupted at start-up, and the old trees
    /// go.
    fn drop_task_queue(&self) -> Result<()> {
        const OLD_TREES: [&[u8]; 5] = [
            b"tasks",
            b"task_payloads",
            b"task_pending",
            b"task_workers",
            b"task_meta",
        ];
        let names = self.db.tree_names();
        if !names.iter().any(|name| OLD_TREES.contains(&name.as_ref())) {
            return Ok(());
        }
        for value in self.jobs.iter().values() {
            let job: JobRecord = decode(&value?)?;
            if job.state == JobState::Queued {
                self.job_queue
                    .insert(job.id.to_be_bytes(), job.kind.as_bytes())?;
            }
        }
        self.job_queue.flush()?;
        for name in OLD_TREES {
            self.db.drop_tree(name)?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn check_schema(&self) -> Result<()> {
        match self.meta.get(SCHEMA_KEY)? {
            Some(bytes) => {
                let found: u32 = serde_json::from_slice(&bytes)?;
                if found != SCHEMA_VERSION {
                    return Err(StoreError::SchemaMismatch {
                        found,
                        expected: SCHEMA_VERSION,
                    });
                }
            }
            None => {
                self.meta
                    .insert(SCHEMA_KEY, serde_json::to_vec(&SCHEMA_VERSION)?)?;
            }
        }
        Ok(())
    }

    /// Keeps `bytes` of the data dir's file system free: writes that add data (images, model
    /// versions, predictions, features) are refused with [`StoreError::DiskFull`] below that.
    pub fn with_min_free(mut self, bytes: u64) -> Self {
        self.reserve.set_bytes(bytes);
        self
    }

    /// Every concern of this database as trait objects.
    pub fn into_stores(self) -> Result<Stores> {
        let store = Arc::new(self);
        Ok(Stores {
            images: store.clone(),
            predictions: store.clone(),
            models: store.clone(),
            jobs: store.clone(),
            features: store.clone(),
            reviews: store.clone(),
            rollouts: store.clone(),
            changes: Arc::new(NoChanges::default()),
            database: store,
        })
    }
}

/// Opens sled, turning its panics on damaged files (it panics on some truncated or overwritten
/// files instead of returning an error) into [`StoreError::Corrupt`].
fn open_db(path: &Path, cache_bytes: u64) -> Result<Db> {
    let config = sled::Config::new().path(path).cache_capacity(cache_bytes);
    let silent = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // A failed open leaves nothing behind to observe in a broken state: the config is dropped.
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()));
    std::panic::set_hook(silent);
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Corruption { .. })) => Err(StoreError::Corrupt(format!(
            "the database files under {} are damaged",
            path.display()
        ))),
        Ok(Err(other)) => Err(other.into()),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(StoreError::Corrupt(format!(
                "the database files under {} are damaged (sled: {detail})",
                path.display()
            )))
        }
    }
}

impl Database for SledStore {
    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        self.record_watermark()
    }

    fn check(&self) -> Result<()> {
        self.reserve.check(0)?;
        // sled keeps its first I/O error and fails every write after it: a write shows that.
        self.meta.insert(PROBE_KEY, &[1u8])?;
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    fn shared(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        let dir = self
            .watermark_file
            .parent()
            .unwrap_or(std::path::Path::new("."));
        format!("sled:{}", dir.display())
    }
}
