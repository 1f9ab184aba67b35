//! The job queue's error.

use apalis_core::error::WorkerError;
use sprig_store::StoreError;

/// Failures of the job queue.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("job store: {0}")]
    Store(#[from] StoreError),
    #[error("job arguments do not convert to or from JSON: {0}")]
    Codec(#[from] serde_json::Error),
    /// An apalis task id that is not a job id (only integer ids are).
    #[error("task id {0} is not a job id")]
    ForeignTaskId(String),
    #[error("job worker: {0}")]
    Worker(#[from] WorkerError),
}
