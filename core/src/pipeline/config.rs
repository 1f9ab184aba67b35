//! Training settings: the `[training]` config, a run's overrides and the activation policy.

use serde::{Deserialize, Serialize};
use sprig_backends::{
    BackboneKind, FeatureSpec, FineTuneConfig, HeadTrainingConfig, LearningRateSchedule, Pooling,
    TestTimeViews,
};

use crate::error::{CoreError, Result};

/// When a finished retrain becomes the served version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationPolicy {
    Always,
    /// Activate unless validation macro-F1 is worse than the active version's by more than the tolerance.
    IfBetter,
    Manual,
}

impl std::str::FromStr for ActivationPolicy {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Self, String> {
        match name {
            "always" => Ok(Self::Always),
            "if_better" => Ok(Self::IfBetter),
            "manual" => Ok(Self::Manual),
            other => Err(format!(
                "unknown activation policy '{other}' (always, if_better or manual)"
            )),
        }
    }
}

/// Whether phase 2 (fine-tuning) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FineTuneMode {
    Auto,
    On,
    Off,
}

/// `auto`, `on` or `off` — or `true` / `false`, as a retrain request and `sprig train
/// --fine-tune` say it (an environment variable's `true` reaches the config as a boolean).
impl<'de> Deserialize<'de> for FineTuneMode {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Given {
            Flag(bool),
            Name(String),
        }
        match Given::deserialize(deserializer)? {
            Given::Flag(true) => Ok(Self::On),
            Given::Flag(false) => Ok(Self::Off),
            Given::Name(name) => match name.as_str() {
                "auto" => Ok(Self::Auto),
                "on" | "true" => Ok(Self::On),
                "off" | "false" => Ok(Self::Off),
                other => Err(serde::de::Error::custom(format!(
                    "training.fine_tune is auto, on or off (or true / false), not `{other}`"
                ))),
            },
        }
    }
}

/// Training defaults (config `[training]`); a retrain request may override some per job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    pub backbone: BackboneKind,
    /// Which of the backbone's activations the head reads: `final` (the last map, averaged),
    /// `every_block` (also each block's depthwise output, averaged) or `every_block_texture`
    /// (also a second-order pool of one stage, read by a second sub-head); one forward pass each.
    pub pooling: Pooling,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub l2: f64,
    pub early_stopping_patience: usize,
    pub lr_patience: usize,
    /// Cross-entropy against one-hot targets smoothed by this much, in both phases (0: none).
    pub label_smoothing: f64,
    /// Decoupled weight decay (AdamW) on every trained parameter, in both phases (0: Adam).
    pub weight_decay: f64,
    /// Extra augmented views (flip, rotation, zoom, shift) cached per training image.
    pub augment_views: u32,
    /// Test-time flipping: the version also classifies each image mirrored left to right and
    /// answers with the two answers' geometric mean (two forward passes per prediction).
    pub test_time_flip: bool,
    /// Test-time augmented views: the version also classifies each image in its first this many
    /// augmented views (drawn as training draws them, from the photo's content) and answers with
    /// the geometric mean of all answers (1 + this many forward passes per prediction; a version
    /// with them cannot be exported to ONNX).
    pub test_time_views: u32,
    /// Images per backbone forward pass while computing features.
    pub feature_batch_size: usize,
    /// Phase 2, fine-tuning the last backbone blocks: `auto` (on with a GPU backend, off on
    /// CPU, where it costs minutes), `on` or `off` (`true` / `false` too).
    pub fine_tune: FineTuneMode,
    /// Backbone blocks phase 2 trains (the head convolution always trains with them).
    pub fine_tune_blocks: usize,
    pub fine_tune_epochs: usize,
    pub fine_tune_learning_rate: f64,
    /// Phase 2's learning-rate schedule: `plateau` (as phase 1) or `cosine` (warm-up, then a
    /// half cosine over `fine_tune_epochs`).
    pub fine_tune_schedule: LearningRateSchedule,
    /// Epochs of linear warm-up of a cosine schedule.
    pub fine_tune_warmup_epochs: usize,
    pub activation_policy: ActivationPolicy,
    /// Largest macro-F1 drop `if_better` still accepts.
    pub activation_tolerance: f64,
    pub seed: u64,
    /// A version's temperature is fitted on out-of-fold answers: this many extra heads, each
    /// trained without one fold of the images, answer for the images they did not see (0, or
    /// too few images: fitted on the validation split, whose images also chose the best epoch
    /// and so look better calibrated than new photos).
    pub calibration_folds: usize,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        let head = HeadTrainingConfig::default();
        Self {
            backbone: BackboneKind::MobilenetV2,
            pooling: Pooling::EveryBlock,
            epochs: head.max_epochs,
            batch_size: head.batch_size,
            learning_rate: head.learning_rate,
            l2: head.l2,
            early_stopping_patience: head.early_stopping_patience,
            lr_patience: head.lr_patience,
            // Measured under 5-fold CV (README, Training): +1.2 and +0.5 points at two seeds,
            // calibrated ECE 0.017 / 0.025 against 0.027 / 0.035 without.
            label_smoothing: 0.1,
            weight_decay: head.weight_decay,
            augment_views: 2,
            test_time_flip: false,
            test_time_views: 0,
            feature_batch_size: 16,
            fine_tune: FineTuneMode::Auto,
            fine_tune_blocks: 2,
            fine_tune_epochs: 5,
            fine_tune_learning_rate: 1e-5,
            fine_tune_schedule: LearningRateSchedule::Plateau,
            fine_tune_warmup_epochs: 1,
            activation_policy: ActivationPolicy::IfBetter,
            activation_tolerance: 0.02,
            seed: head.seed,
            calibration_folds: 5,
        }
    }
}

/// Per-run overrides (the body of `POST /api/retrain`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingOverrides {
    pub backbone: Option<BackboneKind>,
    pub pooling: Option<Pooling>,
    pub epochs: Option<usize>,
    pub learning_rate: Option<f64>,
    pub augment_views: Option<u32>,
    /// Classify each image mirrored too and answer with the two answers' geometric mean.
    pub test_time_flip: Option<bool>,
    /// Classify each image in this many of its augmented views too and answer with the geometric
    /// mean of all answers.
    pub test_time_views: Option<u32>,
    /// Run phase 2 (fine-tune the last backbone blocks) regardless of the configured mode.
    pub fine_tune: Option<bool>,
    /// Whether this run's version replaces the active one, instead of `training.activation_policy`.
    pub activation_policy: Option<ActivationPolicy>,
}

impl TrainingConfig {
    /// This config with a run's overrides applied, validated.
    pub fn with_overrides(&self, overrides: &TrainingOverrides) -> Result<TrainingConfig> {
        let mut config = self.clone();
        if let Some(backbone) = overrides.backbone {
            config.backbone = backbone;
        }
        if let Some(pooling) = overrides.pooling {
            config.pooling = pooling;
        }
        if let Some(epochs) = overrides.epochs {
            config.epochs = epochs;
        }
        if let Some(rate) = overrides.learning_rate {
            config.learning_rate = rate;
        }
        if let Some(views) = overrides.augment_views {
            config.augment_views = views;
        }
        if let Some(flip) = overrides.test_time_flip {
            config.test_time_flip = flip;
        }
        if let Some(views) = overrides.test_time_views {
            config.test_time_views = views;
        }
        if let Some(policy) = overrides.activation_policy {
            config.activation_policy = policy;
        }
        if let Some(fine_tune) = overrides.fine_tune {
            config.fine_tune = if fine_tune {
                FineTuneMode::On
            } else {
                FineTuneMode::Off
            };
        }
        if !(1..=1000).contains(&config.epochs) {
            return Err(CoreError::InvalidRequest(
                "epochs must be between 1 and 1000".into(),
            ));
        }
        if !(config.learning_rate > 0.0 && config.learning_rate <= 1.0) {
            return Err(CoreError::InvalidRequest(
                "learning_rate must be in (0, 1]".into(),
            ));
        }
        if config.augment_views > 16 {
            return Err(CoreError::InvalidRequest(
                "augment_views must be at most 16".into(),
            ));
        }
        if config.test_time_views > 16 {
            return Err(CoreError::InvalidRequest(
                "test_time_views must be at most 16".into(),
            ));
        }
        if config.fine_tune == FineTuneMode::On && config.pooling == Pooling::EveryBlockTexture {
            return Err(CoreError::ConflictingOptions(format!(
                "fine-tuning needs pooling \"{}\" or \"{}\" (this run pools \"{}\")",
                Pooling::Final.name(),
                Pooling::EveryBlock.name(),
                config.pooling.name()
            )));
        }
        Ok(config)
    }

    /// The views its versions answer from besides the plain one.
    pub fn test_time(&self) -> TestTimeViews {
        TestTimeViews {
            flip: self.test_time_flip,
            augmented: self.test_time_views,
        }
    }

    /// The features this configuration trains its head on.
    pub fn features(&self) -> FeatureSpec {
        FeatureSpec::new(self.backbone, self.pooling)
    }

    /// Whether runs fine-tune on a backend (`accelerator`: a GPU): `auto` does with a GPU when
    /// the head reads the final map alone (the pooling phase 2 was measured with on a GPU);
    /// `on` also tunes under every-block pooling (not the texture pool's).
    pub fn fine_tunes(&self, accelerator: bool) -> bool {
        match self.fine_tune {
            FineTuneMode::Auto => accelerator && self.pooling == Pooling::Final,
            FineTuneMode::On => true,
            FineTuneMode::Off => false,
        }
    }

    pub(super) fn fine_tune_config(&self) -> FineTuneConfig {
        FineTuneConfig {
            blocks: self.fine_tune_blocks,
            training: HeadTrainingConfig {
                max_epochs: self.fine_tune_epochs,
                learning_rate: self.fine_tune_learning_rate,
                schedule: self.fine_tune_schedule,
                warmup_epochs: self.fine_tune_warmup_epochs,
                ..self.head_config()
            },
        }
    }

    pub(super) fn head_config(&self) -> HeadTrainingConfig {
        HeadTrainingConfig {
            max_epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            l2: self.l2,
            early_stopping_patience: self.early_stopping_patience,
            lr_patience: self.lr_patience,
            label_smoothing: self.label_smoothing,
            weight_decay: self.weight_decay,
            seed: self.seed,
            ..HeadTrainingConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `auto` fine-tunes a run that pools every block on no backend; asked to (`on`), it does,
    /// while the texture pooling's request is refused before anything runs.
    #[test]
    fn every_block_pooling_fine_tunes_only_when_asked() {
        let every_block = TrainingConfig::default();
        assert_eq!(every_block.pooling, Pooling::EveryBlock);
        assert!(!every_block.fine_tunes(true), "auto on a GPU");
        let final_map = TrainingConfig {
            pooling: Pooling::Final,
            ..TrainingConfig::default()
        };
        assert!(final_map.fine_tunes(true) && !final_map.fine_tunes(false));
        let asked = TrainingOverrides {
            fine_tune: Some(true),
            ..TrainingOverrides::default()
        };
        assert!(every_block
            .with_overrides(&asked)
            .unwrap()
            .fine_tunes(false));
        let texture = TrainingOverrides {
            pooling: Some(Pooling::EveryBlockTexture),
            ..asked.clone()
        };
        let refused = every_block.with_overrides(&texture).unwrap_err();
        assert!(
            matches!(&refused, CoreError::ConflictingOptions(m) if m.contains("fine-tuning needs pooling \"final\" or \"every_block\"")),
            "{refused:?}"
        );
        let final_map = TrainingOverrides {
            pooling: Some(Pooling::Final),
            ..asked
        };
        let config = every_block.with_overrides(&final_map).unwrap();
        assert_eq!(
            config.features(),
            FeatureSpec::final_map(BackboneKind::MobilenetV2)
        );
        assert!(config.fine_tunes(false));
    }
}
