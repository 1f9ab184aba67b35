//! sprig's domain services. Knows nothing about HTTP: the server parses requests, calls into
//! this crate and maps [`CoreError`] to responses.

pub mod engine;
pub mod error;
pub mod evaluation;
pub mod inference;
pub mod ingest;
pub mod pipeline;
pub mod predict;
pub mod retrain;

pub use engine::{BootstrapConfig, DemoImage, Engine, EngineConfig, StartupModel};
pub use error::{CoreError, Result};
pub use inference::{BatchingConfig, InferenceObserver, LoadedModel, ModelRegistry};
pub use ingest::{
    sanitize_filename, validate_class_name, ImportSummary, Ingest, IngestLimits, IngestOutcome,
};
pub use pipeline::{ActivationPolicy, PipelineObserver, TrainingConfig, TrainingOverrides};
pub use predict::PredictionRetention;
pub use retrain::{RetrainTask, Retrainer, RETRAIN};
pub use sprig_backends::{OnnxRuntimeOptions, OpenVinoOptions, OpenVinoPrecision};
