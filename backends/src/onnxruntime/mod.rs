//! ONNX Runtime: its options (always compiled: config parses them) and, with the `onnxruntime`
//! feature, the plugin.

mod options;
#[cfg(feature = "onnxruntime")]
mod plugin;

pub use options::OnnxRuntimeOptions;
#[cfg(feature = "onnxruntime")]
pub use plugin::{OrtPlugin, OrtSettings};

use crate::error::BackendError;

/// A whole float32 ONNX model (input `input`, its first output) loaded into ONNX Runtime, with
/// the library [`crate::runtimes`] finds, using every core: how exported models are checked
/// against the served ones.
pub struct ModelRunner {
    #[cfg(feature = "onnxruntime")]
    session: ort::session::Session,
    /// Without the feature no runner can exist.
    #[cfg(not(feature = "onnxruntime"))]
    never: std::convert::Infallible,
}

impl ModelRunner {
    /// Loads `model`, or says why ONNX Runtime cannot.
    pub fn new(model: &[u8]) -> Result<Self, BackendError> {
        let unavailable = |reason: String| BackendError::Unavailable {
            name: "onnxruntime".into(),
            reason,
        };
        #[cfg(feature = "onnxruntime")]
        {
            use crate::graph_runtime::GraphRuntime;
            let plugin = OrtPlugin::new();
            plugin.load_library().map_err(unavailable)?;
            // Foreign code: a panic in the bindings becomes an error.
            let session = crate::error::guarded(|| plugin.batch_runner(model))?
                .map_err(|e| BackendError::Inference(format!("onnxruntime: {e}")))?;
            Ok(Self { session })
        }
        #[cfg(not(feature = "onnxruntime"))]
        {
            let _ = model;
            Err(unavailable(
                "this binary was built without the `onnxruntime` cargo feature".into(),
            ))
        }
    }

    /// One run on `input` of `shape`: the first output's values.
    pub fn run(&mut self, input: &[f32], shape: &[usize]) -> Result<Vec<f32>, BackendError> {
        #[cfg(feature = "onnxruntime")]
        {
            use crate::graph_runtime::GraphRuntime;
            let session = &mut self.session;
            crate::error::guarded(|| OrtPlugin::run(session, input, shape))?
                .map_err(|e| BackendError::Inference(format!("onnxruntime: {e}")))
        }
        #[cfg(not(feature = "onnxruntime"))]
        {
            let _ = (input, shape);
            match self.never {}
        }
    }
}
