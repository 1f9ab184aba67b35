//! sprig's model code: the inverted-residual backbones, the classifier head, preprocessing,
//! head training and the backend plugins that run them. Knows nothing about HTTP or storage.

pub mod error;
pub mod fine_tune;
#[cfg(any(feature = "onnxruntime", feature = "openvino"))]
mod graph_runtime;
pub mod head;
pub mod network;
pub mod onnx_export;
#[cfg(feature = "onnxruntime")]
pub mod onnxruntime;
#[cfg(feature = "openvino")]
pub mod openvino;
pub mod plugin;
pub mod preprocess;
mod rng;
pub mod runtimes;
pub mod snapshot;
pub mod training;
pub mod weights;

pub use error::{BackendError, DecodeError};
pub use fine_tune::{FineTuneConfig, LabelledImage};
pub use network::{BackboneKind, FEATURE_DIM};
#[cfg(feature = "onnxruntime")]
pub use onnxruntime::{OrtPlugin, OrtSettings};
#[cfg(feature = "openvino")]
pub use openvino::OpenVinoPlugin;
pub use plugin::{
    available_plugins, select_backend, BackendPlugin, BurnPlugin, Classifier, FeatureExtractor,
    ModelArtifact, OnnxRuntimeOptions, OpenVinoOptions, OpenVinoPrecision, RuntimeOptions,
    Selection, TrainedArtifact, BACKEND_CHOICES,
};
pub use preprocess::{decode, prepare, DecodeLimits, DecodedImage, ImageKind, PreparedImage};
pub use training::{EpochReport, Example, HeadTrainingConfig, TrainingObserver};
