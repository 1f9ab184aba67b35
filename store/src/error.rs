use thiserror::Error;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Failures of a store.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(String),
    /// The database cannot be reached now (down, restarting, no free connection in time).
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("a {kind} job is already queued or running (job {job_id})")]
    Conflict { kind: String, job_id: u64 },
    #[error("rollout {id} (of version {version}) is running; stop it first")]
    RolloutRunning { id: u64, version: u32 },
    #[error(
        "data dir was written with schema version {found}; this build reads version {expected}"
    )]
    SchemaMismatch { found: u32, expected: u32 },
    #[error("the data dir is in use by another process: {0}")]
    Locked(String),
    #[error(
        "not enough free disk space for the data dir: {free} bytes free, {needed} needed \
         (server.min_free_mib is kept in reserve)"
    )]
    DiskFull { free: u64, needed: u64 },
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        match error {
            // sled reports a held lock as a plain I/O error with this text.
            sled::Error::Io(ref io)
                if io.kind() == std::io::ErrorKind::WouldBlock
                    || io.to_string().contains("could not acquire lock") =>
            {
                StoreError::Locked(error.to_string())
            }
            sled::Error::Corruption { .. } => StoreError::Corrupt(error.to_string()),
            other => StoreError::Engine(other.to_string()),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(error: serde_json::Error) -> Self {
        StoreError::Corrupt(error.to_string())
    }
}
