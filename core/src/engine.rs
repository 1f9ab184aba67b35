//! The engine: every domain service of one data dir wired together, used by the HTTP server
//! and the offline CLI commands alike.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sprig_backends::{select_backend, OnnxRuntimeOptions, OpenVinoOptions, RuntimeOptions};
use sprig_store::Stores;

use crate::batcher::{Batcher, BatchingConfig, InferenceObserver};
use crate::drift::{DriftConfig, DriftMonitor};
use crate::error::Result;
use crate::ingest::{Ingest, IngestLimits, IngestOutcome};
use crate::model_registry::ModelRegistry;
use crate::pipeline::{Pipeline, PipelineObserver, TrainingConfig};
use crate::predict::{PredictionRetention, Predictor};
use crate::retrain::Retrainer;
use crate::review::{ReviewConfig, ReviewQueue};
use crate::rollout::policy::RolloutConfig;
use crate::rollout::Rollouts;

/// Where version 1 comes from on a first start (`bootstrap.first_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FirstVersion {
    /// The version shipped with sprig (`models/first-version/`), trained on 900 licensed bean
    /// photos; when it does not fit (another backbone configured) one is trained on the demo set.
    Shipped,
    /// Trained at first start on the 60 demo photos.
    Demo,
}

/// Settings of the first-start model (config `[bootstrap]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BootstrapConfig {
    /// Import the shipped demo data set and serve version 1 when the data dir is empty.
    pub enabled: bool,
    pub first_version: FirstVersion,
    /// Training of a demo-set version 1.
    pub epochs: usize,
    pub learning_rate: f64,
    pub augment_views: u32,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        // A larger step than retrains use: the demo set is small and version 1 should be ready in seconds.
        Self {
            enabled: true,
            first_version: FirstVersion::Shipped,
            epochs: 60,
            learning_rate: 1e-3,
            augment_views: 0,
        }
    }
}

/// How replicas sharing one database keep in step (config `[cluster]`; unused by an embedded
/// store, which has one process).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// How often the job worker records that it is alive (and looks for jobs other replicas
    /// queued).
    pub heartbeat_secs: u64,
    /// A job whose worker has been silent this long is taken for dead and marked failed
    /// (`interrupted`) by another replica. At least two heartbeats.
    pub lease_secs: u64,
    /// Backstop for lost notifications: how often each replica re-reads the active version.
    pub poll_secs: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            heartbeat_secs: 5,
            lease_secs: 30,
            poll_secs: 10,
        }
    }
}

/// Engine configuration (the non-HTTP part of `sprig.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// `auto`, `flex`, `ndarray`, `wgpu`, `onnxruntime` or `openvino`.
    pub backend: String,
    pub ingest: IngestLimits,
    pub batching: BatchingConfig,
    pub training: TrainingConfig,
    pub bootstrap: BootstrapConfig,
    pub onnxruntime: OnnxRuntimeOptions,
    pub openvino: OpenVinoOptions,
    pub predictions: PredictionRetention,
    pub cluster: ClusterConfig,
    pub review: ReviewConfig,
    pub drift: DriftConfig,
    pub rollout: RolloutConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            backend: "auto".into(),
            ingest: IngestLimits::default(),
            batching: BatchingConfig::default(),
            training: TrainingConfig::default(),
            bootstrap: BootstrapConfig::default(),
            onnxruntime: OnnxRuntimeOptions::default(),
            openvino: OpenVinoOptions::default(),
            predictions: PredictionRetention::default(),
            cluster: ClusterConfig::default(),
            review: ReviewConfig::default(),
            drift: DriftConfig::default(),
            rollout: RolloutConfig::default(),
        }
    }
}

/// An image of the shipped demo data set.
pub struct DemoImage {
    pub class: String,
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// How the served model came to be at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupModel {
    Restored(u32),
    Bootstrapped {
        version: u32,
        demo_images: u64,
        /// The shipped first version (else one trained on the demo set).
        shipped: bool,
    },
    None,
}

/// Every domain service of one data dir, wired together: the one door the HTTP API and the CLI
/// go through. Its use cases live next to the services they use (`dataset`, `versions`,
/// `job_tracking`, `predict`, `health`).
pub struct Engine {
    pub(crate) stores: Stores,
    pub(crate) ingest: Ingest,
    pub(crate) registry: Arc<ModelRegistry>,
    pub(crate) predictor: Predictor,
    pub(crate) pipeline: Pipeline,
    pub(crate) retrainer: Retrainer,
    pub(crate) review: Arc<ReviewQueue>,
    pub(crate) rollouts: Arc<Rollouts>,
    pub(crate) drift: DriftMonitor,
    pub(crate) explanations: crate::explanations::Explanations,
    /// Why this backend was chosen (logged at start-up).
    backend_reason: String,
    /// Inference threads: `batching.workers`, or the backend's choice when that is 0.
    inference_workers: usize,
    config: EngineConfig,
}

impl Engine {
    /// Selects the backend and wires the services; loads no model yet.
    pub fn open(
        stores: Stores,
        config: EngineConfig,
        observer: Arc<dyn InferenceObserver>,
    ) -> Result<Engine> {
        let selection = select_backend(
            &config.backend,
            &RuntimeOptions {
                onnxruntime: config.onnxruntime,
                openvino: config.openvino,
            },
        )?;
        let plugin: Arc<dyn sprig_backends::BackendPlugin> = Arc::from(selection.plugin);
        let registry = Arc::new(ModelRegistry::new(stores.models.clone(), plugin.clone()));
        let inference_workers = match config.batching.workers {
            0 => plugin.parallel_runs(),
            workers => workers,
        };
        let batcher = Arc::new(Batcher::start(
            &config.batching,
            inference_workers,
            observer.clone(),
        ));
        let decode_permits = crate::ingest::decode_permits();
        let ingest = Ingest::new(stores.images.clone(), config.ingest, decode_permits.clone());
        let review = Arc::new(ReviewQueue::new(
            stores.reviews.clone(),
            stores.predictions.clone(),
            ingest.clone(),
            config.review,
        ));
        let rollouts = Arc::new(Rollouts::new(
            stores.rollouts.clone(),
            registry.clone(),
            config.rollout.clone(),
            inference_workers,
        ));
        let predictor = Predictor::new(
            registry.clone(),
            batcher,
            stores.predictions.clone(),
            observer,
            config.predictions,
            config.ingest,
            decode_permits,
            review.clone(),
            rollouts.clone(),
        );
        let pipeline = Pipeline::new(stores.clone(), plugin, config.ingest.decode_limits());
        let retrainer = Retrainer::new(
            stores.clone(),
            pipeline.clone(),
            registry.clone(),
            config.training.clone(),
            std::time::Duration::from_secs(config.cluster.heartbeat_secs.max(1)),
        );
        Ok(Engine {
            drift: DriftMonitor::new(config.drift),
            explanations: crate::explanations::Explanations::new(),
            ingest,
            review,
            rollouts,
            stores,
            registry,
            predictor,
            pipeline,
            retrainer,
            backend_reason: selection.reason,
            inference_workers,
            config,
        })
    }

    /// The settings this engine was opened with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn backend_name(&self) -> &'static str {
        self.registry.plugin().name()
    }

    /// Why the backend was chosen (`backend = "auto"` explains its pick).
    pub fn backend_reason(&self) -> &str {
        &self.backend_reason
    }

    /// The arithmetic the backend computes the configured backbone in (`f32`, `bf16`, `int8`).
    pub fn backend_precision(&self) -> &'static str {
        let backbone = self.config.training.backbone;
        self.registry.plugin().precision_for(backbone, false)
    }

    /// Whether retrains fine-tune the backbone by default on this backend.
    pub fn fine_tunes_by_default(&self) -> bool {
        self.config
            .training
            .fine_tunes(self.registry.plugin().is_accelerator())
    }

    pub fn inference_workers(&self) -> usize {
        self.inference_workers
    }

    /// Loads and serves the version the store says is active, if any.
    pub fn restore_active(&self) -> Result<Option<u32>> {
        self.registry.restore()
    }

    /// Serves the stored active version, or on an empty data dir imports the demo set and makes
    /// version 1 of the `shipped` bundle (`bootstrap.first_version = "shipped"`, when it fits the
    /// configured backbone), else trains it on the demo set through the same pipeline a retrain
    /// uses (blocking).
    pub fn restore_or_bootstrap(
        &self,
        demo: impl FnOnce() -> Vec<DemoImage>,
        shipped: &[u8],
        observer: &mut dyn PipelineObserver,
    ) -> Result<StartupModel> {
        if let Some(version) = self.registry.restore()? {
            return Ok(StartupModel::Restored(version));
        }
        if !self.stores.models.list()?.is_empty() && self.stores.database.shared() {
            // Versions but none active: another replica is bootstrapping (its version exists
            // and is being warmed up). Serve what it activates.
            return self.await_first_activation(observer);
        }
        if !self.config.bootstrap.enabled || !self.stores.models.list()?.is_empty() {
            return Ok(StartupModel::None);
        }
        let mut demo_images = 0;
        let import_demo = match self.stores.images.count()? {
            0 => true,
            // On a shared store another replica may be importing the demo set right now: finish
            // it (what it stored already comes back as duplicates) rather than train on a part.
            _ if self.stores.database.shared() => {
                self.stores.images.all()?.iter().all(|i| i.source == "demo")
            }
            _ => false,
        };
        if import_demo {
            for image in demo() {
                match self
                    .ingest
                    .ingest(&image.class, image.bytes, Some(image.filename), "demo")
                {
                    IngestOutcome::Stored(_) => demo_images += 1,
                    IngestOutcome::Duplicate(_) => {}
                    IngestOutcome::Rejected(error) => return Err(error),
                }
            }
        }
        let shipped_version = self.shipped_first_version(shipped, observer)?;
        let (version, reason) = match shipped_version {
            Some(version) => (
                version,
                "bootstrap: first start, the shipped version trained on 900 bean photos",
            ),
            None => (
                self.train_on_demo_set(observer)?,
                "bootstrap: first start, trained on the demo data set",
            ),
        };
        // Replicas started together on an empty shared database each bootstrap; the first to
        // finish is served by all, the others keep their version inactive.
        if !self.registry.activate_first(version, reason)? {
            if let Some(version) = self.registry.restore()? {
                return Ok(StartupModel::Restored(version));
            }
        }
        Ok(StartupModel::Bootstrapped {
            version,
            demo_images,
            shipped: shipped_version.is_some(),
        })
    }

    fn train_on_demo_set(&self, observer: &mut dyn PipelineObserver) -> Result<u32> {
        let bootstrap = &self.config.bootstrap;
        let mut config = self.config.training.clone();
        config.epochs = bootstrap.epochs;
        config.learning_rate = bootstrap.learning_rate;
        config.augment_views = bootstrap.augment_views;
        let trained = self.pipeline.run(&config, "bootstrap", None, observer)?;
        Ok(trained.version.version)
    }

    /// Waits (blocking) for another replica to activate a first version, then serves it.
    fn await_first_activation(&self, observer: &mut dyn PipelineObserver) -> Result<StartupModel> {
        const PATIENCE: std::time::Duration = std::time::Duration::from_secs(600);
        let started = std::time::Instant::now();
        observer.progress(0.0, "waiting for another replica's first version");
        while started.elapsed() < PATIENCE {
            if let Some(version) = self.registry.restore()? {
                return Ok(StartupModel::Restored(version));
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        Ok(StartupModel::None)
    }

    /// Finishes queued inference and flushes the database.
    /// Makes every write so far durable: a write is acknowledged only after this.
    pub fn make_durable(&self) -> Result<()> {
        Ok(self.stores.database.flush()?)
    }

    pub fn shutdown(&self) -> Result<()> {
        self.predictor.shutdown();
        if let Err(error) = self.rollouts.flush() {
            tracing::warn!(%error, "the rollout's last figures were not stored");
        }
        self.stores.database.flush()?;
        Ok(())
    }
}
