//! What a cross-validation reports, and which fold an image falls into (see
//! `cross_validation.rs` for how the folds are used).

use serde::Serialize;
use sprig_store::{Evaluation, ImageRecord};

/// Folds a cross-validation may have.
pub const FOLDS: std::ops::RangeInclusive<usize> = 2..=20;

/// One fold's held-out score.
#[derive(Debug, Clone, Serialize)]
pub struct FoldScore {
    /// 1-based.
    pub fold: usize,
    /// Images the fold's head trained on (plain images; augmented views come on top).
    pub trained_on: usize,
    /// Images of the other folds that chose its best epoch (and fitted its temperature).
    pub stopped_on: usize,
    /// The held-out fold's scores; its `calibration` is the temperature fitted on the
    /// early-stopping images, with the expected calibration errors measured on the held-out
    /// images (which the fit never saw).
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
    pub images: usize,
    pub backbone: String,
    pub backend: String,
    pub augment_views: u32,
    pub epochs: usize,
    pub duration_ms: u64,
}

/// The fold of an image among `folds`, from hash bits the train/validation split does not use.
pub fn fold_of(image: &ImageRecord, folds: usize) -> usize {
    let bits = image
        .sha256
        .get(16..32)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or(0);
    (bits % folds as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_sample_spread() {
        let spread = Spread::of([0.90, 0.92, 0.94].into_iter());
        assert!((spread.mean - 0.92).abs() < 1e-12);
        assert!((spread.std - 0.02).abs() < 1e-12, "{}", spread.std);
        assert_eq!((spread.min, spread.max), (0.90, 0.94));
    }
}
