//! Classification metrics of a model on labelled examples.

use sprig_backends::training::argmax;
use sprig_store::{ClassMetrics, Evaluation};

/// Accuracy, cross-entropy, per-class precision/recall/F1, macro-F1 and the confusion matrix
/// (`[actual][predicted]`) of `probabilities` against `labels`.
pub fn evaluate(classes: &[String], probabilities: &[Vec<f32>], labels: &[usize]) -> Evaluation {
    let n = classes.len();
    let mut confusion = vec![vec![0u64; n]; n];
    let mut loss = 0.0;
    for (p, &label) in probabilities.iter().zip(labels) {
        confusion[label][argmax(p)] += 1;
        loss -= f64::from(p[label].max(1e-7)).ln();
    }
    let examples = labels.len() as u64;
    let correct: u64 = (0..n).map(|i| confusion[i][i]).sum();
    let per_class: Vec<ClassMetrics> = classes
        .iter()
        .enumerate()
        .map(|(i, class)| {
            let true_positive = confusion[i][i] as f64;
            let predicted: u64 = confusion.iter().map(|row| row[i]).sum();
            let support: u64 = confusion[i].iter().sum();
            let precision = ratio(true_positive, predicted as f64);
            let recall = ratio(true_positive, support as f64);
            let f1 = ratio(2.0 * precision * recall, precision + recall);
            ClassMetrics {
                class: class.clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    // Macro-F1 over the classes present in the evaluated data (absent classes have no recall).
    let present: Vec<&ClassMetrics> = per_class.iter().filter(|c| c.support > 0).collect();
    let macro_f1 = ratio(present.iter().map(|c| c.f1).sum(), present.len() as f64);
    Evaluation {
        examples,
        accuracy: ratio(correct as f64, examples as f64),
        loss: ratio(loss, examples as f64),
        macro_f1,
        per_class,
        confusion_matrix: confusion,
        calibration: None,
    }
}

/// The 95 % Wilson score interval of an accuracy measured on `examples` images: how far the
/// true accuracy may be from the one measured on a split that small (on 171 validation photos,
/// 0.92 means 0.87–0.95). `(0, 1)` when nothing was scored.
pub fn accuracy_interval_95(accuracy: f64, examples: u64) -> (f64, f64) {
    if examples == 0 {
        return (0.0, 1.0);
    }
    const Z: f64 = 1.959_963_984_540_054;
    let n = examples as f64;
    let z2 = Z * Z;
    let centre = (accuracy + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z / (1.0 + z2 / n) * (accuracy * (1.0 - accuracy) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from the Wilson formula evaluated separately (Python, `math` only).
    #[test]
    fn accuracy_interval_is_wilsons() {
        let (low, high) = accuracy_interval_95(158.0 / 171.0, 171);
        assert!((low - 0.8743).abs() < 5e-4, "{low}");
        assert!((high - 0.9550).abs() < 5e-4, "{high}");
        let (low, high) = accuracy_interval_95(1.0, 20);
        assert!((low - 0.8389).abs() < 5e-4 && high == 1.0, "{low} {high}");
        assert_eq!(accuracy_interval_95(0.5, 0), (0.0, 1.0));
    }

    #[test]
    fn metrics_match_a_hand_computed_case() {
        let classes = vec!["a".to_string(), "b".to_string()];
        // actual a,a,b,b; predicted a,b,b,b
        let probabilities = vec![
            vec![0.9, 0.1],
            vec![0.4, 0.6],
            vec![0.2, 0.8],
            vec![0.3, 0.7],
        ];
        let e = evaluate(&classes, &probabilities, &[0, 0, 1, 1]);
        assert_eq!(e.confusion_matrix, vec![vec![1, 1], vec![0, 2]]);
        assert_eq!(e.accuracy, 0.75);
        let a = &e.per_class[0];
        assert_eq!((a.precision, a.recall, a.support), (1.0, 0.5, 2));
        assert!((a.f1 - 2.0 / 3.0).abs() < 1e-12);
        let b = &e.per_class[1];
        assert!((b.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((e.macro_f1 - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
        let expected_loss = -(0.9f64.ln() + 0.4f64.ln() + 0.8f64.ln() + 0.7f64.ln()) / 4.0;
        assert!((e.loss - expected_loss).abs() < 1e-6);
    }
}
