//! Request and response bodies of the model-version operations.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object};
use serde_json::json;
use sprig_core::evaluation::accuracy_interval_95;
use sprig_core::export::ModelCard;
use sprig_store::{ActivationRecord, CalibrationFit, ModelVersionRecord};

use crate::api::images::SplitName;
use crate::api::jobs::EpochInfo;

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ClassMetricsInfo {
    pub class: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// Evaluation on the validation split (or, when the data set had no validation images, on the
/// training split: `split` says which; such scores are optimistic and never compared).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EvaluationInfo {
    pub split: SplitName,
    pub examples: u64,
    pub accuracy: f64,
    /// 95 % confidence interval of `accuracy` (Wilson score) given `examples`: on a small split
    /// two versions whose intervals overlap may not differ at all.
    pub accuracy_ci95: [f64; 2],
    pub loss: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassMetricsInfo>,
    /// `confusion_matrix[actual][predicted]` in the version's class order.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// The temperature served probabilities are scaled by, and what it does to these images'
    /// confidences; absent for versions scored on the training split or on fewer than 30
    /// images.
    pub calibration: Option<CalibrationInfo>,
}

/// Temperature scaling of a version (`softmax(ln p / T)`): its expected calibration error (15
/// confidence bins) before and after, and the reliability diagram after.
#[derive(Debug, Clone, Object)]
pub struct CalibrationInfo {
    pub temperature: f64,
    pub fitted_on: CalibrationFitName,
    /// How many answers the temperature was fitted on.
    pub fitted_answers: usize,
    pub ece_before: f64,
    /// When fitted on the same images (`fitted_on: validation`) optimistic: `sprig train --cv`
    /// measures it on images the fit never saw.
    pub ece_after: f64,
    pub bins: Vec<ReliabilityBinInfo>,
}

/// What the temperature was fitted on: `out_of_fold`, answers of heads that never saw the image
/// they scored (every image of the version's data once); `validation`, the evaluated images
/// themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum CalibrationFitName {
    OutOfFold,
    Validation,
}

impl From<CalibrationFit> for CalibrationFitName {
    fn from(fit: CalibrationFit) -> Self {
        match fit {
            CalibrationFit::OutOfFold => CalibrationFitName::OutOfFold,
            CalibrationFit::Validation => CalibrationFitName::Validation,
        }
    }
}

/// One bin of the reliability diagram.
#[derive(Debug, Clone, Object)]
pub struct ReliabilityBinInfo {
    pub lower: f64,
    pub upper: f64,
    pub count: u64,
    /// Mean top-class confidence in the bin.
    pub confidence: f64,
    /// Share of the bin's predictions that were right.
    pub accuracy: f64,
}

impl From<&ModelVersionRecord> for EvaluationInfo {
    fn from(record: &ModelVersionRecord) -> Self {
        let e = &record.evaluation;
        Self {
            split: record.evaluation_split().into(),
            examples: e.examples,
            accuracy: e.accuracy,
            accuracy_ci95: {
                let (low, high) = accuracy_interval_95(e.accuracy, e.examples);
                [low, high]
            },
            loss: e.loss,
            macro_f1: e.macro_f1,
            per_class: e
                .per_class
                .iter()
                .map(|c| ClassMetricsInfo {
                    class: c.class.clone(),
                    precision: c.precision,
                    recall: c.recall,
                    f1: c.f1,
                    support: c.support,
                })
                .collect(),
            confusion_matrix: e.confusion_matrix.clone(),
            calibration: e.calibration.as_ref().map(|c| CalibrationInfo {
                temperature: c.temperature,
                fitted_on: c.fitted_on.into(),
                fitted_answers: c.fitted_answers,
                ece_before: c.ece_before,
                ece_after: c.ece_after,
                bins: c
                    .bins
                    .iter()
                    .map(|b| ReliabilityBinInfo {
                        lower: b.lower,
                        upper: b.upper,
                        count: b.count,
                        confidence: b.confidence,
                        accuracy: b.accuracy,
                    })
                    .collect(),
            }),
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SplitCountsInfo {
    pub train: u64,
    pub validation: u64,
}

/// The data a version was trained on.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DataSnapshotInfo {
    pub class_counts: BTreeMap<String, SplitCountsInfo>,
    pub total_images: u64,
    /// SHA-256 over the sorted image ids used.
    pub image_set_hash: String,
}

/// An immutable model version.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct ModelInfo {
    pub version: u32,
    /// True for the version serving predictions.
    pub active: bool,
    pub created_at: DateTime<Utc>,
    /// `mobilenet_v2` or `efficientnet_lite0`.
    pub backbone: String,
    pub classes: Vec<String>,
    pub hyperparameters: serde_json::Value,
    pub data_snapshot: DataSnapshotInfo,
    pub epochs: Vec<EpochInfo>,
    pub best_epoch: u32,
    pub duration_ms: u64,
    /// Backend that trained it.
    pub backend: String,
    pub evaluation: EvaluationInfo,
    /// `bootstrap`, `retrain`, `offline` or `import`.
    pub origin: String,
    pub job_id: Option<u64>,
}

impl Example for ModelInfo {
    fn example() -> Self {
        let classes = ["angular_leaf_spot", "bean_rust", "healthy"];
        Self {
            version: 3,
            active: true,
            created_at: DateTime::from_timestamp(1_764_066_600, 0).unwrap_or_default(),
            backbone: "mobilenet_v2".into(),
            classes: classes.iter().map(|c| c.to_string()).collect(),
            hyperparameters: json!({"epochs": 3, "batch_size": 32, "learning_rate": 0.0001, "augment_views": 0}),
            data_snapshot: DataSnapshotInfo {
                class_counts: classes
                    .iter()
                    .map(|c| {
                        let counts = SplitCountsInfo {
                            train: 16,
                            validation: 4,
                        };
                        (c.to_string(), counts)
                    })
                    .collect(),
                total_images: 60,
                image_set_hash: "4b7d1c0e9a2f6e3d8c5b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
                    .into(),
            },
            epochs: vec![EpochInfo {
                epoch: 1,
                train_loss: 0.412,
                train_accuracy: 0.875,
                val_loss: Some(0.398),
                val_accuracy: Some(0.9167),
                learning_rate: 0.0001,
            }],
            best_epoch: 1,
            duration_ms: 5_230,
            backend: "flex".into(),
            evaluation: EvaluationInfo {
                examples: 12,
                accuracy: 0.9167,
                accuracy_ci95: [0.6462, 0.9851],
                loss: 0.398,
                macro_f1: 0.9153,
                per_class: [(0.8, 1.0, 0.8889), (1.0, 0.75, 0.8571), (1.0, 1.0, 1.0)]
                    .iter()
                    .zip(classes)
                    .map(|(&(precision, recall, f1), class)| ClassMetricsInfo {
                        class: class.into(),
                        precision,
                        recall,
                        f1,
                        support: 4,
                    })
                    .collect(),
                confusion_matrix: vec![vec![4, 0, 0], vec![1, 3, 0], vec![0, 0, 4]],
                calibration: None,
                split: SplitName::Validation,
            },
            origin: "retrain".into(),
            job_id: Some(7),
        }
    }
}

impl ModelInfo {
    pub fn new(r: &ModelVersionRecord, active: Option<u32>) -> Self {
        Self {
            version: r.version,
            active: active == Some(r.version),
            created_at: r.created_at,
            backbone: r.backbone.clone(),
            classes: r.classes.clone(),
            hyperparameters: r.hyperparameters.clone(),
            data_snapshot: DataSnapshotInfo {
                class_counts: r
                    .data_snapshot
                    .class_counts
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            SplitCountsInfo {
                                train: v.train,
                                validation: v.validation,
                            },
                        )
                    })
                    .collect(),
                total_images: r.data_snapshot.total_images,
                image_set_hash: r.data_snapshot.image_set_hash.clone(),
            },
            epochs: r.epochs.iter().map(Into::into).collect(),
            best_epoch: r.best_epoch,
            duration_ms: r.duration_ms,
            backend: r.backend.clone(),
            evaluation: r.into(),
            origin: r.origin.clone(),
            job_id: r.job_id,
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ModelList {
    pub active_version: Option<u32>,
    /// Oldest first.
    pub items: Vec<ModelInfo>,
}

/// One entry of the activation log.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ActivationInfo {
    pub sequence: u64,
    pub at: DateTime<Utc>,
    pub from: Option<u32>,
    pub to: u32,
    pub reason: String,
}

impl From<&ActivationRecord> for ActivationInfo {
    fn from(a: &ActivationRecord) -> Self {
        Self {
            sequence: a.sequence,
            at: a.at,
            from: a.from,
            to: a.to,
            reason: a.reason.clone(),
        }
    }
}

/// Optional body of `POST /api/models/{version}/activate`.
#[derive(Debug, Clone, Default, Object)]
#[oai(skip_serializing_if_is_none, example, deny_unknown_fields)]
pub struct ActivateRequest {
    /// Recorded in the activation log.
    #[oai(validator(max_length = 500))]
    pub reason: Option<String>,
}

impl Example for ActivateRequest {
    fn example() -> Self {
        Self {
            reason: Some("roll back: version 4 confuses rust and spot".into()),
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct ActivationResponse {
    pub success: bool,
    pub activation: ActivationInfo,
    pub model: ModelInfo,
}

impl Example for ActivationResponse {
    fn example() -> Self {
        Self {
            success: true,
            activation: ActivationInfo {
                sequence: 5,
                at: DateTime::from_timestamp(1_764_070_200, 0).unwrap_or_default(),
                from: Some(4),
                to: 3,
                reason: ActivateRequest::example().reason.unwrap_or_default(),
            },
            model: ModelInfo::example(),
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ActivationHistory {
    /// Oldest first.
    pub items: Vec<ActivationInfo>,
}

/// The formats a version exports to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ExportFormat {
    Onnx,
}

/// A version as one self-contained ONNX model.
#[derive(ApiResponse)]
pub enum ExportedModel {
    /// The ONNX model: input `input` float32 `[batch, 3, 224, 224]`, output `probabilities`
    /// `[batch, classes]`; its `metadata_props` carry the model card (`sprig_model_card`), the
    /// classes, the input layout and the preprocessing. `X-Onnx-Sha256` is the file's SHA-256.
    #[oai(status = 200)]
    Onnx(
        Binary<Vec<u8>>,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "X-Onnx-Sha256")] String,
    ),
}

/// What an exported version is and how to run it, with the check made at export.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ModelCardInfo {
    pub sprig_version: String,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub backbone: String,
    /// Which of the backbone's activations the head reads: `final`, `every_block` or
    /// `every_block_texture`.
    pub pooling: String,
    /// Backbone blocks that were fine-tuned (0: the ImageNet backbone as shipped).
    pub fine_tuned_blocks: u32,
    /// The model also runs each image mirrored left to right and averages the two views'
    /// logits (two forward passes per image).
    pub test_time_flip: bool,
    /// In output order.
    pub classes: Vec<String>,
    pub input: String,
    pub preprocessing: String,
    pub input_zero_point: f32,
    pub output: String,
    /// The softmax temperature built into the model (1 without calibration).
    pub temperature: f64,
    pub evaluation: CardEvaluationInfo,
    /// SHA-256 of the version's sprig artifact.
    pub artifact_sha256: String,
    /// SHA-256 of the ONNX file this card describes.
    pub onnx_sha256: Option<String>,
    pub parity: ParityInfo,
}

/// The version's own evaluation, as the model card states it.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CardEvaluationInfo {
    pub split: String,
    pub examples: u64,
    pub accuracy: f64,
    pub accuracy_ci95: [f64; 2],
    pub macro_f1: f64,
    pub ece_after: Option<f64>,
}

/// The exported file run by ONNX Runtime against the served model on the validation images, at
/// export.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ParityInfo {
    pub checked: bool,
    /// Why the check did not run (e.g. ONNX Runtime not available here).
    pub skipped: Option<String>,
    pub runtime: Option<String>,
    /// The backend and precision of the served answers.
    pub served_by: String,
    pub images: u64,
    /// Images whose top class both agree on.
    pub top1_agreement: u64,
    /// Largest difference of any class probability of any image.
    pub max_probability_difference: f64,
}

impl From<&ModelCard> for ModelCardInfo {
    fn from(card: &ModelCard) -> Self {
        let e = &card.evaluation;
        let p = &card.parity;
        Self {
            sprig_version: card.sprig_version.clone(),
            version: card.version,
            created_at: card.created_at,
            backbone: card.backbone.clone(),
            pooling: card.pooling.name().into(),
            fine_tuned_blocks: card.fine_tuned_blocks,
            test_time_flip: card.test_time_flip,
            classes: card.classes.clone(),
            input: card.input.clone(),
            preprocessing: card.preprocessing.clone(),
            input_zero_point: card.input_zero_point,
            output: card.output.clone(),
            temperature: card.temperature,
            evaluation: CardEvaluationInfo {
                split: e.split.clone(),
                examples: e.examples,
                accuracy: e.accuracy,
                accuracy_ci95: e.accuracy_ci95,
                macro_f1: e.macro_f1,
                ece_after: e.ece_after,
            },
            artifact_sha256: card.artifact_sha256.clone(),
            onnx_sha256: card.onnx_sha256.clone(),
            parity: ParityInfo {
                checked: p.checked,
                skipped: p.skipped.clone(),
                runtime: p.runtime.clone(),
                served_by: p.served_by.clone(),
                images: p.images,
                top1_agreement: p.top1_agreement,
                max_probability_difference: p.max_probability_difference,
            },
        }
    }
}

/// A version as a bundle another sprig instance imports.
#[derive(ApiResponse)]
pub enum BundleFile {
    /// The bundle: the version's record and weights, checksummed (`POST /api/models/import`
    /// takes it as is).
    #[oai(status = 200)]
    Bundle(
        Binary<Vec<u8>>,
        #[oai(header = "Content-Disposition")] String,
    ),
}

/// An imported version.
#[derive(ApiResponse)]
pub enum ImportResponse {
    /// Stored as a new version of this instance (not active yet; `hyperparameters.imported_from`
    /// says where it came from); `Location` is its URL.
    #[oai(status = 201)]
    Created(Json<ModelInfo>, #[oai(header = "Location")] String),
}
