use sprig_backends::{BackendError, DecodeError};
use sprig_store::StoreError;
use thiserror::Error;

/// Failures of sprig's domain services. The server maps each variant to an HTTP status and a
/// stable error code in one exhaustive match.
#[derive(Debug, Error)]
pub enum CoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Jobs(#[from] sprig_jobs::JobsError),
    #[error("invalid image: {0}")]
    InvalidImage(#[from] DecodeError),
    #[error("file is {size} bytes; the limit is {limit} bytes")]
    FileTooLarge { size: u64, limit: u64 },
    #[error("invalid class name '{0}': use 1-64 characters from a-z, 0-9, '_' and '-', starting with a letter or digit")]
    InvalidClassName(String),
    #[error("{what} '{id}' not found")]
    NotFound { what: &'static str, id: String },
    #[error("a retrain job is already queued or running (job {job_id})")]
    RetrainInProgress { job_id: u64 },
    #[error("deleting class '{class}' would leave {remaining} class(es) with data; at least 2 are needed to train (pass force=true to delete anyway)")]
    WouldLeaveTooFewClasses { class: String, remaining: usize },
    #[error("no model is active yet")]
    NoActiveModel,
    #[error("the inference queue is full; retry shortly")]
    Overloaded,
    #[error("not enough data to train: {0}")]
    NotEnoughData(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("job {0} is already finished")]
    JobFinished(u64),
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl CoreError {
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        CoreError::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
