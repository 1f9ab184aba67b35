//! Versions leaving sprig: one version as a self-contained ONNX model with a model card, checked
//! at export by running the file through ONNX Runtime on the validation images and comparing its
//! probabilities with the served model's.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sprig_backends::portable::{classifier_onnx, run_classifier_onnx};
use sprig_backends::runtimes::{selected, Runtime};
use sprig_backends::{decode, prepare, DecodeLimits, ModelArtifact, Pooling, PreparedImage};
use sprig_store::{ModelVersionRecord, Split, Timestamp};

use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::evaluation::accuracy_interval_95;

/// Validation images the export check runs at most (the smallest ids first).
pub const PARITY_IMAGES: usize = 256;

/// What the exported model expects: `input`, float32 `[batch, 3, 224, 224]`.
pub const INPUT_DESCRIPTION: &str = "input: float32 [batch, 3, 224, 224], NCHW, RGB";
/// How an image becomes the input, as sprig prepares it (PIL: `Image.resize((224, 224),
/// Image.BILINEAR, box=(left, top, left + side, top + side))` on the RGB image).
pub const PREPROCESSING: &str = "decode (EXIF orientation applied) to 8-bit RGB; take the centred \
square of side short_side * 224 / 256 (short side to 256, centre crop 224) and resize it to \
224x224 with an antialiased bilinear filter; value = (pixel - zero_point) / 128 per channel";

/// A version as a portable ONNX model, and its card.
#[derive(Debug, Clone)]
pub struct OnnxExport {
    /// The ONNX model; its `metadata_props` carry the card (without `onnx_sha256`).
    pub model: Vec<u8>,
    pub card: ModelCard,
}

/// Everything a user of an exported version needs to run it and to know what it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub sprig_version: String,
    pub version: u32,
    pub created_at: Timestamp,
    pub backbone: String,
    /// Which of the backbone's activations the head reads (`final`, `every_block`); absent from
    /// cards written before pooling was a choice.
    #[serde(default)]
    pub pooling: Pooling,
    /// Blocks of the backbone that were fine-tuned (0: the ImageNet backbone as shipped).
    pub fine_tuned_blocks: u32,
    /// Test-time flipping: the graph also runs each image mirrored left to right and averages
    /// the two views' logits (absent from cards written before it was a choice: off).
    #[serde(default)]
    pub test_time_flip: bool,
    /// In output order.
    pub classes: Vec<String>,
    pub input: String,
    pub preprocessing: String,
    /// `zero_point` of the preprocessing (128 for MobileNetV2, 127 for EfficientNet-Lite0).
    pub input_zero_point: f32,
    pub output: String,
    /// The softmax temperature built into the model (the version's calibration; 1 without).
    pub temperature: f64,
    pub evaluation: CardEvaluation,
    /// SHA-256 of the version's sprig artifact (what `GET /api/models/{version}/bundle` carries).
    pub artifact_sha256: String,
    /// SHA-256 of the ONNX file; absent from the copy inside the file itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx_sha256: Option<String>,
    pub parity: Parity,
}

/// The version's own evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardEvaluation {
    /// `validation` or `train`.
    pub split: String,
    pub examples: u64,
    pub accuracy: f64,
    pub accuracy_ci95: [f64; 2],
    pub macro_f1: f64,
    /// Expected calibration error after the temperature (absent without calibration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ece_after: Option<f64>,
}

/// The exported file run by ONNX Runtime against the served model, at export time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parity {
    /// Whether the check ran; when not, `skipped` says why.
    pub checked: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// `onnxruntime <version>` that ran the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The backend and precision that computed the served answers.
    pub served_by: String,
    /// Validation images compared.
    pub images: u64,
    /// Of them, how many got the same top class from both.
    pub top1_agreement: u64,
    /// Largest |exported − served| over every class probability of every image.
    pub max_probability_difference: f64,
}

impl Engine {
    /// `version` as one self-contained ONNX model and its card, the file checked against the
    /// served model on up to [`PARITY_IMAGES`] validation images (skipped, with the reason in
    /// the card, where ONNX Runtime is not available). Blocking: seconds of compute.
    pub fn export_onnx(&self, version: u32) -> Result<OnnxExport> {
        let record = self
            .stores
            .models
            .get(version)?
            .ok_or_else(|| CoreError::not_found("model version", version))?;
        let bytes = self.model_file(version)?;
        let artifact = ModelArtifact::from_bytes(&bytes)?;
        if artifact.test_time.augmented > 0 {
            // The views are warps drawn from a hash of each photo's file bytes, which a graph
            // over the decoded pixels cannot compute.
            return Err(CoreError::ConflictingOptions(format!(
                "version {version} answers from {} test-time augmented views drawn from each \
                 photo's content hash, which an ONNX model cannot compute: export a version \
                 trained without test_time_views",
                artifact.test_time.augmented
            )));
        }
        let temperature = record
            .evaluation
            .calibration
            .as_ref()
            .map_or(1.0, |c| c.temperature);
        let unchecked = classifier_onnx(&artifact, temperature as f32, &[])?;
        let parity = self.parity(&unchecked, &artifact, temperature)?;
        let mut card = card(&record, &artifact, &bytes, temperature, parity);
        let embedded = serde_json::to_string(&card).expect("the card serialises");
        let classes = serde_json::to_string(&card.classes).expect("classes serialise");
        let zero_point = card.input_zero_point.to_string();
        let metadata = [
            ("sprig_model_card", embedded.as_str()),
            ("classes", classes.as_str()),
            ("input", INPUT_DESCRIPTION),
            ("preprocessing", PREPROCESSING),
            ("input_zero_point", zero_point.as_str()),
        ];
        let model = classifier_onnx(&artifact, temperature as f32, &metadata)?;
        card.onnx_sha256 = Some(hex::encode(Sha256::digest(&model)));
        Ok(OnnxExport { model, card })
    }

    /// Runs the exported `model` and the served model on the validation images and compares.
    fn parity(&self, model: &[u8], artifact: &ModelArtifact, temperature: f64) -> Result<Parity> {
        let plugin = self.registry.plugin();
        let served_by = format!(
            "{} ({})",
            plugin.name(),
            plugin.precision_for(artifact.backbone, artifact.tail.is_some())
        );
        let images = self.validation_images(&artifact.classes)?;
        let skipped = |reason: String| Parity {
            checked: false,
            skipped: Some(reason),
            runtime: None,
            served_by: served_by.clone(),
            images: 0,
            top1_agreement: 0,
            max_probability_difference: 0.0,
        };
        if images.is_empty() {
            return Ok(skipped(
                "no validation images of the version's classes".into(),
            ));
        }
        let exported = match run_classifier_onnx(model, artifact, &images) {
            Ok(rows) => rows,
            Err(error) => return Ok(skipped(format!("ONNX Runtime could not run it: {error}"))),
        };
        let classifier = plugin.load(artifact)?;
        let mut served = Vec::with_capacity(images.len());
        for batch in images.chunks(16) {
            let rows = classifier.predict(batch)?;
            served.extend(
                rows.iter()
                    .map(|p| crate::calibration::scale(p, temperature)),
            );
        }
        let top = |p: &Vec<f32>| sprig_backends::training::argmax(p);
        let agree = exported
            .iter()
            .zip(&served)
            .filter(|(a, b)| top(a) == top(b))
            .count();
        let difference = exported
            .iter()
            .flatten()
            .zip(served.iter().flatten())
            .map(|(a, b)| f64::from((a - b).abs()))
            .fold(0.0, f64::max);
        let runtime = selected(Runtime::OnnxRuntime).map_or_else(
            |_| "onnxruntime".into(),
            |f| format!("onnxruntime {}", f.version),
        );
        Ok(Parity {
            checked: true,
            skipped: None,
            runtime: Some(runtime),
            served_by,
            images: images.len() as u64,
            top1_agreement: agree as u64,
            max_probability_difference: difference,
        })
    }

    /// Up to [`PARITY_IMAGES`] validation images of `classes`, prepared, smallest ids first.
    fn validation_images(&self, classes: &[String]) -> Result<Vec<PreparedImage>> {
        let mut records: Vec<_> = self
            .stores
            .images
            .all()?
            .into_iter()
            .filter(|r| r.split == Split::Validation && classes.contains(&r.class))
            .collect();
        records.sort_by_key(|r| r.id);
        records.truncate(PARITY_IMAGES);
        let limits = DecodeLimits::default();
        let mut images = Vec::with_capacity(records.len());
        for record in records {
            let bytes = self
                .stores
                .images
                .content(record.id)?
                .ok_or_else(|| CoreError::not_found("image content", record.id))?;
            images.push(prepare(&decode(&bytes, &limits)?.rgb));
        }
        Ok(images)
    }
}

fn card(
    record: &ModelVersionRecord,
    artifact: &ModelArtifact,
    bytes: &[u8],
    temperature: f64,
    parity: Parity,
) -> ModelCard {
    let evaluation = &record.evaluation;
    let (low, high) = accuracy_interval_95(evaluation.accuracy, evaluation.examples);
    ModelCard {
        sprig_version: env!("CARGO_PKG_VERSION").into(),
        version: record.version,
        created_at: record.created_at,
        backbone: artifact.backbone.name().into(),
        pooling: artifact.pooling,
        fine_tuned_blocks: artifact.tail.as_ref().map_or(0, |t| t.blocks as u32),
        test_time_flip: artifact.test_time.flip,
        classes: artifact.classes.clone(),
        input: INPUT_DESCRIPTION.into(),
        preprocessing: PREPROCESSING.into(),
        input_zero_point: artifact.backbone.input_zero_point(),
        output: format!(
            "probabilities: float32 [batch, {}], softmax(logits / temperature){}, classes in order",
            artifact.classes.len(),
            match artifact.test_time.flip {
                true => " with the logits averaged over the image and its mirror image",
                false => "",
            }
        ),
        temperature,
        evaluation: CardEvaluation {
            split: match record.evaluation_split() {
                Split::Train => "train".into(),
                Split::Validation => "validation".into(),
            },
            examples: evaluation.examples,
            accuracy: evaluation.accuracy,
            accuracy_ci95: [low, high],
            macro_f1: evaluation.macro_f1,
            ece_after: evaluation.calibration.as_ref().map(|c| c.ece_after),
        },
        artifact_sha256: hex::encode(Sha256::digest(bytes)),
        onnx_sha256: None,
        parity,
    }
}
