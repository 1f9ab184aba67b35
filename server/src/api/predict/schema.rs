//! Request and response bodies of the predict operations (the spec's schemas come from these).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::payload::Binary;
use poem_openapi::types::multipart::Upload;
use poem_openapi::types::{Base64, Example};
use poem_openapi::{ApiRequest, Multipart, Object};
use sprig_core::explain::ExplanationView;
use sprig_store::{PredictionRecord, PredictionStats, CONFIDENCE_BUCKETS};

use crate::api::error::ErrorDetail;

/// `multipart/form-data` with one image in the field `file` (other fields are refused).
#[derive(Debug, Multipart)]
#[oai(deny_unknown_fields)]
pub struct PredictForm {
    /// The image (JPEG, PNG, GIF, BMP or WebP; judged by content).
    pub file: ImagePart,
}

/// A multipart file read into memory rather than spooled to a temp file like [`Upload`]: on the
/// single-image predict path a temp file per request costs more than the image, whose size the
/// route's body limit bounds. Same schema as `Upload` (a binary string).
pub struct ImagePart {
    pub file_name: Option<String>,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for ImagePart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagePart")
            .field("file_name", &self.file_name)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl poem_openapi::types::Type for ImagePart {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        "string_binary".into()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        poem_openapi::registry::MetaSchemaRef::Inline(Box::new(
            poem_openapi::registry::MetaSchema::new_with_format("string", "binary"),
        ))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl poem_openapi::types::ParseFromMultipartField for ImagePart {
    async fn parse_from_multipart(
        field: Option<poem::web::Field>,
    ) -> poem_openapi::types::ParseResult<Self> {
        let field = field.ok_or_else(poem_openapi::types::ParseError::expected_input)?;
        let file_name = field.file_name().map(String::from);
        let bytes = field
            .bytes()
            .await
            .map_err(poem_openapi::types::ParseError::custom)?;
        Ok(Self { file_name, bytes })
    }
}

/// `multipart/form-data` with the images in repeated `files` fields (other fields are refused).
#[derive(Debug, Multipart)]
#[oai(deny_unknown_fields)]
pub struct BatchPredictForm {
    /// The images, one per `files` field; results come back in the same order.
    #[oai(validator(min_items = 1))]
    pub files: Vec<Upload>,
}

// Each image-carrying operation also takes the image as a raw `application/octet-stream` body:
// some client generators (progenitor, used for the Rust client) cannot build multipart forms, and
// a raw body is the one file-upload shape every generator supports.

/// The image: a `multipart/form-data` form with the image in the field `file`, or the image's
/// bytes as an `application/octet-stream` body (name it with the `filename` query parameter).
#[derive(ApiRequest)]
pub enum PredictBody {
    Multipart(PredictForm),
    #[oai(content_type = "application/octet-stream")]
    Raw(Binary<Vec<u8>>),
}

/// The images: a `multipart/form-data` form with repeated `files` fields, or one image's bytes as
/// an `application/octet-stream` body (a batch of one; name it with the `filename` query parameter).
#[derive(ApiRequest)]
pub enum BatchPredictBody {
    Multipart(BatchPredictForm),
    #[oai(content_type = "application/octet-stream")]
    Raw(Binary<Vec<u8>>),
}

/// One prediction — the original project's JSON plus `model_version`, `prediction_id` and `latency_ms`.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct PredictResponse {
    pub success: bool,
    pub predicted_class: String,
    pub predicted_index: u64,
    /// Probability of the predicted class.
    pub confidence: f64,
    /// Probability per class.
    pub probabilities: BTreeMap<String, f64>,
    /// 1 − (top − second probability), in [0, 1]: how close the call between the two likeliest
    /// classes was (0: sure; 1: a tie). What ranks images for review.
    pub uncertainty: f64,
    /// Entropy of `probabilities` over ln(number of classes), in [0, 1]: also counts mass spread
    /// over classes not in contention.
    pub entropy: f64,
    /// The image lies far from everything the answering version was trained on (`novelty`
    /// above 1.0): the answer is a guess about something the model does not know.
    pub out_of_distribution: bool,
    /// Distance of the image's embedding from the version's training images, in units of its
    /// out-of-distribution threshold (set so that 99 % of the version's own held-out images stay
    /// below 1.0); absent for versions trained before it existed.
    pub novelty: Option<f64>,
    /// The class a reviewer gave this image (`POST /api/review/{prediction_id}`).
    pub label: Option<String>,
    pub filename: Option<String>,
    /// When the prediction was made (UTC, RFC 3339).
    pub timestamp: DateTime<Utc>,
    /// The model version that answered.
    pub model_version: u32,
    /// The prediction's id in the history (`GET /api/predictions`); 0 when the answer could not
    /// be recorded (the store refused the write, e.g. disk full; counted in
    /// `sprig_predictions_unrecorded_total`). Ids start at 1.
    pub prediction_id: u64,
    /// Server-side time from receiving the image to the answer.
    pub latency_ms: f64,
    /// Where in the image the evidence for the predicted class lies (only with `explain=true`).
    pub explanation: Option<ExplanationInfo>,
}

/// A Grad-CAM heatmap of the predicted class on the backbone's last convolutional feature map
/// (computed on burn's CPU backend whichever backend serves).
#[derive(Debug, Clone, Object)]
pub struct ExplanationInfo {
    /// The class explained (the predicted one).
    pub class: String,
    /// Side of the square map (7 for the 224×224 input).
    pub side: u32,
    /// `side × side` values in [0, 1], row by row from the top left of the centre crop the model
    /// saw: how strongly each region speaks for `class`.
    pub map: Vec<f32>,
    /// The 224×224 centre crop the model saw with the map laid over it (blue: none, red: the
    /// most), PNG.
    pub overlay_png: Base64<Vec<u8>>,
    /// Time the explanation took, on top of `latency_ms`.
    pub millis: f64,
}

impl From<ExplanationView> for ExplanationInfo {
    fn from(e: ExplanationView) -> Self {
        Self {
            class: e.class,
            side: e.side,
            map: e.map,
            overlay_png: Base64(e.overlay_png),
            millis: e.millis,
        }
    }
}

impl Example for PredictResponse {
    fn example() -> Self {
        Self {
            success: true,
            predicted_class: "bean_rust".into(),
            predicted_index: 1,
            confidence: 0.9523,
            probabilities: [
                ("angular_leaf_spot", 0.0301),
                ("bean_rust", 0.9523),
                ("healthy", 0.0176),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            uncertainty: 0.0778,
            entropy: 0.2031,
            out_of_distribution: false,
            novelty: Some(0.41),
            label: None,
            filename: Some("leaf.jpg".into()),
            timestamp: DateTime::from_timestamp(1_764_066_600, 0).unwrap_or_default(),
            model_version: 3,
            prediction_id: 1042,
            latency_ms: 24.7,
            explanation: None,
        }
    }
}

impl From<&PredictionRecord> for PredictResponse {
    fn from(p: &PredictionRecord) -> Self {
        Self {
            success: true,
            predicted_class: p.predicted_class.clone(),
            predicted_index: p.predicted_index as u64,
            confidence: f64::from(p.confidence),
            probabilities: p
                .probabilities
                .iter()
                .map(|c| (c.class.clone(), f64::from(c.probability)))
                .collect(),
            uncertainty: f64::from(p.uncertainty),
            entropy: f64::from(p.entropy),
            out_of_distribution: p.out_of_distribution,
            novelty: p.novelty.map(f64::from),
            label: p.label.clone(),
            filename: p.filename.clone(),
            timestamp: p.created_at,
            model_version: p.model_version,
            prediction_id: p.id,
            latency_ms: p.latency_ms,
            explanation: None,
        }
    }
}

/// The result for one file of a batch: a prediction or an error.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct BatchItem {
    /// Position of the file in the request.
    pub index: u64,
    pub filename: Option<String>,
    pub success: bool,
    pub prediction: Option<PredictResponse>,
    pub error: Option<ErrorDetail>,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct BatchPredictResponse {
    /// True when every file was predicted.
    pub success: bool,
    pub succeeded: u64,
    pub failed: u64,
    pub results: Vec<BatchItem>,
}

impl Example for BatchPredictResponse {
    fn example() -> Self {
        Self {
            success: false,
            succeeded: 1,
            failed: 1,
            results: vec![
                BatchItem {
                    index: 0,
                    filename: Some("leaf.jpg".into()),
                    success: true,
                    prediction: Some(PredictResponse::example()),
                    error: None,
                },
                BatchItem {
                    index: 1,
                    filename: Some("notes.txt".into()),
                    success: false,
                    prediction: None,
                    error: Some(ErrorDetail::example()),
                },
            ],
        }
    }
}

crate::api::paging::page_type!(PredictionPage, PredictResponse);

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct HourCount {
    /// Start of the hour (UTC).
    pub hour: String,
    pub count: u64,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ConfidenceBucket {
    pub lower: f64,
    pub upper: f64,
    pub count: u64,
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct PredictionStatsResponse {
    pub total: u64,
    /// Predictions per predicted class.
    pub per_class: BTreeMap<String, u64>,
    /// Predictions per model version (keys are version numbers).
    pub per_model_version: BTreeMap<String, u64>,
    /// Predictions per hour, oldest first.
    pub per_hour: Vec<HourCount>,
    /// Confidence histogram in equal-width buckets over [0, 1].
    pub confidence_histogram: Vec<ConfidenceBucket>,
}

impl From<PredictionStats> for PredictionStatsResponse {
    fn from(s: PredictionStats) -> Self {
        let width = 1.0 / CONFIDENCE_BUCKETS as f64;
        Self {
            total: s.total,
            per_class: s.per_class,
            per_model_version: s
                .per_model_version
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            per_hour: s
                .per_hour
                .into_iter()
                .map(|(hour, count)| HourCount { hour, count })
                .collect(),
            confidence_histogram: s
                .confidence_histogram
                .iter()
                .enumerate()
                .map(|(i, &count)| ConfidenceBucket {
                    lower: i as f64 * width,
                    upper: (i + 1) as f64 * width,
                    count,
                })
                .collect(),
        }
    }
}
