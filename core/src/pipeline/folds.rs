//! What a cross-validation reports, and which fold an image falls into (see
//! `cross_validation.rs` for how the folds are used).

use serde::Serialize;
use sprig_store::Evaluation;

/// Folds a cross-validation may have.
pub const FOLDS: std::ops::RangeInclusive<usize> = 2..=20;

/// One fold's held-out score.
#[derive(Debug, Clone, Serialize)]
pub struct FoldScore {
    /// 1-based.
    pub fold: usize,
    /// Images the fold's head trained on (plain images; augmented views come on top).
    pub trained_on: usize,
    /// Images of the other folds that chose its best epoch.
    pub stopped_on: usize,
    /// The held-out fold's scores; its `calibration` is the temperature fitted on the other
    /// folds' images (on their out-of-fold answers, or on the early-stopping images when
    /// `calibration_folds` is off or they are too few), with the expected calibration errors
    /// measured on the held-out images (which the fit never saw).
    pub evaluation: Evaluation,
}

/// Mean, sample standard deviation and range of one metric over the folds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub(super) fn of_some(values: impl Iterator<Item = f64> + Clone) -> Option<Self> {
        (values.clone().count() > 0).then(|| Self::of(values))
    }

    pub(super) fn of(values: impl Iterator<Item = f64> + Clone) -> Self {
        let n = values.clone().count() as f64;
        let mean = values.clone().sum::<f64>() / n;
        let variance = values.clone().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        Self {
            mean,
            std: variance.sqrt(),
            min: values.clone().fold(f64::INFINITY, f64::min),
            max: values.fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// What `sprig train --cv K` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CrossValidation {
    pub folds: Vec<FoldScore>,
    pub accuracy: Spread,
    pub macro_f1: Spread,
    /// Expected calibration error on the held-out folds, raw and after the fold's temperature
    /// (folds whose early-stopping images were too few to fit one are left out).
    pub ece_before: Option<Spread>,
    pub ece_after: Option<Spread>,
    /// Every image scored once: accuracy over all of them pooled.
    pub pooled_accuracy: f64,
    /// Expected calibration error of all held-out answers pooled (every image once), raw and
    /// each scaled by its fold's temperature: one figure on all images rather than a mean of
    /// small folds' figures, each of which a ~180-image sample inflates (`None` when a fold had
    /// too few early-stopping images to fit a temperature).
    pub pooled_ece_before: f64,
    pub pooled_ece_after: Option<f64>,
    /// `training.calibration_folds` of the run (0: temperatures fitted on early-stopping images).
    pub calibration_folds: usize,
    /// Phase 2: how many of the backbone's last blocks each fold fine-tuned (`None`: frozen).
    pub fine_tuned_blocks: Option<usize>,
    pub images: usize,
    /// The classes, in the order of the answers' probabilities.
    pub classes: Vec<String>,
    pub backbone: String,
    /// `training.pooling` of the run.
    pub pooling: String,
    pub backend: String,
    pub augment_views: u32,
    pub epochs: usize,
    pub duration_ms: u64,
    /// Every image's held-out answer, in fold order: what the figures above are computed from,
    /// kept so that runs can be compared photo by photo or their answers fused.
    pub answers: Vec<HeldOutAnswer>,
}

/// One image's answer from the head of the fold that held it out.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOutAnswer {
    pub fold: usize,
    /// The image's content hash (SHA-256, hex).
    pub sha256: String,
    /// Index of its labelled class in the run's classes.
    pub label: usize,
    /// The head's raw probabilities (before the fold's temperature), in class order.
    pub probabilities: Vec<f32>,
}

/// The fold of an image (by its content's SHA-256, hex) among `folds` at nesting `level` (0: the outer folds, 1: folds of a
/// fold's other images), each level from its own 64 hash bits, none of them those the
/// train/validation split uses.
pub fn fold_of(sha256: &str, folds: usize, level: usize) -> usize {
    let start = 16 * (1 + level.min(2));
    let bits = sha256
        .get(start..start + 16)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or(0);
    (bits % folds as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The folds of a fold's other images (nested cross-validation, out-of-fold calibration)
    /// come from other hash bits, so each outer fold's images spread over every inner fold.
    #[test]
    fn nested_folds_spread_every_outer_fold() {
        use sha2::{Digest, Sha256};
        let hashes: Vec<String> = (0..500u32)
            .map(|i| hex::encode(Sha256::digest(i.to_le_bytes())))
            .collect();
        for outer in 0..5 {
            let mut inner = [0usize; 5];
            for hash in hashes.iter().filter(|h| fold_of(h, 5, 0) != outer) {
                inner[fold_of(hash, 5, 1)] += 1;
            }
            // 400 images over 5 folds: about 80 each.
            assert!(inner.iter().all(|&n| n > 50), "outer {outer}: {inner:?}");
        }
    }

    #[test]
    fn spread_is_the_sample_spread() {
        let spread = Spread::of([0.90, 0.92, 0.94].into_iter());
        assert!((spread.mean - 0.92).abs() < 1e-12);
        assert!((spread.std - 0.02).abs() < 1e-12, "{}", spread.std);
        assert_eq!((spread.min, spread.max), (0.90, 0.94));
    }
}
