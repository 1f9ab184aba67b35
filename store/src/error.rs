use thiserror::Error;

/// Failures of a store.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("a {kind} job is already queued or running (job {job_id})")]
    Conflict { kind: String, job_id: u64 },
    #[error(
        "data dir was written with schema version {found}; this build reads version {expected}"
    )]
    SchemaMismatch { found: u32, expected: u32 },
    #[error("the data dir is in use by another process: {0}")]
    Locked(String),
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        match error {
            sled::Error::Io(ref io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                StoreError::Locked(error.to_string())
            }
            other => StoreError::Engine(other.to_string()),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        StoreError::Corrupt(error.to_string())
    }
}
