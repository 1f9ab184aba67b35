//! sprig as a library, without HTTP: the counterpart of the original project's
//! `PredictionService(model_path, class_indices_path).predict_image(path)`.
//!
//! [`Model`] is one trained version — the one active in a data dir, or a file written by
//! `sprig models export` — that classifies image files or bytes on the calling thread, with the
//! calibrated confidences the server answers with (a bare model file has no temperature: its
//! confidences are the model's own).
//! [`crate::Engine::open_data_dir`] opens a data dir with every use case the server has
//! (import, train, activate, predict with the history recorded).

use std::path::Path;

use sprig_backends::{decode, prepare, select_backend, Classifier, DecodeLimits, ModelArtifact};
use sprig_backends::{training::argmax, views::content_seed, RuntimeOptions};
use sprig_store::{ModelVersionRecord, SledStore, Stores};

use crate::batcher::InferenceObserver;
use crate::calibration::scale;
use crate::engine::{Engine, EngineConfig};
use crate::error::{CoreError, Result};
use crate::ingest::content_hash;
use crate::pipeline::PipelineObserver;

/// A trained version loaded on a backend, ready to classify images.
pub struct Model {
    version: Option<u32>,
    classifier: Box<dyn Classifier>,
    /// The version's calibration temperature (1: none).
    temperature: f64,
    limits: DecodeLimits,
}

/// One image's classification.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub class: String,
    pub confidence: f32,
    /// Every class with its probability, in the model's class order.
    pub probabilities: Vec<(String, f32)>,
}

impl Model {
    /// The version active in the data dir at `dir`, on `backend` (`auto`, `flex`, …). The data
    /// dir is only read, and released before this returns; no server may hold it meanwhile.
    pub fn from_data_dir(dir: &Path, backend: &str) -> Result<Model> {
        let stores = SledStore::open(dir)?.into_stores()?;
        let version = stores.models.active()?.ok_or(CoreError::NoActiveModel)?;
        let record = stores
            .models
            .get(version)?
            .ok_or_else(|| CoreError::not_found("model version", version))?;
        let bytes = stores
            .models
            .artifact(version)?
            .ok_or_else(|| CoreError::not_found("model weights", version))?;
        Self::load(&bytes, Some(version), temperature(&record), backend)
    }

    /// A version written by `sprig models export`: a bundle (`--format bundle`, calibrated) or a
    /// bare model file (the default format; confidences as the model computes them).
    pub fn from_file(path: &Path, backend: &str) -> Result<Model> {
        let bytes = std::fs::read(path)
            .map_err(|e| CoreError::InvalidRequest(format!("{}: {e}", path.display())))?;
        match crate::bundle::unpack(&bytes) {
            Some(unpacked) => {
                let (record, artifact) = unpacked?;
                Self::load(artifact, None, temperature(&record), backend)
            }
            None => Self::load(&bytes, None, 1.0, backend),
        }
    }

    fn load(bytes: &[u8], version: Option<u32>, temperature: f64, backend: &str) -> Result<Model> {
        let artifact = ModelArtifact::from_bytes(bytes)?;
        let selection = select_backend(backend, &RuntimeOptions::default())?;
        Ok(Model {
            version,
            classifier: selection.plugin.load(&artifact)?,
            temperature,
            limits: DecodeLimits::default(),
        })
    }

    /// The data dir's version number (`None` for a model file).
    pub fn version(&self) -> Option<u32> {
        self.version
    }

    pub fn classes(&self) -> &[String] {
        self.classifier.classes()
    }

    /// Classifies an image file (JPEG, PNG, GIF, BMP or WebP).
    pub fn predict_file(&self, path: impl AsRef<Path>) -> Result<Prediction> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| CoreError::InvalidRequest(format!("{}: {e}", path.display())))?;
        self.predict_bytes(&bytes)
    }

    /// Classifies an image held in memory, validated as strictly as an upload.
    pub fn predict_bytes(&self, bytes: &[u8]) -> Result<Prediction> {
        let image =
            prepare(&decode(bytes, &self.limits)?.rgb).seeded(content_seed(&content_hash(bytes)));
        let probabilities = scale(
            &self.classifier.predict(&[image])?.remove(0),
            self.temperature,
        );
        let index = argmax(&probabilities);
        let classes = self.classifier.classes();
        Ok(Prediction {
            class: classes[index].clone(),
            confidence: probabilities[index],
            probabilities: classes.iter().cloned().zip(probabilities).collect(),
        })
    }
}

fn temperature(record: &ModelVersionRecord) -> f64 {
    record
        .evaluation
        .calibration
        .as_ref()
        .map_or(1.0, |c| c.temperature)
}

/// No metrics to feed and nothing to show: what a program embedding sprig starts with.
pub struct Quiet;

impl InferenceObserver for Quiet {
    fn batch_done(&self, _model_version: u32, _batch_size: usize, _seconds: f64) {}
}

impl PipelineObserver for Quiet {
    fn progress(&mut self, _percent: f64, _message: &str) {}
    fn epoch(&mut self, _metrics: &sprig_store::EpochMetrics, _max_epochs: u32) {}
    fn cancelled(&self) -> bool {
        false
    }
}

impl Engine {
    /// Opens the data dir at `dir` (created if new) with every use case the server has. One
    /// process per data dir: this fails while a server or another engine holds it.
    pub fn open_data_dir(dir: &Path, config: EngineConfig) -> Result<Engine> {
        let stores: Stores = SledStore::open(dir)?.into_stores()?;
        Engine::open(stores, config, std::sync::Arc::new(Quiet))
    }
}
