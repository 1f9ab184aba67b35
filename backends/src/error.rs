use std::panic::{catch_unwind, AssertUnwindSafe};
use thiserror::Error;

/// Why an image could not be used.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("the file is empty")]
    Empty,
    #[error("not a supported image format (JPEG, PNG, GIF, BMP or WebP, judged by content)")]
    UnsupportedFormat,
    #[error("the image data is truncated")]
    Truncated,
    #[error(
        "image is {width}x{height}, over the limit ({max_pixels} pixels or the per-side maximum)"
    )]
    TooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
    },
    #[error("decoder memory limit exceeded: {0}")]
    LimitExceeded(String),
    #[error("the image could not be decoded: {0}")]
    Corrupt(String),
}

/// Failures of the model backends.
#[derive(Debug, Error)]
pub enum BackendError {
    #[error("unknown backend '{0}' (expected auto, flex, ndarray, wgpu, onnxruntime or openvino)")]
    UnknownBackend(String),
    #[error("backend '{name}' cannot run here: {reason}")]
    Unavailable { name: String, reason: String },
    #[error("model weights: {0}")]
    Weights(String),
    #[error("model artifact: {0}")]
    Artifact(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("training: {0}")]
    Training(String),
    #[error("training was cancelled")]
    Cancelled,
}

/// Runs `f`, turning a panic (how burn reports e.g. a missing wgpu adapter) into an error.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, BackendError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let reason = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the backend panicked".into());
        BackendError::Inference(reason)
    })
}
