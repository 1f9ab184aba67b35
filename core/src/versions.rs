//! Model versions as users see them: the catalog, the activation log, and activation itself
//! (the hot swap lives in [`crate::model_registry::ModelRegistry`]).

use sprig_store::{ActivationRecord, ModelVersionRecord};

use crate::engine::Engine;
use crate::error::{CoreError, Result};

/// Every stored version, oldest first, and which one is active.
#[derive(Debug)]
pub struct ModelCatalog {
    pub active: Option<u32>,
    pub versions: Vec<ModelVersionRecord>,
}

/// An activation that happened, with the version now serving.
#[derive(Debug)]
pub struct Activated {
    pub activation: ActivationRecord,
    pub model: ModelVersionRecord,
}

impl Engine {
    pub fn model_versions(&self) -> Result<ModelCatalog> {
        Ok(ModelCatalog {
            active: self.stores.models.active()?,
            versions: self.stores.models.list()?,
        })
    }

    /// One version's record, and the active version number.
    pub fn model_version(&self, version: u32) -> Result<(ModelVersionRecord, Option<u32>)> {
        let record = self
            .stores
            .models
            .get(version)?
            .ok_or_else(|| CoreError::not_found("model version", version))?;
        Ok((record, self.stores.models.active()?))
    }

    /// The append-only activation log, oldest first.
    pub fn activation_history(&self) -> Result<Vec<ActivationRecord>> {
        Ok(self.stores.models.history()?)
    }

    /// The version's self-contained model file, as `sprig models export` writes it and
    /// [`crate::embed::Model::from_file`] reads it; checked to parse before it is handed out.
    pub fn model_file(&self, version: u32) -> Result<Vec<u8>> {
        let bytes = self
            .stores
            .models
            .artifact(version)?
            .ok_or_else(|| CoreError::not_found("model version", version))?;
        sprig_backends::ModelArtifact::from_bytes(&bytes)?;
        Ok(bytes)
    }

    /// The version serving predictions now, if any.
    pub fn serving_version(&self) -> Option<u32> {
        self.registry.current().map(|m| m.version())
    }

    /// Loads and warms `version`, records the activation, swaps it in (requests in flight finish
    /// on the version they started with), then hands the memory loading freed back to the
    /// system. Runs off the async runtime.
    pub async fn activate(&self, version: u32, reason: &str) -> Result<Activated> {
        let registry = self.registry.clone();
        let reason = reason.to_string();
        let activation = tokio::task::spawn_blocking(move || {
            let activation = registry.activate(version, &reason);
            crate::memory::release_freed_memory();
            activation
        })
        .await
        .map_err(|_| CoreError::ShuttingDown)??;
        let (model, _) = self.model_version(version)?;
        Ok(Activated { activation, model })
    }
}
