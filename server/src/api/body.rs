//! JSON request bodies held to their published schema: an object, no field the schema lacks, no
//! required field left out, no `null` — each refusal names the field. poem-openapi's own `Json`
//! reports a missing field as "expected string, found null" and ignores unknown ones, and its
//! `Json<Option<T>>` still insists on a content type, which would turn the one-click
//! `POST /api/retrain` without a body into a 415.

use poem::{Request, RequestBody};
use poem_openapi::error::{ContentTypeError, ParseRequestPayloadError};
use poem_openapi::registry::{MetaMediaType, MetaRequest, Registry};
use poem_openapi::types::ParseFromJSON;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};

/// A JSON object body; with `REQUIRED = false` it may be absent (no body, no content type).
pub struct JsonObject<T, const REQUIRED: bool>(pub Option<T>);

/// A body that may be left out (its fields all have defaults).
pub type OptionalJson<T> = JsonObject<T, false>;
/// A body that must be sent.
pub type RequiredJson<T> = JsonObject<T, true>;

impl<T> RequiredJson<T> {
    pub fn into_inner(self) -> T {
        match self.0 {
            Some(value) => value,
            None => unreachable!("from_request refuses a request without the required body"),
        }
    }
}

impl<'a, T: ParseFromJSON, const REQUIRED: bool> ApiExtractor<'a> for JsonObject<T, REQUIRED> {
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
            required: REQUIRED,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _options: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let invalid = |reason: String| ParseRequestPayloadError { reason };
        match request.content_type() {
            Some(content_type)
                if content_type.starts_with("application/json")
                    || content_type.ends_with("+json") =>
            {
                let bytes = body.take()?.into_vec().await?;
                let value: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
                check_fields::<T>(&value).map_err(invalid)?;
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
                if !bytes.is_empty() {
                    Err(ContentTypeError::ExpectContentType.into())
                } else if REQUIRED {
                    Err(invalid(format!("this request needs a JSON {} body", T::name())).into())
                } else {
                    Ok(Self(None))
                }
            }
        }
    }
}

/// Every way an object misses `T`'s schema, each naming its field: fields the schema lacks,
/// required fields left out, fields set to `null` (the spec's fields are not nullable; an
/// optional one left out takes its default). A non-object is left to `T`'s own parser.
fn check_fields<T: ParseFromJSON>(value: &serde_json::Value) -> Result<(), String> {
    let Some(fields) = value.as_object() else {
        return Ok(());
    };
    let mut registry = Registry::new();
    T::register(&mut registry);
    let Some(schema) = registry.schemas.get(T::name().as_ref()) else {
        return Ok(());
    };
    let known = |field: &str| schema.properties.iter().any(|(name, _)| *name == field);
    let required = |field: &str| schema.required.contains(&field);
    let mut problems: Vec<String> = fields
        .keys()
        .filter(|field| !known(field))
        .map(|field| format!("unknown field `{field}`"))
        .collect();
    problems.extend(
        schema
            .required
            .iter()
            .filter(|field| !fields.contains_key(**field))
            .map(|field| format!("`{field}` is required")),
    );
    problems.extend(
        fields
            .iter()
            .filter(|(field, value)| value.is_null() && known(field))
            .map(|(field, _)| match required(field) {
                true => format!("`{field}` is required and cannot be null"),
                false => format!("`{field}` is null; leave it out to use its default"),
            }),
    );
    if problems.is_empty() {
        return Ok(());
    }
    let expected: Vec<String> = schema
        .properties
        .iter()
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    Err(format!(
        "{} ({} takes {})",
        problems.join("; "),
        T::name(),
        expected.join(", ")
    ))
}
