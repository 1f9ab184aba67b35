//! One JSON error body for every failure — `{"success": false, "error": {"code", "message"}}` —
//! and the single exhaustive mapping from domain errors to HTTP status and stable code.

use poem::error::ResponseError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry,
};
use poem_openapi::types::{Example, Type};
use poem_openapi::{ApiResponse, Object};
use sprig_backends::{BackendError, DecodeError};
use sprig_core::CoreError;
use sprig_store::StoreError;

/// Machine-readable error details.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct ErrorDetail {
    /// Stable error code (see the README's error table), e.g. `payload_too_large`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The job this error refers to (e.g. the retrain already running on `retrain_in_progress`).
    pub job_id: Option<u64>,
}

impl Example for ErrorDetail {
    fn example() -> Self {
        Self {
            code: "unsupported_format".into(),
            message: "not a supported image format".into(),
            job_id: None,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(example)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorDetail,
}

impl Example for ErrorBody {
    fn example() -> Self {
        Self {
            success: false,
            error: ErrorDetail::example(),
        }
    }
}

/// An HTTP error in sprig's error shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, sent as `Retry-After` (429 and 503).
    pub retry_after: Option<u64>,
    pub job_id: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code,
            self.status.as_u16(),
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            job_id: None,
        }
    }

    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code.into(),
            message: self.message.clone(),
            job_id: self.job_id,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` header is required",
        )
    }

    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds the {limit}-byte limit"),
        )
    }

    pub fn too_many_files(count: usize, limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_files",
            format!("{count} files sent; at most {limit} per request"),
        )
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A failure of the server's own: the detail goes to the log, the client gets the code and a
    /// plain message (no OS error text, paths or internals).
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            server_side_message("internal_error"),
        )
    }

    /// Maps poem's own rejections (routing, content type, parsing) into the error shape.
    pub fn from_poem(error: &poem::Error) -> Self {
        use poem_openapi::error::{
            AuthorizationError, ContentTypeError, ParseMultipartError, ParseParamError,
            ParsePathError, ParseRequestPayloadError,
        };
        let status = error.status();
        let message = client_safe(error.to_string());
        let code = if error.is::<poem::error::NotFoundError>() {
            return Self::new(StatusCode::NOT_FOUND, "not_found", "no such route");
        } else if error.is::<poem::error::MethodNotAllowedError>() {
            "method_not_allowed"
        } else if error.is::<ContentTypeError>() {
            "unsupported_media_type"
        } else if error.is::<ParseMultipartError>()
            || error.is::<poem::error::ParseMultipartError>()
        {
            "invalid_multipart"
        } else if error.is::<ParseRequestPayloadError>() {
            "invalid_body"
        } else if error.is::<ParseParamError>() || error.is::<ParsePathError>() {
            "invalid_parameter"
        } else if error.is::<AuthorizationError>() {
            "unauthorized"
        } else {
            match status {
                StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                StatusCode::LENGTH_REQUIRED => "length_required",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                StatusCode::NOT_FOUND => "not_found",
                StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
                StatusCode::UNAUTHORIZED => "unauthorized",
                s if s.is_client_error() => "bad_request",
                _ => "internal_error",
            }
        };
        Self::new(status, code, message)
    }
}

/// The one exhaustive mapping from domain errors to status and code.
pub fn classify(error: &CoreError) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match error {
        CoreError::Store(store) => match store {
            StoreError::NotFound { .. } => (S::NOT_FOUND, "not_found"),
            StoreError::Conflict { .. } => (S::CONFLICT, "conflict"),
            StoreError::Locked(_) => (S::SERVICE_UNAVAILABLE, "storage_locked"),
            StoreError::DiskFull { .. } => (S::INSUFFICIENT_STORAGE, "insufficient_storage"),
            StoreError::SchemaMismatch { .. } => (S::INTERNAL_SERVER_ERROR, "schema_mismatch"),
            StoreError::Engine(_) | StoreError::Corrupt(_) => {
                (S::INTERNAL_SERVER_ERROR, "storage_error")
            }
        },
        CoreError::Backend(backend) => match backend {
            BackendError::Cancelled => (S::CONFLICT, "cancelled"),
            BackendError::UnknownBackend(_) | BackendError::Unavailable { .. } => {
                (S::SERVICE_UNAVAILABLE, "backend_unavailable")
            }
            BackendError::Weights(_) | BackendError::Artifact(_) => {
                (S::INTERNAL_SERVER_ERROR, "model_error")
            }
            BackendError::Inference(_) | BackendError::Training(_) => {
                (S::INTERNAL_SERVER_ERROR, "inference_error")
            }
        },
        CoreError::Jobs(_) => (S::INTERNAL_SERVER_ERROR, "job_queue_error"),
        CoreError::InvalidImage(decode) => match decode {
            DecodeError::Empty => (S::UNPROCESSABLE_ENTITY, "empty_file"),
            DecodeError::UnsupportedFormat => (S::UNPROCESSABLE_ENTITY, "unsupported_format"),
            DecodeError::Truncated => (S::UNPROCESSABLE_ENTITY, "truncated_image"),
            DecodeError::TooLarge { .. } | DecodeError::LimitExceeded(_) => {
                (S::UNPROCESSABLE_ENTITY, "image_too_large")
            }
            DecodeError::Corrupt(_) => (S::UNPROCESSABLE_ENTITY, "corrupt_image"),
        },
        CoreError::FileTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "file_too_large"),
        CoreError::InvalidClassName(_) => (S::UNPROCESSABLE_ENTITY, "invalid_class_name"),
        CoreError::NotFound { .. } => (S::NOT_FOUND, "not_found"),
        CoreError::RetrainInProgress { .. } => (S::CONFLICT, "retrain_in_progress"),
        CoreError::WouldLeaveTooFewClasses { .. } => (S::CONFLICT, "too_few_classes"),
        CoreError::NoActiveModel => (S::SERVICE_UNAVAILABLE, "no_active_model"),
        CoreError::Overloaded => (S::TOO_MANY_REQUESTS, "overloaded"),
        CoreError::NotEnoughData(_) => (S::UNPROCESSABLE_ENTITY, "not_enough_data"),
        CoreError::InvalidRequest(_) => (S::BAD_REQUEST, "invalid_request"),
        CoreError::JobFinished(_) => (S::CONFLICT, "job_finished"),
        CoreError::ShuttingDown => (S::SERVICE_UNAVAILABLE, "shutting_down"),
    }
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        let (status, code) = classify(&error);
        if status.is_server_error() {
            tracing::error!(%error, code, "request failed");
        }
        // 503s say what to wait for (no model yet, shutting down); a 500's text is internal.
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            server_side_message(code)
        } else {
            client_safe(error.to_string())
        };
        let retry_after = match status {
            StatusCode::TOO_MANY_REQUESTS => Some(1),
            StatusCode::SERVICE_UNAVAILABLE => Some(5),
            _ => None,
        };
        let job_id = match error {
            CoreError::RetrainInProgress { job_id } => Some(job_id),
            _ => None,
        };
        Self {
            status,
            code,
            message,
            retry_after,
            job_id,
        }
    }
}

/// What a client is told of a 5xx: its code says which kind; the log has the detail.
fn server_side_message(code: &str) -> String {
    format!("the server could not complete this request ({code}); its log has the details")
}

/// A message for a client, without operating-system error text (`Too many open files (os error
/// 24)`, paths of temp files): that stays in the server's log.
fn client_safe(message: String) -> String {
    if message.contains("(os error") {
        tracing::warn!(%message, "request failed on a system error");
        "the request could not be read".into()
    } else {
        message
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        CoreError::Store(error).into()
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        let body = ErrorBody {
            success: false,
            error: self.detail(),
        };
        let mut response = poem_openapi::payload::Json(body).into_response();
        response.set_status(self.status);
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert("retry-after", seconds.into());
        }
        response
    }
}

/// Status codes every operation may answer with, as documented in the spec.
const DOCUMENTED: &[(u16, &str)] = &[
    (
        400,
        "Malformed request (bad parameter, body or multipart form)",
    ),
    (
        401,
        "Missing or wrong bearer token (only when the server has `auth.token` set)",
    ),
    (404, "The resource or route does not exist"),
    (
        409,
        "Conflict with the current state (e.g. a retrain is already running)",
    ),
    (
        413,
        "Request body, file or file count over the configured limit",
    ),
    (415, "Wrong request content type"),
    (
        422,
        "Well-formed but invalid input (bad image, class name, not enough data)",
    ),
    (
        429,
        "Inference queue full; retry after `Retry-After` seconds",
    ),
    (500, "Internal error"),
    (
        503,
        "Not ready (no model yet, shutting down, request timed out)",
    ),
    (
        507,
        "Not stored: the data dir's disk is below its free-space reserve (`server.min_free_mib`)",
    ),
];

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: DOCUMENTED
                .iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(*status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/json; charset=utf-8",
                        schema: ErrorBody::schema_ref(),
                    }],
                    headers: if matches!(status, 429 | 503) {
                        vec![MetaHeader {
                            name: "Retry-After".into(),
                            description: Some("Seconds to wait before retrying".into()),
                            required: false,
                            deprecated: false,
                            schema: MetaSchemaRef::Inline(Box::new(
                                poem_openapi::registry::MetaSchema::new_with_format(
                                    "integer", "uint64",
                                ),
                            )),
                        }]
                    } else {
                        vec![]
                    },
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.as_response()
    }
}

/// Result of an API operation.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_never_get_operating_system_or_internal_text() {
        let io = std::io::Error::from_raw_os_error(24); // EMFILE
        let message = client_safe(format!("reading the part: {io}"));
        assert!(!message.contains("os error") && !message.contains("open files"));
        let internal = ApiError::from(CoreError::Store(StoreError::Engine(format!(
            "writing /var/lib/sprig/db: {io}"
        ))));
        assert_eq!(internal.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(internal.code, "storage_error");
        assert!(!internal.message.contains("/var/lib") && !internal.message.contains("os error"));
        // Client errors keep their explanation.
        let refused = ApiError::from(CoreError::InvalidClassName("Bad Name".into()));
        assert!(refused.message.contains("Bad Name"));
    }
}
