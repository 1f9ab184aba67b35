//! The sled implementation: one database per data dir, one tree per concern, JSON records under
//! big-endian u64 keys, and sled transactions wherever several trees must change together.

use std::path::Path;
use std::sync::Arc;

use chrono::{Timelike, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::{Db, Transactional, Tree};

use crate::error::StoreError;
use crate::queue::SledTaskQueue;
use crate::space::SpaceReserve;
use crate::types::*;
use crate::{
    Database, FeatureCache, ImageStore, JobStore, ModelStore, PredictionStore, Result,
    SettingsStore, Stores, SCHEMA_VERSION,
};

const SCHEMA_KEY: &[u8] = b"schema_version";
/// Written by readiness checks to find out whether the database still takes writes.
const PROBE_KEY: &[u8] = b"write_probe";
const NEXT_IMAGE_ID: &[u8] = b"next_image_id";
const NEXT_JOB_ID: &[u8] = b"next_job_id";
const NEXT_MODEL_VERSION: &[u8] = b"next_model_version";
const NEXT_ACTIVATION: &[u8] = b"next_activation";
const ACTIVE_MODEL: &[u8] = b"active_model";
const PREDICTION_STATS: &[u8] = b"stats";

/// The sled database behind every store of a data dir.
#[derive(Clone)]
pub struct SledStore {
    db: Db,
    reserve: SpaceReserve,
    /// `durable.json` beside the database: the counters as of the last acknowledged flush.
    watermark_file: std::path::PathBuf,
    /// Concurrent flushes write it one at a time (through one temp file).
    watermark_lock: Arc<std::sync::Mutex<()>>,
    meta: Tree,
    images: Tree,
    image_blobs: Tree,
    image_hashes: Tree,
    predictions: Tree,
    prediction_stats: Tree,
    models: Tree,
    model_blobs: Tree,
    activations: Tree,
    jobs: Tree,
    active_jobs: Tree,
    features: Tree,
    settings: Tree,
}

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
            features: tree("features")?,
            settings: tree("settings")?,
            db,
            reserve: SpaceReserve::new(dir, 0),
            watermark_file: dir.join("durable.json"),
            watermark_lock: Arc::default(),
        };
        store.check_schema()?;
        store.check_watermark()?;
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
        let tasks = Arc::new(SledTaskQueue::open(&self.db)?);
        let store = Arc::new(self);
        Ok(Stores {
            images: store.clone(),
            predictions: store.clone(),
            models: store.clone(),
            jobs: store.clone(),
            tasks,
            features: store.clone(),
            settings: store.clone(),
            database: store,
        })
    }
}

fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn id_of(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| StoreError::Corrupt("key is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(bytes))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    Ok(serde_json::from_slice(bytes)?)
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records serialise to JSON")
}

/// Aborts a transaction with a store error.
fn abort<T>(error: StoreError) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(error))
}

fn tx_decode<T: DeserializeOwned>(
    bytes: &[u8],
) -> std::result::Result<T, ConflictableTransactionError<StoreError>> {
    serde_json::from_slice(bytes).map_err(|e| ConflictableTransactionError::Abort(e.into()))
}

fn from_tx(error: TransactionError<StoreError>) -> StoreError {
    match error {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => e.into(),
    }
}

/// Reads and increments a counter inside a transaction; counters start at 1.
fn next_counter(
    meta: &TransactionalTree,
    name: &[u8],
) -> std::result::Result<u64, UnabortableTransactionError> {
    let next = match meta.get(name)? {
        Some(bytes) => u64::from_be_bytes(bytes.as_ref().try_into().unwrap_or([0; 8])).max(1),
        None => 1,
    };
    meta.insert(name, &(next + 1).to_be_bytes())?;
    Ok(next)
}

fn scan<T: DeserializeOwned>(tree: &Tree) -> Result<Vec<T>> {
    tree.iter().values().map(|v| decode(&v?)).collect()
}

fn paginate<T>(items: impl Iterator<Item = Result<T>>, page: PageRequest) -> Result<Page<T>> {
    let mut total = 0u64;
    let mut selected = Vec::new();
    for item in items {
        let item = item?;
        if total as usize >= page.offset() && selected.len() < page.per_page as usize {
            selected.push(item);
        }
        total += 1;
    }
    Ok(Page {
        items: selected,
        total,
    })
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

impl ImageStore for SledStore {
    fn insert(&self, image: NewImage) -> Result<InsertOutcome> {
        self.reserve.check(image.bytes.len() as u64)?;
        let trees = (
            &self.meta,
            &self.images,
            &self.image_blobs,
            &self.image_hashes,
        );
        trees
            .transaction(|(meta, images, blobs, hashes)| {
                if let Some(existing) = hashes.get(image.sha256.as_bytes())? {
                    let record = images.get(existing)?.ok_or_else(|| {
                        ConflictableTransactionError::Abort(StoreError::Corrupt(
                            "hash index points to a missing image".into(),
                        ))
                    })?;
                    return Ok(InsertOutcome::Duplicate(tx_decode(&record)?));
                }
                let id = next_counter(meta, NEXT_IMAGE_ID)?;
                let record = ImageRecord {
                    id,
                    class: image.class.clone(),
                    width: image.width,
                    height: image.height,
                    format: image.format.clone(),
                    content_type: image.content_type.clone(),
                    byte_size: image.bytes.len() as u64,
                    sha256: image.sha256.clone(),
                    source: image.source.clone(),
                    filename: image.filename.clone(),
                    split: image.split,
                    created_at: image.created_at,
                };
                images.insert(&key(id), encode(&record))?;
                blobs.insert(&key(id), image.bytes.as_slice())?;
                hashes.insert(image.sha256.as_bytes(), &key(id))?;
                Ok(InsertOutcome::Stored(record))
            })
            .map_err(from_tx)
    }

    fn get(&self, id: u64) -> Result<Option<ImageRecord>> {
        self.images.get(key(id))?.map(|v| decode(&v)).transpose()
    }

    fn find_by_hash(&self, sha256: &str) -> Result<Option<ImageRecord>> {
        match self.image_hashes.get(sha256.as_bytes())? {
            Some(id) => ImageStore::get(self, id_of(&id)?),
            None => Ok(None),
        }
    }

    fn content(&self, id: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.image_blobs.get(key(id))?.map(|v| v.to_vec()))
    }

    fn list(&self, filter: &ImageFilter, page: PageRequest) -> Result<Page<ImageRecord>> {
        let matching = self
            .images
            .iter()
            .values()
            .map(|v| decode::<ImageRecord>(&v?))
            .filter(|r| match r {
                Ok(r) => {
                    filter.class.as_ref().is_none_or(|c| &r.class == c)
                        && filter.split.is_none_or(|s| r.split == s)
                }
                Err(_) => true,
            });
        paginate(matching, page)
    }

    fn all(&self) -> Result<Vec<ImageRecord>> {
        scan(&self.images)
    }

    fn relabel(&self, id: u64, class: &str) -> Result<Option<ImageRecord>> {
        self.images
            .transaction(|images| {
                let Some(bytes) = images.get(key(id))? else {
                    return Ok(None);
                };
                let mut record: ImageRecord = tx_decode(&bytes)?;
                record.class = class.to_string();
                images.insert(&key(id), encode(&record))?;
                Ok(Some(record))
            })
            .map_err(from_tx)
    }

    fn delete(&self, id: u64) -> Result<Option<ImageRecord>> {
        (&self.images, &self.image_blobs, &self.image_hashes)
            .transaction(|(images, blobs, hashes)| {
                let Some(bytes) = images.remove(&key(id))? else {
                    return Ok(None);
                };
                let record: ImageRecord = tx_decode(&bytes)?;
                blobs.remove(&key(id))?;
                hashes.remove(record.sha256.as_bytes())?;
                Ok(Some(record))
            })
            .map_err(from_tx)
    }

    fn delete_class(&self, class: &str) -> Result<u64> {
        let victims: Vec<ImageRecord> = self
            .all()?
            .into_iter()
            .filter(|r| r.class == class)
            .collect();
        (&self.images, &self.image_blobs, &self.image_hashes)
            .transaction(|(images, blobs, hashes)| {
                for record in &victims {
                    images.remove(&key(record.id))?;
                    blobs.remove(&key(record.id))?;
                    hashes.remove(record.sha256.as_bytes())?;
                }
                Ok(())
            })
            .map_err(from_tx)?;
        Ok(victims.len() as u64)
    }

    fn classes(&self) -> Result<Vec<ClassSummary>> {
        Ok(ImageStore::stats(self)?.classes)
    }

    fn stats(&self) -> Result<DatasetStats> {
        let records: Vec<ImageRecord> = self.all()?;
        Ok(dataset_stats(&records))
    }

    fn count(&self) -> Result<u64> {
        Ok(self.images.len() as u64)
    }
}

/// Aggregates image records into the chart statistics.
pub(crate) fn dataset_stats(records: &[ImageRecord]) -> DatasetStats {
    use std::collections::BTreeMap;
    let mut classes: BTreeMap<&str, ClassSummary> = BTreeMap::new();
    let mut per_day: BTreeMap<String, u64> = BTreeMap::new();
    let (mut bytes, mut width, mut height) = (0u64, 0f64, 0f64);
    for record in records {
        let summary = classes
            .entry(&record.class)
            .or_insert_with(|| ClassSummary {
                name: record.class.clone(),
                images: 0,
                train: 0,
                validation: 0,
                bytes: 0,
            });
        summary.images += 1;
        summary.bytes += record.byte_size;
        match record.split {
            Split::Train => summary.train += 1,
            Split::Validation => summary.validation += 1,
        }
        *per_day
            .entry(record.created_at.format("%Y-%m-%d").to_string())
            .or_default() += 1;
        bytes += record.byte_size;
        width += f64::from(record.width);
        height += f64::from(record.height);
    }
    let n = records.len().max(1) as f64;
    DatasetStats {
        total_images: records.len() as u64,
        total_bytes: bytes,
        classes: classes.into_values().collect(),
        uploads_per_day: per_day.into_iter().collect(),
        mean_width: width / n,
        mean_height: height / n,
        mean_bytes: bytes as f64 / n,
    }
}

impl PredictionStore for SledStore {
    fn record(&self, predictions: Vec<PredictionRecord>) -> Result<Vec<u64>> {
        // A record is well under 4 KiB (names are capped at 255 characters).
        self.reserve.check(predictions.len() as u64 * 4096)?;
        let mut predictions = predictions;
        for prediction in &mut predictions {
            if prediction.id == 0 {
                prediction.id = self.next_id()?;
            }
        }
        (&self.predictions, &self.prediction_stats)
            .transaction(|(log, stats_tree)| {
                let mut stats: PredictionStats = match stats_tree.get(PREDICTION_STATS)? {
                    Some(bytes) => tx_decode(&bytes)?,
                    None => PredictionStats::default(),
                };
                for prediction in &predictions {
                    log.insert(&key(prediction.id), encode(prediction))?;
                    add_to_stats(&mut stats, prediction);
                }
                stats_tree.insert(PREDICTION_STATS, encode(&stats))?;
                Ok(())
            })
            .map_err(from_tx)?;
        Ok(predictions.iter().map(|p| p.id).collect())
    }

    fn list(&self, page: PageRequest) -> Result<Page<PredictionRecord>> {
        let total = self.predictions.len() as u64;
        let items = self
            .predictions
            .iter()
            .rev()
            .skip(page.offset())
            .take(page.per_page as usize)
            .map(|entry| decode(&entry?.1))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { items, total })
    }

    fn stats(&self) -> Result<PredictionStats> {
        let mut stats: PredictionStats = match self.prediction_stats.get(PREDICTION_STATS)? {
            Some(bytes) => decode(&bytes)?,
            None => PredictionStats::default(),
        };
        stats.confidence_histogram.resize(CONFIDENCE_BUCKETS, 0);
        Ok(stats)
    }

    fn next_id(&self) -> Result<u64> {
        // sled's generator is monotonic across restarts, so ids order predictions by time.
        Ok(self.db.generate_id()? + 1)
    }

    fn prune(&self, max_count: u64, older_than: Option<Timestamp>) -> Result<u64> {
        let mut excess = (self.predictions.len() as u64).saturating_sub(max_count);
        let mut deleted = 0;
        // Keys are ids, which increase with time: oldest first.
        for entry in self.predictions.iter() {
            let (id, value) = entry?;
            if excess > 0 {
                excess -= 1;
            } else {
                let Some(cutoff) = older_than else { break };
                if decode::<PredictionRecord>(&value)?.created_at >= cutoff {
                    break;
                }
            }
            self.predictions.remove(id)?;
            deleted += 1;
        }
        Ok(deleted)
    }
}

fn add_to_stats(stats: &mut PredictionStats, prediction: &PredictionRecord) {
    stats.total += 1;
    *stats
        .per_class
        .entry(prediction.predicted_class.clone())
        .or_default() += 1;
    *stats
        .per_model_version
        .entry(prediction.model_version)
        .or_default() += 1;
    let hour = prediction
        .created_at
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(prediction.created_at);
    *stats
        .per_hour
        .entry(hour.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .or_default() += 1;
    stats.confidence_histogram.resize(CONFIDENCE_BUCKETS, 0);
    let bucket = ((prediction.confidence.clamp(0.0, 1.0) * CONFIDENCE_BUCKETS as f32) as usize)
        .min(CONFIDENCE_BUCKETS - 1);
    stats.confidence_histogram[bucket] += 1;
}

impl ModelStore for SledStore {
    fn create(&self, version: NewModelVersion) -> Result<ModelVersionRecord> {
        self.reserve.check(version.artifact.len() as u64)?;
        (&self.meta, &self.models, &self.model_blobs)
            .transaction(|(meta, models, blobs)| {
                let number = next_counter(meta, NEXT_MODEL_VERSION)?;
                let mut record = version.record.clone();
                record.version = u32::try_from(number).unwrap_or(u32::MAX);
                models.insert(&key(number), encode(&record))?;
                blobs.insert(&key(number), version.artifact.as_slice())?;
                Ok(record)
            })
            .map_err(from_tx)
    }

    fn get(&self, version: u32) -> Result<Option<ModelVersionRecord>> {
        self.models
            .get(key(u64::from(version)))?
            .map(|v| decode(&v))
            .transpose()
    }

    fn list(&self) -> Result<Vec<ModelVersionRecord>> {
        scan(&self.models)
    }

    fn artifact(&self, version: u32) -> Result<Option<Vec<u8>>> {
        Ok(self
            .model_blobs
            .get(key(u64::from(version)))?
            .map(|v| v.to_vec()))
    }

    fn active(&self) -> Result<Option<u32>> {
        self.meta.get(ACTIVE_MODEL)?.map(|v| decode(&v)).transpose()
    }

    fn activate(&self, version: u32, reason: &str) -> Result<ActivationRecord> {
        (&self.meta, &self.models, &self.activations)
            .transaction(|(meta, models, log)| {
                if models.get(key(u64::from(version)))?.is_none() {
                    return abort(StoreError::NotFound {
                        what: "model version",
                        id: version.to_string(),
                    });
                }
                let from: Option<u32> = match meta.get(ACTIVE_MODEL)? {
                    Some(bytes) => Some(tx_decode(&bytes)?),
                    None => None,
                };
                let sequence = next_counter(meta, NEXT_ACTIVATION)?;
                let entry = ActivationRecord {
                    sequence,
                    at: Utc::now(),
                    from,
                    to: version,
                    reason: reason.into(),
                };
                meta.insert(ACTIVE_MODEL, encode(&version))?;
                log.insert(&key(sequence), encode(&entry))?;
                Ok(entry)
            })
            .map_err(from_tx)
    }

    fn history(&self) -> Result<Vec<ActivationRecord>> {
        scan(&self.activations)
    }
}

impl JobStore for SledStore {
    fn create_exclusive(&self, kind: &str, params: serde_json::Value) -> Result<JobRecord> {
        (&self.meta, &self.jobs, &self.active_jobs)
            .transaction(|(meta, jobs, active)| {
                if let Some(existing) = active.get(kind.as_bytes())? {
                    let job: JobRecord = match jobs.get(&existing)? {
                        Some(bytes) => tx_decode(&bytes)?,
                        None => {
                            return abort(StoreError::Corrupt("active job index is stale".into()))
                        }
                    };
                    if !job.state.is_terminal() {
                        return abort(StoreError::Conflict {
                            kind: kind.into(),
                            job_id: job.id,
                        });
                    }
                }
                let id = next_counter(meta, NEXT_JOB_ID)?;
                let job = JobRecord::new(id, kind, params.clone(), Utc::now());
                jobs.insert(&key(id), encode(&job))?;
                active.insert(kind.as_bytes(), &key(id))?;
                Ok(job)
            })
            .map_err(from_tx)
    }

    fn get(&self, id: u64) -> Result<Option<JobRecord>> {
        self.jobs.get(key(id))?.map(|v| decode(&v)).transpose()
    }

    fn list(&self, page: PageRequest) -> Result<Page<JobRecord>> {
        paginate(self.jobs.iter().rev().map(|entry| decode(&entry?.1)), page)
    }

    fn update(&self, id: u64, change: &mut dyn FnMut(&mut JobRecord)) -> Result<JobRecord> {
        // sled may retry the closure on conflict, so the change is applied to a fresh copy each time.
        let change = std::cell::RefCell::new(change);
        (&self.jobs, &self.active_jobs)
            .transaction(|(jobs, active)| {
                let Some(bytes) = jobs.get(key(id))? else {
                    return abort(StoreError::NotFound {
                        what: "job",
                        id: id.to_string(),
                    });
                };
                let mut job: JobRecord = tx_decode(&bytes)?;
                (change.borrow_mut())(&mut job);
                jobs.insert(&key(id), encode(&job))?;
                if job.state.is_terminal()
                    && active.get(job.kind.as_bytes())?.as_deref() == Some(&key(id)[..])
                {
                    active.remove(job.kind.as_bytes())?;
                }
                Ok(job)
            })
            .map_err(from_tx)
    }

    fn active(&self, kind: &str) -> Result<Option<JobRecord>> {
        match self.active_jobs.get(kind.as_bytes())? {
            Some(id) => Ok(JobStore::get(self, id_of(&id)?)?.filter(|j| !j.state.is_terminal())),
            None => Ok(None),
        }
    }

    fn count_by_state(&self) -> Result<Vec<(JobState, u64)>> {
        let mut counts: Vec<(JobState, u64)> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
        for job in scan::<JobRecord>(&self.jobs)? {
            if let Some(entry) = counts.iter_mut().find(|(s, _)| *s == job.state) {
                entry.1 += 1;
            }
        }
        Ok(counts)
    }
}

fn feature_key(key: &FeatureKey) -> Vec<u8> {
    format!("{}/{}/{}", key.backbone, key.sha256, key.view).into_bytes()
}

impl FeatureCache for SledStore {
    fn get(&self, key: &FeatureKey) -> Result<Option<Vec<f32>>> {
        Ok(self.features.get(feature_key(key))?.map(|bytes| {
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }))
    }

    fn put(&self, entries: Vec<(FeatureKey, Vec<f32>)>) -> Result<()> {
        let incoming = entries.iter().map(|(_, v)| v.len() as u64 * 4).sum();
        self.reserve.check(incoming)?;
        let mut batch = sled::Batch::default();
        for (key, values) in entries {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            batch.insert(feature_key(&key), bytes);
        }
        Ok(self.features.apply_batch(batch)?)
    }

    fn count(&self) -> Result<u64> {
        Ok(self.features.len() as u64)
    }
}

impl SettingsStore for SledStore {
    fn get(&self, key: &str) -> Result<Option<serde_json::Value>> {
        self.settings
            .get(key.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    fn set(&self, key: &str, value: serde_json::Value) -> Result<()> {
        self.settings.insert(key.as_bytes(), encode(&value))?;
        Ok(())
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
}
