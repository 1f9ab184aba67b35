//! One JSON error body for every failure — `{"success": false, "error": {"code", "message"}}` —
//! and the single exhaustive mapping from core's error codes to HTTP status.

use poem::error::ResponseError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use std::borrow::Cow;

use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::{Example, ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{ApiResponse, Object};
use sprig_core::{CoreError, ErrorCode};
use sprig_store::StoreError;

/// A stable error code: core's [`ErrorCode`], published in the spec as a string enum so that
/// generated clients can match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(pub ErrorCode);

impl Type for Code {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "ErrorCode".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(Self::name().into_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(Self::name().into_owned(), |_| {
            let mut schema = MetaSchema::new("string");
            schema.description =
                Some("Stable error code; the README's error table says what each means.");
            schema.enum_items = ErrorCode::ALL
                .iter()
                .map(|code| serde_json::Value::from(code.as_str()))
                .collect();
            schema
        });
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ToJSON for Code {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(self.0.as_str().into())
    }
}

impl ParseFromJSON for Code {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        let value = value.unwrap_or_default();
        match value.as_str().map(str::parse) {
            Some(Ok(code)) => Ok(Code(code)),
            Some(Err(message)) => Err(ParseError::custom(message)),
            None => Err(ParseError::expected_type(value)),
        }
    }
}

/// Machine-readable error details.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct ErrorDetail {
    pub code: Code,
    /// Human-readable explanation.
    pub message: String,
    /// The job this error refers to (e.g. the retrain already running on `retrain_in_progress`).
    pub job_id: Option<u64>,
}

impl Example for ErrorDetail {
    fn example() -> Self {
        Self {
            code: Code(ErrorCode::UnsupportedFormat),
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
    pub code: ErrorCode,
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
    /// An error with the status its code maps to (see [`status_of`]).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::with_status(status_of(code), code, message)
    }

    /// An error whose status is not its code's usual one (readiness answers 503 with the
    /// reason's code; poem's rejections keep poem's status).
    pub fn with_status(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: match status {
                StatusCode::TOO_MANY_REQUESTS => Some(1),
                StatusCode::SERVICE_UNAVAILABLE => Some(5),
                _ => None,
            },
            job_id: None,
        }
    }

    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: Code(self.code),
            message: self.message.clone(),
            job_id: self.job_id,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "a valid `Authorization: Bearer <token>` header is required",
        )
    }

    pub fn payload_too_large(limit: u64) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!("request body exceeds the {limit}-byte limit"),
        )
    }

    pub fn too_many_files(count: usize, limit: usize) -> Self {
        Self::new(
            ErrorCode::TooManyFiles,
            format!("{count} files sent; at most {limit} per request"),
        )
    }

    pub fn invalid_multipart(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidMultipart, message)
    }

    /// A failure of the server's own: the detail goes to the log, the client gets the code and a
    /// plain message (no OS error text, paths or internals).
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "request failed");
        Self::new(
            ErrorCode::InternalError,
            server_side_message(ErrorCode::InternalError),
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
        use ErrorCode as C;
        let code = if error.is::<poem::error::NotFoundError>() {
            return Self::new(C::NotFound, "no such route");
        } else if error.is::<poem::error::MethodNotAllowedError>() {
            C::MethodNotAllowed
        } else if error.is::<ContentTypeError>() {
            C::UnsupportedMediaType
        } else if error.is::<ParseMultipartError>()
            || error.is::<poem::error::ParseMultipartError>()
        {
            C::InvalidMultipart
        } else if error.is::<ParseRequestPayloadError>() {
            C::InvalidBody
        } else if error.is::<ParseParamError>() || error.is::<ParsePathError>() {
            C::InvalidParameter
        } else if error.is::<AuthorizationError>() {
            C::Unauthorized
        } else {
            match status {
                StatusCode::PAYLOAD_TOO_LARGE => C::PayloadTooLarge,
                StatusCode::LENGTH_REQUIRED => C::LengthRequired,
                StatusCode::UNSUPPORTED_MEDIA_TYPE => C::UnsupportedMediaType,
                StatusCode::NOT_FOUND => C::NotFound,
                StatusCode::METHOD_NOT_ALLOWED => C::MethodNotAllowed,
                StatusCode::UNAUTHORIZED => C::Unauthorized,
                s if s.is_client_error() => C::BadRequest,
                _ => C::InternalError,
            }
        };
        Self::with_status(status, code, message)
    }
}

/// The one exhaustive mapping from error codes to HTTP status.
pub fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    use StatusCode as S;
    match code {
        C::InvalidRequest
        | C::InvalidBody
        | C::InvalidParameter
        | C::InvalidMultipart
        | C::BadRequest
        | C::HttpsRequired => S::BAD_REQUEST,
        C::Unauthorized => S::UNAUTHORIZED,
        C::HostNotAllowed | C::CrossOriginRefused => S::FORBIDDEN,
        C::NotFound => S::NOT_FOUND,
        C::MethodNotAllowed => S::METHOD_NOT_ALLOWED,
        C::RetrainInProgress
        | C::TooFewClasses
        | C::JobFinished
        | C::AlreadyReviewed
        | C::BundleMismatch
        | C::Conflict
        | C::RolloutConflict
        | C::Cancelled => S::CONFLICT,
        C::LengthRequired => S::LENGTH_REQUIRED,
        C::PayloadTooLarge | C::FileTooLarge | C::TooManyFiles => S::PAYLOAD_TOO_LARGE,
        C::UnsupportedMediaType => S::UNSUPPORTED_MEDIA_TYPE,
        C::UnsupportedFormat
        | C::TruncatedImage
        | C::CorruptImage
        | C::ImageTooLarge
        | C::EmptyFile
        | C::InvalidClassName
        | C::InvalidDecision
        | C::InvalidBundle
        | C::ConflictingOptions
        | C::NotEnoughData => S::UNPROCESSABLE_ENTITY,
        C::Overloaded => S::TOO_MANY_REQUESTS,
        C::StorageError
        | C::ModelError
        | C::InferenceError
        | C::TrainingFailed
        | C::JobQueueError
        | C::SchemaMismatch
        | C::InternalError
        | C::Interrupted => S::INTERNAL_SERVER_ERROR,
        C::NoActiveModel
        | C::Starting
        | C::StartupFailed
        | C::StoreUnavailable
        | C::BackendUnavailable
        | C::StorageLocked
        | C::ShuttingDown
        | C::RequestTimeout => S::SERVICE_UNAVAILABLE,
        C::InsufficientStorage => S::INSUFFICIENT_STORAGE,
    }
}

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        let code = error.code();
        let status = status_of(code);
        if status.is_server_error() {
            tracing::error!(%error, %code, "request failed");
        }
        // 503s say what to wait for (no model yet, shutting down); a 500's text is internal.
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            server_side_message(code)
        } else {
            client_safe(error.to_string())
        };
        let mut api_error = Self::with_status(status, code, message);
        if let CoreError::RetrainInProgress { job_id } = error {
            api_error.job_id = Some(job_id);
        }
        api_error
    }
}

/// What a client is told of a 5xx: its code says which kind; the log has the detail.
fn server_side_message(code: ErrorCode) -> String {
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
                            schema: MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format(
                                "integer", "uint64",
                            ))),
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
        assert_eq!(internal.code, ErrorCode::StorageError);
        assert!(!internal.message.contains("/var/lib") && !internal.message.contains("os error"));
        // Client errors keep their explanation.
        let refused = ApiError::from(CoreError::InvalidClassName("Bad Name".into()));
        assert!(refused.message.contains("Bad Name"));
    }

    /// The README's error table lists every code under the status it is answered with, and
    /// no code that does not exist.
    #[test]
    fn the_readme_error_table_is_the_error_code_enum() {
        let readme = include_str!("../../../README.md");
        let table = readme
            .split("### Errors")
            .nth(1)
            .expect("the README has an Errors section");
        let mut listed: Vec<(String, ErrorCode)> = Vec::new();
        for row in table
            .lines()
            .skip_while(|l| !l.starts_with("| status"))
            .skip(2)
        {
            if !row.starts_with('|') {
                break;
            }
            let status = row.split('|').nth(1).unwrap().trim().to_string();
            // Notes in parentheses name fields and headers (`job_id`, `Retry-After`), not codes.
            let mut depth = 0;
            let row: String = row
                .chars()
                .filter(|c| {
                    depth += (*c == '(') as i32 - (*c == ')') as i32;
                    depth == 0 && *c != ')'
                })
                .collect();
            let codes = row.split('`').skip(1).step_by(2);
            // Config keys (`server.min_free_mib`) are not codes.
            for code in codes.filter(|c| c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')) {
                let code: ErrorCode = code.parse().unwrap_or_else(|e| panic!("README: {e}"));
                listed.push((status.clone(), code));
            }
        }
        for code in ErrorCode::ALL {
            let status = match status_of(*code).as_u16() {
                // A job's code, never an HTTP answer's.
                500 if *code == ErrorCode::Interrupted => "job".to_string(),
                status => status.to_string(),
            };
            assert!(
                listed.contains(&(status.clone(), *code)),
                "README's error table lacks `{code}` under {status}"
            );
        }
    }
}
