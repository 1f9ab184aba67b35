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
