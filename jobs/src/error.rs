//! The job queue's error.

use apalis_core::error::WorkerError;
use sprig_store::StoreError;

/// Failures of the job queue.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("task queue: {0}")]
    Store(#[from] StoreError),
    #[error("job arguments do not convert to or from JSON: {0}")]
    Codec(#[from] serde_json::Error),
    /// An apalis task id that the task queue did not assign (only integer ids are).
    #[error("task id {0} was not issued by the task queue")]
    ForeignTaskId(String),
    #[error("job worker: {0}")]
    Worker(#[from] WorkerError),
}
