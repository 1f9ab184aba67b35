//! An optional JSON request body: absent (no body, no content type) or JSON.
//! poem-openapi's `Json<Option<T>>` still insists on a content type, which would turn the
//! one-click `POST /api/retrain` without a body into a 415.

use poem::{Request, RequestBody};
use poem_openapi::error::{ContentTypeError, ParseRequestPayloadError};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

pub struct OptionalJson<T>(pub Option<T>);

impl<'a, T: ParseFromJSON> ApiExtractor<'a> for OptionalJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];

    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: "application/json; charset=utf-8",
                schema: T::schema_ref(),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _options: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match request.content_type() {
            Some(content_type)
                if content_type.starts_with("application/json")
                    || content_type.ends_with("+json") =>
            {
                // A JSON body must be the object: `null` is not a request, and neither is a
                // field set to `null` (the spec says object, with fields that are not nullable;
                // a field left out takes its default).
                let invalid = |reason: String| ParseRequestPayloadError { reason };
                let bytes = body.take()?.into_vec().await?;
                let value: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
                if let Some((field, _)) = value
                    .as_object()
                    .and_then(|fields| fields.iter().find(|(_, v)| v.is_null()))
                {
                    return Err(invalid(format!(
                        "`{field}` is null; leave it out to use its default"
                    ))
                    .into());
                }
                T::parse_from_json(Some(value))
                    .map(|value| Self(Some(value)))
                    .map_err(|e| invalid(e.into_message()).into())
            }
            Some(content_type) => Err(ContentTypeError::NotSupported {
                content_type: content_type.to_string(),
            }
            .into()),
            None => {
                let bytes = body.take()?.into_vec().await?;
                if bytes.is_empty() {
                    Ok(Self(None))
                } else {
                    Err(ContentTypeError::ExpectContentType.into())
                }
            }
        }
    }
}
