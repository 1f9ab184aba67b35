//! sprig's model code: the inverted-residual backbones, the classifier head, preprocessing,
//! head training and the backend plugins that run them. Knows nothing about HTTP or storage.
//!
//! Layers, each importing only from those before it (checked by `tests/module_graph.rs`):
//! `error`, `rng`, `snapshot`, `preprocess`, `views`, `network`, `head`, `training`, `onnx_export`,
//! `runtimes`; then `artifact`, `fine_tune`, `plugin` (the traits), `burn_plugin`,
//! `graph_runtime`, `onnxruntime`, `openvino`; then `selection`, `portable`, `explain`.

pub mod artifact;
pub mod burn_plugin;
pub mod error;
pub mod explain;
pub mod fine_tune;
#[cfg(any(feature = "onnxruntime", feature = "openvino"))]
mod graph_runtime;
pub mod head;
pub mod network;
pub mod onnx_export;
pub mod onnxruntime;
pub mod openvino;
pub mod plugin;
pub mod portable;
pub mod preprocess;
mod rng;
pub mod runtimes;
pub mod selection;
pub mod snapshot;
pub mod training;
pub mod views;

#[cfg(test)]
mod test_skip;

pub use artifact::{ModelArtifact, TailWeights, TrainedArtifact};
pub use burn_plugin::BurnPlugin;
pub use error::{BackendError, DecodeError};
pub use fine_tune::{FineTuneConfig, LabelledImage, LabelledImages};
pub use network::{embedding, BackboneKind, FeatureSpec, Pooling, FEATURE_DIM};
pub use onnxruntime::OnnxRuntimeOptions;
#[cfg(feature = "onnxruntime")]
pub use onnxruntime::{OrtPlugin, OrtSettings};
#[cfg(feature = "openvino")]
pub use openvino::OpenVinoPlugin;
pub use openvino::{OpenVinoOptions, OpenVinoPrecision};
pub use plugin::{BackendPlugin, Classifier, FeatureExtractor};
pub use preprocess::{decode, prepare, DecodeLimits, DecodedImage, ImageKind, PreparedImage};
pub use rng::SplitMix;
pub use selection::{
    available_plugins, select_backend, RuntimeOptions, Selection, BACKEND_CHOICES,
};
pub use training::{
    EpochReport, Example, HeadTrainingConfig, LearningRateSchedule, TrainingObserver,
};
pub use views::TestTimeViews;
