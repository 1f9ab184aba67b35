//! A Rust client for the sprig HTTP API, generated at build time by
//! [progenitor](https://crates.io/crates/progenitor) from `openapi/openapi.json` (the committed
//! spec, which sprig's tests keep equal to the server's code).
//!
//! Every operation is a builder method named after its `operationId`:
//!
//! ```no_run
//! # async fn demo() -> Result<(), sprig_client::Error<sprig_client::types::ErrorBody>> {
//! let client = sprig_client::Client::new("http://127.0.0.1:8080");
//! let image = std::fs::read("leaf.jpg").expect("image");
//! let prediction = client.predict().filename("leaf.jpg").body(image).send().await?;
//! println!("{} ({:.2})", prediction.predicted_class, prediction.confidence);
//! # Ok(())
//! # }
//! ```
//!
//! Image operations (`predict`, `predict_batch`, `upload_images`) send the image as the raw
//! `application/octet-stream` body, one image per request: progenitor cannot build the multipart
//! forms the server also accepts. Errors come back as [`Error::ErrorResponse`] holding sprig's
//! [`types::ErrorBody`] (`error.code` is the stable code).
//!
//! For a server with `auth.token`, build the `reqwest` client with a default
//! `Authorization: Bearer <token>` header and pass it to [`Client::new_with_client`]; that is also
//! how to lift the generated client's default 15-second timeout.

// Re-exported so callers build custom `reqwest::Client`s with the version the generated code uses.
pub use reqwest;

pub use generated::*;

// progenitor lists each parameter's description as a Markdown list item without indenting its
// continuation lines, which `clippy::doc_lazy_continuation` flags for multi-line descriptions.
#[allow(clippy::doc_lazy_continuation)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/sprig_client.rs"));
}
