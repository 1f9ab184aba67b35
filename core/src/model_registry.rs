//! The model registry: which version serves, and the hot swap to a new one (load and warm it
//! up first, then one atomic pointer swap; requests in flight keep the version they started on).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use sprig_backends::{BackendPlugin, Classifier, ModelArtifact, PreparedImage};
use sprig_store::{ActivationRecord, ModelStore, ModelVersionRecord};

use crate::error::{CoreError, Result};
use crate::novelty::NoveltyScorer;

/// A model version loaded on the serving backend.
pub struct LoadedModel {
    pub record: ModelVersionRecord,
    pub classifier: Box<dyn Classifier>,
    /// Scores served embeddings against the version's training data (none for versions
    /// without a reference).
    pub novelty: Option<NoveltyScorer>,
}

impl LoadedModel {
    pub fn version(&self) -> u32 {
        self.record.version
    }

    /// The softmax temperature its served probabilities are scaled by (1: not calibrated).
    pub fn temperature(&self) -> f64 {
        self.record
            .evaluation
            .calibration
            .as_ref()
            .map_or(1.0, |c| c.temperature)
    }
}

/// Which version serves, and swapping it without dropping a request: a new version is loaded and
/// warmed up before one atomic pointer swap; requests hold an `Arc` to the version they started on.
pub struct ModelRegistry {
    models: Arc<dyn ModelStore>,
    plugin: Arc<dyn BackendPlugin>,
    active: ArcSwapOption<LoadedModel>,
    /// Serialises activations so the store's active version and the served one agree.
    activation: Mutex<()>,
}

impl ModelRegistry {
    pub fn new(models: Arc<dyn ModelStore>, plugin: Arc<dyn BackendPlugin>) -> Self {
        Self {
            models,
            plugin,
            active: ArcSwapOption::empty(),
            activation: Mutex::new(()),
        }
    }

    pub fn plugin(&self) -> &Arc<dyn BackendPlugin> {
        &self.plugin
    }

    pub fn current(&self) -> Option<Arc<LoadedModel>> {
        self.active.load_full()
    }

    /// Loads a stored version onto the backend and runs one warm-up prediction.
    pub fn load(&self, version: u32) -> Result<LoadedModel> {
        let record = self
            .models
            .get(version)?
            .ok_or_else(|| CoreError::not_found("model version", version))?;
        let bytes = self
            .models
            .artifact(version)?
            .ok_or_else(|| CoreError::not_found("model weights", version))?;
        let artifact = ModelArtifact::from_bytes(&bytes)?;
        let classifier = self.plugin.load(&artifact)?;
        let blank = PreparedImage::from_pixels(vec![
            128;
            sprig_backends::preprocess::INPUT_SIZE.pow(2)
                * 3
        ])
        .expect("blank image has the input size");
        classifier.predict(&[blank])?;
        let novelty = record.reference.as_ref().and_then(NoveltyScorer::new);
        Ok(LoadedModel {
            record,
            classifier,
            novelty,
        })
    }

    /// Loads and warms `version`, records the activation durably, then swaps it in.
    pub fn activate(&self, version: u32, reason: &str) -> Result<ActivationRecord> {
        let _guard = self
            .activation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let started = Instant::now();
        let loaded = self.load(version)?;
        tracing::info!(
            version,
            backend = self.plugin.name(),
            ms = started.elapsed().as_millis() as u64,
            "loaded and warmed up; swapping it in"
        );
        let entry = self.models.activate(version, reason)?;
        self.active.store(Some(Arc::new(loaded)));
        Ok(entry)
    }

    /// Serves the version the store says is active, if another process activated a different
    /// one (replicas on one database): load, warm, swap, no new log entry. Returns the version
    /// swapped in, if any. Nothing to follow before the first model is served (start-up loads it).
    pub fn follow(&self) -> Result<Option<u32>> {
        let _guard = self
            .activation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(serving) = self.current().map(|m| m.version()) else {
            return Ok(None);
        };
        match self.models.active()? {
            Some(version) if version != serving => {
                let started = Instant::now();
                self.active.store(Some(Arc::new(self.load(version)?)));
                tracing::info!(
                    from = serving,
                    to = version,
                    ms = started.elapsed().as_millis() as u64,
                    "another replica activated a version; swapped it in"
                );
                Ok(Some(version))
            }
            _ => Ok(None),
        }
    }

    /// Appends a decision that kept `version` active (a rollout rolled back) to the activation
    /// log; nothing is loaded or swapped. Refused if `version` is no longer the active one.
    pub fn record_kept(&self, version: u32, reason: &str) -> Result<Option<ActivationRecord>> {
        let _guard = self
            .activation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.models.active()? != Some(version) {
            return Ok(None);
        }
        Ok(Some(self.models.activate(version, reason)?))
    }

    /// Loads and warms `version` and makes it active only if no version is active yet (several
    /// replicas bootstrapping one database: the first wins). Returns whether it was.
    pub fn activate_first(&self, version: u32, reason: &str) -> Result<bool> {
        let _guard = self
            .activation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let loaded = self.load(version)?;
        if self.models.activate_first(version, reason)?.is_none() {
            return Ok(false);
        }
        self.active.store(Some(Arc::new(loaded)));
        Ok(true)
    }

    /// At start-up: serve the version the store says is active (no new log entry).
    pub fn restore(&self) -> Result<Option<u32>> {
        let _guard = self
            .activation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(version) = self.models.active()? else {
            return Ok(None);
        };
        self.active.store(Some(Arc::new(self.load(version)?)));
        Ok(Some(version))
    }
}
