//! The training pipeline shared by the first-start bootstrap, retrain jobs and `sprig train`:
//! snapshot the data, compute (or reuse cached) backbone features, train the head, evaluate on the
//! validation split and store the result as an immutable model version.

mod activation;
mod config;
mod cross_validation;
mod data_set;
mod features;
mod folds;
mod out_of_fold;
mod run;

use std::collections::BTreeMap;
use std::sync::Arc;

use sprig_backends::{BackendPlugin, DecodeLimits};
use sprig_store::{EpochMetrics, ModelVersionRecord, Stores};

pub use activation::{activation_decision, SamePhotosScore};
pub use config::{ActivationPolicy, FineTuneMode, TrainingConfig, TrainingOverrides};
pub use folds::{fold_of, CrossValidation, FoldScore, Spread, FOLDS};

/// What a pipeline run reports while it works.
pub trait PipelineObserver: Send {
    /// Overall progress 0–100 and a human-readable phase message.
    fn progress(&mut self, percent: f64, message: &str);
    fn epoch(&mut self, metrics: &EpochMetrics, max_epochs: u32);
    /// Polled between batches: true stops the run (cooperative cancellation).
    fn cancelled(&self) -> bool;
}

/// Result of a pipeline run.
#[derive(Debug)]
pub struct TrainedVersion {
    pub version: ModelVersionRecord,
    /// Backbone forward passes this run needed (features not found in the cache).
    pub features_computed: usize,
    pub features_reused: usize,
    /// Milliseconds per phase (`features_ms`, `training_ms`, `evaluation_ms`).
    pub timings_ms: BTreeMap<String, u64>,
}

/// Runs the training pipeline on one backend.
#[derive(Clone)]
pub struct Pipeline {
    stores: Stores,
    plugin: Arc<dyn BackendPlugin>,
    decode_limits: DecodeLimits,
}

const FEATURES_SHARE: f64 = 40.0;
/// Images per forward pass when evaluating a fine-tuned model on images.
const PREDICT_BATCH: usize = 16;
const TRAINING_SHARE: f64 = 55.0;

impl Pipeline {
    pub fn new(
        stores: Stores,
        plugin: Arc<dyn BackendPlugin>,
        decode_limits: DecodeLimits,
    ) -> Self {
        Self {
            stores,
            plugin,
            decode_limits,
        }
    }
}
