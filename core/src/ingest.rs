//! Getting labelled images in: strict validation before anything is stored, dedup by content
//! hash, deterministic split, and directory import.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sprig_backends::{decode, DecodeLimits};
use sprig_store::{ImageRecord, ImageStore, InsertOutcome, NewImage, Split};
use tokio::sync::Semaphore;

use crate::error::{CoreError, Result};

/// Limits applied to every incoming image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestLimits {
    /// Largest accepted file, in bytes.
    pub max_file_bytes: u64,
    /// Largest accepted width × height.
    pub max_pixels: u64,
    /// Largest accepted width or height.
    pub max_dimension: u32,
    /// Share of images (by content hash) assigned to the validation split, in percent.
    pub validation_percent: u8,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_file_bytes: 20 * 1024 * 1024,
            max_pixels: 40_000_000,
            max_dimension: 12_000,
            validation_percent: 20,
        }
    }
}

impl IngestLimits {
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_pixels: self.max_pixels,
            max_dimension: self.max_dimension,
            ..DecodeLimits::default()
        }
    }
}

/// What happened to one file.
#[derive(Debug)]
pub enum IngestOutcome {
    Stored(ImageRecord),
    Duplicate(ImageRecord),
    Rejected(CoreError),
}

/// One file of a multi-file ingest, as the caller read it.
pub struct IncomingFile {
    pub filename: Option<String>,
    /// The bytes, or why they could not be read: the file is rejected, the others go on.
    pub bytes: Result<Vec<u8>>,
}

/// One file's outcome, named as it was stored.
#[derive(Debug)]
pub struct IngestedFile {
    pub filename: Option<String>,
    pub outcome: IngestOutcome,
}

/// The outcome of every file of one ingest, in the order they came.
#[derive(Debug)]
pub struct IngestReport {
    pub class: String,
    pub files: Vec<IngestedFile>,
}

impl IngestReport {
    fn count(&self, matches: fn(&IngestOutcome) -> bool) -> u64 {
        self.files.iter().filter(|f| matches(&f.outcome)).count() as u64
    }

    pub fn stored(&self) -> u64 {
        self.count(|o| matches!(o, IngestOutcome::Stored(_)))
    }

    pub fn duplicates(&self) -> u64 {
        self.count(|o| matches!(o, IngestOutcome::Duplicate(_)))
    }

    pub fn rejected(&self) -> u64 {
        self.count(|o| matches!(o, IngestOutcome::Rejected(_)))
    }
}

/// Checks a class name: 1–64 of `a-z 0-9 _ -`, starting with a letter or digit. Never a path.
pub fn validate_class_name(name: &str) -> Result<&str> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if valid {
        Ok(name)
    } else {
        Err(CoreError::InvalidClassName(name.chars().take(80).collect()))
    }
}

/// Hex SHA-256 of a file's bytes.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The bound on images decoded at once, shared by uploads and predictions: one per core. More
/// only adds blocking-pool threads (and their malloc arenas) fighting inference for the same
/// cores (measured in loadtest/LOAD_TEST_RESULTS.md), and every decode holds a full image's pixels.
pub fn decode_permits() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    ))
}

/// Validates and stores images.
#[derive(Clone)]
pub struct Ingest {
    images: Arc<dyn ImageStore>,
    limits: IngestLimits,
    decode_permits: Arc<Semaphore>,
}

impl Ingest {
    pub fn new(
        images: Arc<dyn ImageStore>,
        limits: IngestLimits,
        decode_permits: Arc<Semaphore>,
    ) -> Self {
        Self {
            images,
            limits,
            decode_permits,
        }
    }

    /// [`Ingest::ingest`] for a server: off the async runtime, once a decode permit is free.
    pub async fn ingest_async(
        &self,
        class: String,
        bytes: Vec<u8>,
        filename: Option<String>,
        source: &'static str,
    ) -> IngestOutcome {
        let Ok(_permit) = self.decode_permits.acquire().await else {
            return IngestOutcome::Rejected(CoreError::ShuttingDown);
        };
        let ingest = self.clone();
        tokio::task::spawn_blocking(move || ingest.ingest(&class, bytes, filename, source))
            .await
            .unwrap_or(IngestOutcome::Rejected(CoreError::ShuttingDown))
    }

    /// Largest accepted file: callers stop reading a body past it.
    pub fn max_file_bytes(&self) -> u64 {
        self.limits.max_file_bytes
    }

    /// Ingests a class's files one at a time as `files` yields them, so that a request's files
    /// never sit in memory together: the upload endpoint and `sprig import` both come here. A
    /// stream error aborts the rest (e.g. a broken request body); an unreadable file does not.
    pub async fn ingest_many<E: From<CoreError>>(
        &self,
        class: &str,
        source: &'static str,
        files: impl Stream<Item = std::result::Result<IncomingFile, E>>,
        on_file: &mut (dyn FnMut(&IngestedFile) + Send),
    ) -> std::result::Result<IngestReport, E> {
        let class = validate_class_name(class)?.to_string();
        let mut report = IngestReport {
            class: class.clone(),
            files: Vec::new(),
        };
        let mut files = std::pin::pin!(files);
        while let Some(file) = files.next().await {
            let file = file?;
            let filename = file.filename.map(|name| sanitize_filename(&name));
            let outcome = match file.bytes {
                Ok(bytes) => {
                    self.ingest_async(class.clone(), bytes, filename.clone(), source)
                        .await
                }
                Err(error) => IngestOutcome::Rejected(error),
            };
            let ingested = IngestedFile { filename, outcome };
            on_file(&ingested);
            report.files.push(ingested);
        }
        Ok(report)
    }

    /// Validates one file fully and stores it (blocking: decodes the image).
    /// The class name must already be valid (see [`validate_class_name`]).
    pub fn ingest(
        &self,
        class: &str,
        bytes: Vec<u8>,
        filename: Option<String>,
        source: &str,
    ) -> IngestOutcome {
        match self.try_ingest(class, bytes, filename, source) {
            Ok(InsertOutcome::Stored(record)) => IngestOutcome::Stored(record),
            Ok(InsertOutcome::Duplicate(record)) => IngestOutcome::Duplicate(record),
            Err(error) => IngestOutcome::Rejected(error),
        }
    }

    fn try_ingest(
        &self,
        class: &str,
        bytes: Vec<u8>,
        filename: Option<String>,
        source: &str,
    ) -> Result<InsertOutcome> {
        validate_class_name(class)?;
        if bytes.len() as u64 > self.limits.max_file_bytes {
            return Err(CoreError::FileTooLarge {
                size: bytes.len() as u64,
                limit: self.limits.max_file_bytes,
            });
        }
        let sha256 = content_hash(&bytes);
        if let Some(existing) = self.images.find_by_hash(&sha256)? {
            return Ok(InsertOutcome::Duplicate(existing));
        }
        let decoded = decode(&bytes, &self.limits.decode_limits())?;
        let image = NewImage {
            class: class.to_string(),
            width: decoded.width(),
            height: decoded.height(),
            format: decoded.kind.name().into(),
            content_type: decoded.kind.mime_type().into(),
            split: Split::from_hash(&sha256, self.limits.validation_percent),
            sha256,
            source: source.into(),
            filename: filename.map(|name| sanitize_filename(&name)),
            created_at: Utc::now(),
            bytes,
        };
        Ok(self.images.insert(image)?)
    }

    /// Imports a `DIR/<class>/<files>` tree through [`Ingest::ingest_many`], class by class.
    /// `progress` is called after every file with (done, total).
    pub async fn import_dir(
        &self,
        dir: &Path,
        source: &'static str,
        progress: &mut (dyn FnMut(usize, usize) + Send),
    ) -> Result<ImportSummary> {
        let files = list_class_files(dir)?;
        let total = files.len();
        let mut by_class: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for (class, path) in files {
            by_class.entry(class).or_default().push(path);
        }
        let mut summary = ImportSummary::default();
        let mut done = 0;
        for (class, paths) in by_class {
            let reads = futures::stream::iter(paths).map(|path| {
                let bytes = std::fs::read(&path)
                    .map_err(|e| CoreError::InvalidRequest(format!("{}: {e}", path.display())));
                Ok::<_, CoreError>(IncomingFile {
                    filename: path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    bytes,
                })
            });
            let report = self
                .ingest_many(&class, source, reads, &mut |_| {
                    done += 1;
                    progress(done, total);
                })
                .await?;
            summary.add(report);
        }
        Ok(summary)
    }
}

/// Keeps only the last path component and printable characters of a client-supplied name, at
/// most 255 of them. Bidirectional overrides and isolates (U+202E makes `gpj.exe` read `exe.jpg`)
/// are dropped too.
pub fn sanitize_filename(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    last.chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .take(255)
        .collect()
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `(class, file)` pairs of a `DIR/<class>/*` tree, sorted; class directories are validated.
fn list_class_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let read_dir = |path: &Path| {
        std::fs::read_dir(path)
            .map_err(|e| CoreError::InvalidRequest(format!("cannot read {}: {e}", path.display())))
    };
    let mut files = Vec::new();
    let mut class_dirs: Vec<PathBuf> = read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    class_dirs.sort();
    if class_dirs.is_empty() {
        return Err(CoreError::InvalidRequest(format!(
            "{} has no class directories (expected DIR/<class>/<images>)",
            dir.display()
        )));
    }
    for class_dir in class_dirs {
        let class = class_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        validate_class_name(&class)?;
        let mut paths: Vec<PathBuf> = read_dir(&class_dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        files.extend(paths.into_iter().map(|p| (class.clone(), p)));
    }
    Ok(files)
}

/// Per-class counts of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClassImport {
    pub stored: u64,
    pub duplicate: u64,
    pub rejected: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct ImportSummary {
    pub classes: BTreeMap<String, ClassImport>,
    /// `(file, reason)` of every rejected file.
    pub rejections: Vec<(String, String)>,
}

impl ImportSummary {
    fn add(&mut self, report: IngestReport) {
        let counts = self.classes.entry(report.class.clone()).or_default();
        counts.stored += report.stored();
        counts.duplicate += report.duplicates();
        counts.rejected += report.rejected();
        for file in report.files {
            if let IngestOutcome::Rejected(error) = file.outcome {
                let name = file.filename.unwrap_or_default();
                self.rejections
                    .push((format!("{}/{name}", report.class), error.to_string()));
            }
        }
    }

    pub fn stored(&self) -> u64 {
        self.classes.values().map(|c| c.stored).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_are_safe() {
        for good in ["healthy", "bean_rust", "a", "leaf-2", &"x".repeat(64)] {
            assert!(validate_class_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../x",
            "a/b",
            "Upper",
            "-lead",
            "_lead",
            "sp ace",
            "é",
            &"x".repeat(65),
            "..",
        ] {
            assert!(validate_class_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_file_names_lose_their_directories() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("C:\\photos\\leaf.jpg"), "leaf.jpg");
        assert_eq!(sanitize_filename("leaf\u{202E}gpj.exe"), "leafgpj.exe");
        assert_eq!(sanitize_filename(&"x".repeat(10_000)).len(), 255);
    }
}
