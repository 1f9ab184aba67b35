//! sprig's domain services. Knows nothing about HTTP: the server parses requests, calls into
//! this crate and maps [`CoreError`] to responses. [`Engine`] is the one door to a data dir;
//! [`embed::Model`] classifies images with one trained version.
//!
//! Embedding sprig in a Rust program — import labelled images, train a version, then classify
//! a file with it (what the original project's `PredictionService(...).predict_image(path)`
//! did):
//!
//! ```
//! use sprig_core::embed::{Model, Quiet};
//! use sprig_core::{Engine, EngineConfig, TrainingOverrides};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let temp = tempfile::tempdir()?;
//! # let data_dir = temp.path();
//! # let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
//! let config = EngineConfig { backend: "flex".into(), ..EngineConfig::default() };
//! let engine = Engine::open_data_dir(data_dir, config)?;
//! let runtime = tokio::runtime::Runtime::new()?;
//! let imported = runtime.block_on(
//!     engine.import_dir(&repo.join("data/beans-sample/train"), &mut |_done, _total| {}),
//! )?;
//! assert_eq!(imported.stored(), 60);
//! let overrides = TrainingOverrides { epochs: Some(5), ..TrainingOverrides::default() };
//! let outcome = engine.train(&overrides, &mut Quiet)?;
//! assert!(outcome.activated, "the first version is activated: {}", outcome.reason);
//! engine.shutdown()?;
//! drop(engine); // one process per data dir: release it
//!
//! let model = Model::from_data_dir(data_dir, "flex")?;
//! let leaf = repo.join("data/beans-sample/test/healthy/test-healthy_0007.jpg");
//! let prediction = model.predict_file(&leaf)?;
//! assert!(model.classes().contains(&prediction.class));
//! println!("{} ({:.0} %)", prediction.class, prediction.confidence * 100.0);
//! # Ok(())
//! # }
//! ```

pub mod batcher;
mod bundle;
pub mod calibration;
mod cluster;
mod data_loop;
mod dataset;
pub mod drift;
pub mod embed;
pub mod engine;
pub mod error;
pub mod evaluation;
pub mod explain;
mod explanations;
pub mod export;
mod health;
pub mod ingest;
mod job_tracking;
pub mod memory;
pub mod model_registry;
pub mod novelty;
pub mod pipeline;
pub mod predict;
mod predictions;
mod priority;
pub mod retrain;
pub mod review;
pub mod rollout;
mod rollouts;
pub mod uncertainty;
mod versions;

pub use batcher::{BatchingConfig, InferenceObserver};
pub use drift::{DriftConfig, DriftReport, DriftStatus};
pub use engine::{
    BootstrapConfig, ClusterConfig, DemoImage, Engine, EngineConfig, FirstVersion, StartupModel,
};
pub use error::{CoreError, ErrorCode, Result};
pub use health::Overview;
pub use ingest::{
    sanitize_filename, validate_class_name, ImportSummary, IncomingFile, Ingest, IngestLimits,
    IngestOutcome, IngestReport, IngestedFile,
};
pub use job_tracking::RetrainStatus;
pub use model_registry::{LoadedModel, ModelRegistry};
pub use pipeline::{
    ActivationPolicy, CrossValidation, FineTuneMode, FoldScore, PipelineObserver, Spread,
    TrainingConfig, TrainingOverrides,
};
pub use predict::PredictionRetention;
pub use retrain::{Retrainer, TrainOutcome, RETRAIN};
pub use review::{KeepImages, ReviewConfig, ReviewDecision};
pub use rollouts::RolloutView;
pub use sprig_backends::{OnnxRuntimeOptions, OpenVinoOptions, OpenVinoPrecision};
pub use versions::{Activated, ModelCatalog};
