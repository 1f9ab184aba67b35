//! The JSON API: poem-openapi operations grouped by tag. Handlers parse, call the engine and map
//! the result; the spec (`/openapi.json`) is generated from these definitions.

pub mod auth;
mod body;
pub mod error;
mod images;
mod jobs;
mod models;
mod monitoring;
mod paging;
mod predict;
mod review;
mod rollouts;

use poem_openapi::{OpenApiService, Tags};

#[derive(Tags)]
pub enum ApiTags {
    /// Classify images with the active model version.
    #[oai(rename = "predict")]
    Predict,
    /// Upload, browse, relabel and delete labelled training images.
    #[oai(rename = "images")]
    Images,
    /// Data-set statistics for the distribution charts.
    #[oai(rename = "dataset")]
    Dataset,
    /// Retrain jobs: start, follow (poll or server-sent events) and cancel.
    #[oai(rename = "jobs")]
    Jobs,
    /// Trained model versions, their evaluation, activation and rollback.
    #[oai(rename = "models")]
    Models,
    /// The review queue: uncertain and unfamiliar predictions kept for a person to label.
    #[oai(rename = "review")]
    Review,
    /// Health, system metrics, drift and Prometheus metrics.
    #[oai(rename = "monitoring")]
    Monitoring,
}

pub type Apis = (
    predict::PredictApi,
    images::ImagesApi,
    jobs::JobsApi,
    models::ModelsApi,
    monitoring::MonitoringApi,
    review::ReviewApi,
    rollouts::RolloutsApi,
);

const DESCRIPTION: &str = "sprig classifies images with a transfer-learned MobileNetV2 / EfficientNet-Lite0 model \
and runs the whole MLOps loop: upload labelled images, retrain as a durable background job, keep every model \
version with its evaluation, hot-swap the active version, and monitor the service.\n\n\
Every error has the body `{\"success\": false, \"error\": {\"code\": \"...\", \"message\": \"...\"}}` with a \
stable `code`. When the server is configured with `auth.token`, writes need `Authorization: Bearer <token>`.";

/// The OpenAPI service: the single source of the routes and of the spec.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            predict::PredictApi,
            images::ImagesApi,
            jobs::JobsApi,
            models::ModelsApi,
            monitoring::MonitoringApi,
            review::ReviewApi,
            rollouts::RolloutsApi,
        ),
        "sprig",
        env!("CARGO_PKG_VERSION"),
    )
    // No `.summary(..)`: `info.summary` is OpenAPI 3.1 and makes this 3.0 document invalid
    // (strict validators and generators reject it).
    .description(DESCRIPTION)
    .license(poem_openapi::LicenseObject::new("MIT OR Apache-2.0"))
}

/// The spec as pretty JSON (what `/openapi.json` serves, `sprig openapi` prints and
/// `openapi/openapi.json` holds): poem-openapi's output plus the links below.
pub fn spec_json() -> String {
    let mut spec: serde_json::Value =
        serde_json::from_str(&service().spec()).expect("generated spec is JSON");
    add_links(&mut spec);
    seal_request_bodies(&mut spec);
    serde_json::to_string_pretty(&spec).expect("spec serialises") + "\n"
}

/// OpenAPI links (poem-openapi has no syntax for them): how one answer's ids feed the next
/// operations, so generated clients and stateful fuzzers can follow real sequences.
/// (operation, status, link name, target operation, target parameter, runtime expression)
const LINKS: &[(&str, &str, &str, &str, &str, &str)] = &[
    (
        "uploadImages",
        "200",
        "GetImage",
        "getImage",
        "id",
        "$response.body#/items/0/image/id",
    ),
    (
        "uploadImages",
        "200",
        "GetImageContent",
        "getImageContent",
        "id",
        "$response.body#/items/0/image/id",
    ),
    (
        "uploadImages",
        "200",
        "RelabelImage",
        "relabelImage",
        "id",
        "$response.body#/items/0/image/id",
    ),
    (
        "uploadImages",
        "200",
        "DeleteImage",
        "deleteImage",
        "id",
        "$response.body#/items/0/image/id",
    ),
    (
        "startRetrain",
        "202",
        "GetJob",
        "getJob",
        "id",
        "$response.body#/job_id",
    ),
    (
        "startRetrain",
        "202",
        "StreamJobEvents",
        "streamJobEvents",
        "id",
        "$response.body#/job_id",
    ),
    (
        "startRetrain",
        "202",
        "CancelJob",
        "cancelJob",
        "id",
        "$response.body#/job_id",
    ),
    (
        "listModels",
        "200",
        "GetModel",
        "getModel",
        "version",
        "$response.body#/active_version",
    ),
    (
        "listModels",
        "200",
        "ActivateModel",
        "activateModel",
        "version",
        "$response.body#/active_version",
    ),
    (
        "predict",
        "200",
        "GetPredictionImage",
        "getPredictionImage",
        "prediction_id",
        "$response.body#/prediction_id",
    ),
    (
        "listReview",
        "200",
        "ReviewPrediction",
        "reviewPrediction",
        "prediction_id",
        "$response.body#/items/0/prediction_id",
    ),
];

/// Every operation object of the spec.
fn operations_mut(spec: &mut serde_json::Value) -> impl Iterator<Item = &mut serde_json::Value> {
    spec["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|path| path.as_object_mut())
        .flat_map(|path| path.values_mut())
}

/// Request bodies refuse unknown fields (`deny_unknown_fields`), which poem-openapi does not
/// write into the spec: say so (`additionalProperties: false`), and that a file form needs its
/// `files`, so clients and fuzzers know what the server takes.
fn seal_request_bodies(spec: &mut serde_json::Value) {
    let mut json_bodies = Vec::new();
    for operation in operations_mut(spec) {
        let content = operation
            .pointer("/requestBody/content")
            .and_then(|c| c.as_object());
        for (media_type, body) in content.into_iter().flatten() {
            let reference = body.pointer("/schema/$ref").and_then(|r| r.as_str());
            if let (true, Some(name)) = (media_type.starts_with("application/json"), reference) {
                json_bodies.push(name.trim_start_matches("#/components/schemas/").to_string());
            }
        }
    }
    for name in json_bodies {
        spec["components"]["schemas"][name]["additionalProperties"] = false.into();
    }
    for operation in operations_mut(spec) {
        // Looked up, not indexed: indexing a missing key would create it.
        if let Some(form) =
            operation.pointer_mut("/requestBody/content/multipart~1form-data/schema")
        {
            form["additionalProperties"] = false.into();
            if form["properties"].get("files").is_some() {
                match form["required"].as_array_mut() {
                    Some(required) if required.iter().any(|r| r == "files") => {}
                    Some(required) => required.push("files".into()),
                    None => form["required"] = serde_json::json!(["files"]),
                }
            }
        }
    }
}

fn add_links(spec: &mut serde_json::Value) {
    for operation in operations_mut(spec) {
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for (_, status, name, target, parameter, expression) in LINKS.iter().filter(|l| l.0 == id) {
            operation["responses"][*status]["links"][*name] = serde_json::json!({
                "operationId": target,
                "parameters": { *parameter: expression },
            });
        }
    }
}
