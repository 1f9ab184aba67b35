//! ONNX Runtime: its options (always compiled: config parses them) and, with the `onnxruntime`
//! feature, the plugin.

mod options;
#[cfg(feature = "onnxruntime")]
mod plugin;

pub use options::OnnxRuntimeOptions;
#[cfg(feature = "onnxruntime")]
pub use plugin::{OrtPlugin, OrtSettings};
