//! The activation policy decision: whether a freshly trained version replaces the active one.

use serde::{Deserialize, Serialize};
use sprig_store::{ModelVersionRecord, Split};

use super::config::ActivationPolicy;

/// The active version's score on a new version's validation photos, measured by the pipeline
/// run and kept in the new version's hyperparameters (`compared_with`): two versions trained on
/// different data are each evaluated on their own split, and those figures do not compare.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamePhotosScore {
    pub version: u32,
    pub macro_f1: f64,
    pub accuracy: f64,
    pub images: usize,
}

impl SamePhotosScore {
    fn of(candidate: &ModelVersionRecord) -> Option<Self> {
        serde_json::from_value(candidate.hyperparameters.get("compared_with")?.clone()).ok()
    }
}

/// Whether a freshly trained version should replace the active one, and why. `if_better`
/// compares validation macro-F1 on the same photos when the run scored the active version on
/// the new version's validation split (same classes); otherwise each version's own figure, even
/// when the class set changed: a new class with poor data must not silently replace a good
/// model (activate it by hand if wanted). It never compares scores from different splits: a
/// version scored on its training split (no validation images) is not comparable, so
/// `if_better` leaves the active version in place and says why.
pub fn activation_decision(
    policy: ActivationPolicy,
    tolerance: f64,
    candidate: &ModelVersionRecord,
    active: Option<&ModelVersionRecord>,
) -> (bool, String) {
    match (policy, active) {
        (ActivationPolicy::Manual, _) => (false, "activation policy is manual".into()),
        (_, None) => (true, "no version was active".into()),
        (ActivationPolicy::Always, Some(_)) => (true, "activation policy is always".into()),
        (ActivationPolicy::IfBetter, Some(active))
            if candidate.evaluation_split() != Split::Validation
                || active.evaluation_split() != Split::Validation =>
        {
            let unscored = if candidate.evaluation_split() != Split::Validation {
                candidate.version
            } else {
                active.version
            };
            (false, format!("version {unscored} was scored on its training split (it had no validation images), so the two cannot be compared; activate by hand if wanted"))
        }
        (ActivationPolicy::IfBetter, Some(active)) => {
            let new = candidate.evaluation.macro_f1;
            let (old, on) =
                match SamePhotosScore::of(candidate).filter(|s| s.version == active.version) {
                    Some(same) => (
                        same.macro_f1,
                        format!(" on the same {} photos", same.images),
                    ),
                    None => (active.evaluation.macro_f1, String::new()),
                };
            if new + tolerance >= old {
                (true, format!("validation macro-F1 {new:.4} vs {old:.4} of version {}{on} (tolerance {tolerance})", active.version))
            } else {
                (false, format!("validation macro-F1 {new:.4} is worse than {old:.4} of version {}{on} by more than {tolerance}", active.version))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(number: u32, classes: &[&str], macro_f1: f64) -> ModelVersionRecord {
        let mut record = sprig_store::conformance::model_record(classes);
        record.version = number;
        record.evaluation.macro_f1 = macro_f1;
        record
    }

    #[test]
    fn activation_policies() {
        let active = version(1, &["a", "b"], 0.90);
        let better = version(2, &["a", "b"], 0.93);
        let slightly_worse = version(3, &["a", "b"], 0.89);
        let much_worse = version(4, &["a", "b"], 0.70);
        let new_class_poor = version(5, &["a", "b", "c"], 0.40);
        let decide =
            |policy, candidate: &ModelVersionRecord, active: Option<&ModelVersionRecord>| {
                activation_decision(policy, 0.02, candidate, active).0
            };
        use ActivationPolicy::*;
        assert!(decide(IfBetter, &better, Some(&active)));
        assert!(
            decide(IfBetter, &slightly_worse, Some(&active)),
            "within tolerance"
        );
        assert!(!decide(IfBetter, &much_worse, Some(&active)));
        assert!(
            !decide(IfBetter, &new_class_poor, Some(&active)),
            "a new class does not bypass the check"
        );
        assert!(
            decide(IfBetter, &much_worse, None),
            "anything beats no model"
        );
        assert!(decide(Always, &much_worse, Some(&active)));
        assert!(!decide(Manual, &better, Some(&active)));
        assert!(!decide(Manual, &better, None));

        // A score on the training split is never compared with a validation score.
        let mut train_scored = version(6, &["a", "b"], 0.99);
        train_scored.hyperparameters = serde_json::json!({"evaluation_split": "train"});
        assert!(!decide(IfBetter, &train_scored, Some(&active)));
        assert!(!decide(IfBetter, &better, Some(&train_scored)));
        assert!(
            decide(IfBetter, &train_scored, None),
            "anything beats no model"
        );
        assert!(decide(Always, &train_scored, Some(&active)));
        let (_, reason) = activation_decision(IfBetter, 0.02, &train_scored, Some(&active));
        assert!(
            reason.contains("version 6 was scored on its training split"),
            "{reason}"
        );
    }

    #[test]
    fn if_better_compares_the_same_photos_when_the_run_scored_the_active_version() {
        // Version 1 scored 0.95 on its own split, but only 0.70 on version 2's photos.
        let active = version(1, &["a", "b"], 0.95);
        let mut candidate = version(2, &["a", "b"], 0.80);
        let same = SamePhotosScore {
            version: 1,
            macro_f1: 0.70,
            accuracy: 0.72,
            images: 40,
        };
        candidate.hyperparameters = serde_json::json!({ "compared_with": same });
        let (activated, reason) =
            activation_decision(ActivationPolicy::IfBetter, 0.02, &candidate, Some(&active));
        assert!(activated, "{reason}");
        assert!(
            reason.contains("0.8000 vs 0.7000 of version 1 on the same 40 photos"),
            "{reason}"
        );
        // A score of another version than the one active now is not used.
        let other = version(3, &["a", "b"], 0.95);
        let (activated, reason) =
            activation_decision(ActivationPolicy::IfBetter, 0.02, &candidate, Some(&other));
        assert!(!activated, "{reason}");
        assert!(!reason.contains("same"), "{reason}");
    }
}
