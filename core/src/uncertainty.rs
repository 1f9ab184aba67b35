//! How unsure a prediction is, from its probabilities alone: the two scores every prediction
//! carries (and stores), for the review queue and drift to rank and watch.
//!
//! `uncertainty` = 1 − (top − second): 0 when one class has all the mass, 1 when the two
//! likeliest classes tie. It is the score to rank by: the question a reviewer answers is which of
//! the two classes in contention is right, and the margin is exactly how close that call was.
//! `entropy` (normalised to [0, 1] by ln K) also counts mass spread over classes that are not in
//! contention, so it tells "confused between two" from "confused among all".

/// `(uncertainty, entropy)` of one prediction's probabilities.
pub fn scores(probabilities: &[f32]) -> (f32, f32) {
    let (mut top, mut second) = (0.0f32, 0.0f32);
    for &p in probabilities {
        if p > top {
            (top, second) = (p, top);
        } else if p > second {
            second = p;
        }
    }
    let k = probabilities.len();
    let entropy = if k < 2 {
        0.0
    } else {
        let h: f64 = probabilities
            .iter()
            .filter(|&&p| p > 0.0)
            .map(|&p| -f64::from(p) * f64::from(p).ln())
            .sum();
        (h / (k as f64).ln()) as f32
    };
    (
        (1.0 - (top - second)).clamp(0.0, 1.0),
        entropy.clamp(0.0, 1.0),
    )
}

#[cfg(test)]
mod tests {
    use super::scores;

    #[test]
    fn certain_tied_and_spread_predictions() {
        assert_eq!(scores(&[1.0, 0.0, 0.0]), (0.0, 0.0));
        let (u, h) = scores(&[0.5, 0.5, 0.0]);
        assert!((u - 1.0).abs() < 1e-6 && (h - 2f32.ln() / 3f32.ln()).abs() < 1e-6);
        let (u, h) = scores(&[1.0 / 3.0; 3]);
        assert!((u - 1.0).abs() < 1e-6 && (h - 1.0).abs() < 1e-6);
        // Same margin, different spread: entropy tells them apart.
        let (u1, h1) = scores(&[0.6, 0.4, 0.0]);
        let (u2, h2) = scores(&[0.5, 0.3, 0.2]);
        assert!((u1 - 0.8).abs() < 1e-6 && (u2 - 0.8).abs() < 1e-6);
        assert!(h2 > h1);
        // Order does not matter.
        assert_eq!(scores(&[0.1, 0.7, 0.2]), scores(&[0.7, 0.2, 0.1]));
    }
}
