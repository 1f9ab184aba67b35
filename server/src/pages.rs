//! The original project's page URLs: each opens its view of the single page, and its web form's
//! `POST /predict` (multipart field `file`) answers with a result page, no JavaScript needed.

use std::sync::Arc;

use poem::endpoint::EmbeddedFileEndpoint;
use poem::http::StatusCode;
use poem::web::{Data, Multipart};
use poem::{handler, Response};
use sprig_store::PredictionRecord;

use crate::api::error::{ApiError, ApiResult};
use crate::http::WebAssets;
use crate::state::AppState;

/// The original project's page paths (and the review queue's) and the view of the single page
/// each opens.
pub const PAGE_VIEWS: [(&str, &str); 6] = [
    ("/predict", "predict"),
    ("/visualizations", "data"),
    ("/upload_data", "upload"),
    ("/retrain", "retrain"),
    ("/monitoring", "monitoring"),
    ("/review", "review"),
];

/// The single page; its script opens the view the path names (see `PAGE_VIEWS` in app.js).
pub fn single_page() -> EmbeddedFileEndpoint<WebAssets> {
    EmbeddedFileEndpoint::new("index.html")
}

/// `POST /predict` from an HTML form: the image in the multipart field `file`.
#[handler]
pub async fn predict_form(state: Data<&Arc<AppState>>, multipart: Multipart) -> Response {
    match predict(&state, multipart).await {
        Ok(record) => html(StatusCode::OK, "Prediction", &result_body(&record)),
        Err(error) => {
            let body = format!(
                "<p class=\"error\">{} <code>{}</code></p>",
                escape(&error.message),
                error.code
            );
            html(error.status, "Prediction failed", &body)
        }
    }
}

async fn predict(state: &AppState, mut multipart: Multipart) -> ApiResult<PredictionRecord> {
    let invalid = ApiError::invalid_multipart;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|_| invalid("the form could not be read"))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let filename = field.file_name().map(String::from);
        let bytes = field
            .bytes()
            .await
            .map_err(|_| invalid("the file could not be read"))?;
        return Ok(state.engine.predict(bytes, filename, None).await?);
    }
    Err(invalid("the form has no `file` field"))
}

fn result_body(record: &PredictionRecord) -> String {
    let rows: String = record
        .probabilities
        .iter()
        .map(|p| {
            format!(
                "<tr><th scope=\"row\">{}</th><td>{:.1} %</td></tr>",
                escape(&p.class),
                p.probability * 100.0
            )
        })
        .collect();
    format!(
        "<p class=\"result\"><strong id=\"predicted-class\">{}</strong> with confidence \
         <span id=\"confidence\">{:.1} %</span> (model version {}, prediction {})</p>\
         <table><caption>Probabilities</caption><tbody>{rows}</tbody></table>",
        escape(&record.predicted_class),
        record.confidence * 100.0,
        record.model_version,
        record.id,
    )
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · sprig</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head>\
         <body><main class=\"view\"><h1>{title}</h1>{body}\
         <p><a href=\"/predict\">Classify another image</a></p></main></body></html>"
    );
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .body(page)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
