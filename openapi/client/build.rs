//! Generates the client from the committed spec (`openapi/openapi.json`) with progenitor.
//!
//! progenitor 0.15 takes exactly one media type per request body and cannot build
//! `multipart/form-data`. sprig's image operations (`predict`, `predictBatch`, `uploadImages`)
//! document two: multipart and a raw `application/octet-stream` body. Before generating, each
//! request body is narrowed to the first media type progenitor supports, so those operations get
//! a raw-body file-upload method. Nothing else in the spec is touched.

use std::path::Path;

use serde_json::Value;

/// Request media types progenitor 0.15 generates code for (`BodyContentType` in progenitor-impl).
const SUPPORTED: &[&str] = &[
    "application/json",
    "application/octet-stream",
    "application/x-www-form-urlencoded",
    "text/plain",
];

fn main() {
    // Read when the script runs, not baked in when it was compiled: a build script shared through
    // one CARGO_TARGET_DIR by two checkouts would otherwise read the other checkout's spec.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let spec_path = Path::new(&manifest_dir).join("../openapi.json");
    println!("cargo:rerun-if-changed={}", spec_path.display());
    let text = std::fs::read_to_string(&spec_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", spec_path.display()));
    let mut spec: Value = serde_json::from_str(&text).expect("openapi.json is JSON");
    narrow_request_bodies(&mut spec);
    let spec: openapiv3::OpenAPI =
        serde_json::from_value(spec).expect("openapi.json is an OpenAPI 3.0 document");

    let mut settings = progenitor::GenerationSettings::default();
    settings
        .with_interface(progenitor::InterfaceStyle::Builder)
        .with_tag(progenitor::TagStyle::Merged);
    let tokens = progenitor::Generator::new(&settings)
        .generate_tokens(&spec)
        .unwrap_or_else(|e| panic!("progenitor cannot generate a client from the spec: {e}"));
    let file: syn::File = syn::parse2(tokens).expect("progenitor emits valid Rust");
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("sprig_client.rs");
    std::fs::write(&out, prettyplease::unparse(&file)).expect("writing the generated client");
}

fn is_supported(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    SUPPORTED.contains(&essence)
}

/// Keeps, in every request body, only the first media type progenitor supports.
fn narrow_request_bodies(spec: &mut Value) {
    let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in operations.iter_mut() {
            let Some(content) = operation
                .pointer_mut("/requestBody/content")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let chosen = content
                .keys()
                .find(|media_type| is_supported(media_type))
                .cloned()
                .unwrap_or_else(|| {
                    panic!(
                        "{} {path}: no request media type progenitor supports (has: {:?}); \
                         document an application/octet-stream or JSON alternative",
                        method.to_uppercase(),
                        content.keys().collect::<Vec<_>>()
                    )
                });
            content.retain(|media_type, _| *media_type == chosen);
        }
    }
}
