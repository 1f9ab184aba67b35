//! The error codes this crate writes into failed jobs, and how a failure apalis reports is read
//! back into a job's error.

use sprig_store::JobError;

/// The error code of jobs that were running when their process died.
pub const INTERRUPTED: &str = "interrupted";
/// The error code of jobs whose handler panicked (a bug).
pub const PANICKED: &str = "internal_error";
/// The error code of jobs whose stored arguments do not decode.
pub const INVALID_ARGUMENTS: &str = "invalid_request";

/// The error of a failed run as apalis reported it: the JSON [`run_worker`](crate::run_worker)
/// put there, or (an
/// error apalis raised itself) its text under [`PANICKED`].
pub(crate) fn failure_of(reported: &str) -> JobError {
    serde_json::from_str(reported).unwrap_or_else(|_| JobError {
        code: PANICKED.into(),
        message: if reported.is_empty() {
            "the job was aborted".into()
        } else {
            reported.into()
        },
    })
}
