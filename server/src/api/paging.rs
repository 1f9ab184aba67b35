//! Listing pages: the `page` and `per_page` query parameters every listing takes (defaults and
//! bounds in one place) and the page types clients see.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use sprig_store::PageRequest;

/// Declares a bounded `u32` query parameter type with its default.
macro_rules! bounded_parameter {
    ($(#[$doc:meta])* $name:ident, $default:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub u32);

        impl $name {
            const MAX: u32 = $max;
        }

        impl Default for $name {
            fn default() -> Self {
                Self($default)
            }
        }

        impl Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> Cow<'static, str> {
                "integer(uint32)".into()
            }

            fn schema_ref() -> MetaSchemaRef {
                let mut schema = MetaSchema::new_with_format("integer", "uint32");
                schema.minimum = Some(1.0);
                schema.maximum = Some(f64::from(Self::MAX));
                MetaSchemaRef::Inline(Box::new(schema))
            }

            fn as_raw_value(&self) -> Option<&Self> {
                Some(self)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl ParseFromParameter for $name {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                match value.parse::<u32>() {
                    Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
                    _ => Err(ParseError::custom(format!(
                        "must be a whole number from 1 to {}",
                        Self::MAX
                    ))),
                }
            }
        }

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
                let value = value.unwrap_or_default();
                match value.as_u64() {
                    Some(n) => Self::parse_from_parameter(&n.to_string()),
                    None => Err(ParseError::expected_type(value)),
                }
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<serde_json::Value> {
                Some(self.0.into())
            }
        }
    };
}

bounded_parameter!(
    /// The 1-based page of a listing (`page`, default 1).
    PageNumber,
    1,
    u32::MAX
);
bounded_parameter!(
    /// Items per page of a listing (`per_page`, default 50, at most 500).
    PerPage,
    50,
    500
);

/// The store's page request for the two parameters.
pub fn page_request(page: PageNumber, per_page: PerPage) -> PageRequest {
    PageRequest::new(page.0, per_page.0)
}

/// Defines a page type of a listing (named per item type, as clients see it) and its
/// construction from a store page.
macro_rules! page_type {
    ($name:ident, $item:ty) => {
        /// One page of a listing (`page` is 1-based; `total` counts every match).
        #[derive(Debug, Clone, poem_openapi::Object)]
        pub struct $name {
            pub items: Vec<$item>,
            pub page: u32,
            pub per_page: u32,
            pub total: u64,
        }

        impl $name {
            pub fn new<R>(
                request: sprig_store::PageRequest,
                page: sprig_store::Page<R>,
                convert: impl Fn(R) -> $item,
            ) -> Self {
                Self {
                    items: page.items.into_iter().map(convert).collect(),
                    page: request.page,
                    per_page: request.per_page,
                    total: page.total,
                }
            }
        }
    };
}

pub(crate) use page_type;
