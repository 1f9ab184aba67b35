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
    #[error("conflicting options: {0}")]
    ConflictingOptions(String),
    #[error("job {0} is already finished")]
    JobFinished(u64),
    #[error("prediction {0} has already been reviewed")]
    AlreadyReviewed(u64),
    #[error("not a valid model bundle: {0}")]
    InvalidBundle(String),
    #[error("the bundle does not fit this instance: {0}")]
    BundleMismatch(String),
    /// A rollout that cannot start or stop as asked (another runs, the candidate is active).
    #[error("{0}")]
    RolloutConflict(String),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A bug: a task panicked (the panic's message is logged, not shown).
    #[error("internal error: {0}")]
    Panicked(String),
}

impl CoreError {
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        CoreError::NotFound {
            what,
            id: id.to_string(),
        }
    }

    /// The stable code clients see for this error, in an HTTP answer or a failed job's record.
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            CoreError::Store(store) => match store {
                StoreError::NotFound { .. } => C::NotFound,
                StoreError::Conflict { .. } => C::Conflict,
                StoreError::RolloutRunning { .. } => C::RolloutConflict,
                StoreError::Locked(_) => C::StorageLocked,
                StoreError::Unavailable(_) => C::StoreUnavailable,
                StoreError::DiskFull { .. } => C::InsufficientStorage,
                StoreError::SchemaMismatch { .. } => C::SchemaMismatch,
                StoreError::Engine(_) | StoreError::Corrupt(_) => C::StorageError,
            },
            CoreError::Backend(backend) => match backend {
                BackendError::Cancelled => C::Cancelled,
                BackendError::UnknownBackend(_) | BackendError::Unavailable { .. } => {
                    C::BackendUnavailable
                }
                BackendError::Weights(_) | BackendError::Artifact(_) => C::ModelError,
                BackendError::Inference(_) => C::InferenceError,
                BackendError::Training(_) => C::TrainingFailed,
            },
            CoreError::Jobs(_) => C::JobQueueError,
            CoreError::InvalidImage(decode) => match decode {
                DecodeError::Empty => C::EmptyFile,
                DecodeError::UnsupportedFormat => C::UnsupportedFormat,
                DecodeError::Truncated => C::TruncatedImage,
                DecodeError::TooLarge { .. } | DecodeError::LimitExceeded(_) => C::ImageTooLarge,
                DecodeError::Corrupt(_) => C::CorruptImage,
            },
            CoreError::FileTooLarge { .. } => C::FileTooLarge,
            CoreError::InvalidClassName(_) => C::InvalidClassName,
            CoreError::NotFound { .. } => C::NotFound,
            CoreError::RetrainInProgress { .. } => C::RetrainInProgress,
            CoreError::WouldLeaveTooFewClasses { .. } => C::TooFewClasses,
            CoreError::NoActiveModel => C::NoActiveModel,
            CoreError::Overloaded => C::Overloaded,
            CoreError::NotEnoughData(_) => C::NotEnoughData,
            CoreError::InvalidRequest(_) => C::InvalidRequest,
            CoreError::ConflictingOptions(_) => C::ConflictingOptions,
            CoreError::JobFinished(_) => C::JobFinished,
            CoreError::AlreadyReviewed(_) => C::AlreadyReviewed,
            CoreError::InvalidBundle(_) => C::InvalidBundle,
            CoreError::BundleMismatch(_) => C::BundleMismatch,
            CoreError::RolloutConflict(_) => C::RolloutConflict,
            CoreError::ShuttingDown => C::ShuttingDown,
            CoreError::Panicked(_) => C::InternalError,
        }
    }
}

/// Declares [`ErrorCode`] with its wire names and the list of all of them, from one table.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $code:literal,)*) => {
        /// Every error code a client can see — in an error answer's `error.code` or a failed
        /// job's `error.code` — serialised as the stable names the README's error table lists.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidRequest = "invalid_request",
    InvalidBody = "invalid_body",
    InvalidParameter = "invalid_parameter",
    InvalidMultipart = "invalid_multipart",
    BadRequest = "bad_request",
    /// Plain HTTP sent to the HTTPS port.
    HttpsRequired = "https_required",
    Unauthorized = "unauthorized",
    HostNotAllowed = "host_not_allowed",
    CrossOriginRefused = "cross_origin_refused",
    NotFound = "not_found",
    MethodNotAllowed = "method_not_allowed",
    RetrainInProgress = "retrain_in_progress",
    TooFewClasses = "too_few_classes",
    JobFinished = "job_finished",
    /// A review decision for a prediction that was already labelled or dismissed.
    AlreadyReviewed = "already_reviewed",
    /// A review decision that is neither a label nor a dismissal (or both at once).
    InvalidDecision = "invalid_decision",
    /// A model bundle that is damaged, altered or not a bundle at all.
    InvalidBundle = "invalid_bundle",
    /// Options that are each valid but cannot go together (fine-tuning with every-block
    /// pooling).
    ConflictingOptions = "conflicting_options",
    /// A model bundle whose backbone or classes are not this instance's.
    BundleMismatch = "bundle_mismatch",
    Conflict = "conflict",
    /// A rollout that cannot start or stop as asked: another one runs, or the candidate is
    /// the active version.
    RolloutConflict = "rollout_conflict",
    Cancelled = "cancelled",
    LengthRequired = "length_required",
    PayloadTooLarge = "payload_too_large",
    FileTooLarge = "file_too_large",
    TooManyFiles = "too_many_files",
    UnsupportedMediaType = "unsupported_media_type",
    UnsupportedFormat = "unsupported_format",
    TruncatedImage = "truncated_image",
    CorruptImage = "corrupt_image",
    ImageTooLarge = "image_too_large",
    EmptyFile = "empty_file",
    InvalidClassName = "invalid_class_name",
    NotEnoughData = "not_enough_data",
    Overloaded = "overloaded",
    StorageError = "storage_error",
    ModelError = "model_error",
    InferenceError = "inference_error",
    /// Training a version failed (a failed retrain job's code).
    TrainingFailed = "training_failed",
    JobQueueError = "job_queue_error",
    SchemaMismatch = "schema_mismatch",
    InternalError = "internal_error",
    NoActiveModel = "no_active_model",
    Starting = "starting",
    StartupFailed = "startup_failed",
    StoreUnavailable = "store_unavailable",
    BackendUnavailable = "backend_unavailable",
    StorageLocked = "storage_locked",
    ShuttingDown = "shutting_down",
    RequestTimeout = "request_timeout",
    InsufficientStorage = "insufficient_storage",
    /// The process stopped while the job ran (a job's code, set at the next start).
    Interrupted = "interrupted",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = String;

    fn from_str(code: &str) -> std::result::Result<Self, String> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == code)
            .ok_or_else(|| format!("unknown error code `{code}`"))
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    /// The job queue writes these codes into failed jobs without knowing this enum: they must be
    /// names of it, so clients matching on the enum recognise them.
    #[test]
    fn codes_the_job_queue_writes_are_error_codes() {
        for code in [
            sprig_jobs::INTERRUPTED,
            sprig_jobs::PANICKED,
            sprig_jobs::INVALID_ARGUMENTS,
        ] {
            assert!(
                code.parse::<ErrorCode>().is_ok(),
                "the job queue writes `{code}`, which is not an ErrorCode"
            );
        }
        assert_eq!(sprig_jobs::INTERRUPTED, ErrorCode::Interrupted.as_str());
    }
}
