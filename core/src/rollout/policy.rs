//! The rollout policy: figures in, a verdict out. Promote once the candidate has seen enough
//! requests and agrees with the active version, is as confident, and (where reviewers labelled
//! enough of its predictions) as accurate; roll back at once on errors or latency beyond bounds.

use serde::{Deserialize, Serialize};
use sprig_store::{RolloutFigures, RolloutMode};

/// `[rollout]` in `sprig.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutConfig {
    /// How often each process adds its figures to the store, picks up rollouts other replicas
    /// started or ended, and applies the policy.
    pub sync_secs: u64,
    /// Requests the candidate must have answered (canary) or run on (shadow) before a verdict
    /// on its quality.
    pub min_requests: u64,
    /// Shadow: the least top-1 agreement with the active version to promote.
    pub min_agreement: f64,
    /// The most the candidate's mean confidence may fall below the active version's.
    pub max_confidence_drop: f64,
    /// Reviewed predictions needed before reviewed accuracy counts.
    pub min_reviewed: u64,
    /// The most the candidate's reviewed accuracy may fall below the active version's.
    pub max_accuracy_drop: f64,
    /// Rolled back when more than this share of the candidate's requests fail...
    pub max_error_rate: f64,
    /// ...or (canary) when its 95th-percentile latency exceeds the active version's by this
    /// factor.
    pub max_latency_ratio: f64,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        Self {
            sync_secs: 2,
            min_requests: 200,
            min_agreement: 0.95,
            max_confidence_drop: 0.05,
            min_reviewed: 20,
            max_accuracy_drop: 0.02,
            max_error_rate: 0.01,
            max_latency_ratio: 2.0,
        }
    }
}

/// Reviewed predictions of one version during a rollout, and how many it got right.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub reviewed: u64,
    pub correct: u64,
}

impl Tally {
    pub fn add(&mut self, correct: bool) {
        self.reviewed += 1;
        self.correct += u64::from(correct);
    }

    pub fn accuracy(&self) -> Option<f64> {
        (self.reviewed > 0).then(|| self.correct as f64 / self.reviewed as f64)
    }
}

/// Accuracy of both versions on reviewed predictions: in a shadow, the same predictions; in a
/// canary, those each version answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ReviewedAccuracy {
    pub baseline: Tally,
    pub candidate: Tally,
}

/// What the policy decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    Continue,
    Promote(Vec<String>),
    RollBack(Vec<String>),
}

/// Requests (answered or failed) before the error bound applies (the latency bound waits for
/// a quarter of `min_requests`, at least this many).
const EARLY_REQUESTS: u64 = 20;

impl RolloutConfig {
    pub fn judge(
        &self,
        mode: RolloutMode,
        figures: &RolloutFigures,
        reviewed: &ReviewedAccuracy,
    ) -> Judgement {
        let candidate = &figures.candidate;
        let baseline = &figures.baseline;
        let tried = candidate.requests + candidate.errors;
        if tried >= EARLY_REQUESTS {
            let rate = candidate.error_rate().unwrap_or(0.0);
            if rate > self.max_error_rate {
                return Judgement::RollBack(vec![format!(
                    "error rate {rate:.3} > {} ({} of {tried} requests failed)",
                    self.max_error_rate, candidate.errors
                )]);
            }
            // A 95th percentile needs more requests than a failure count does. A shadow's runs
            // wait for otherwise idle CPU: their time is not the model's alone.
            let enough = EARLY_REQUESTS.max(self.min_requests / 4);
            let serves = mode == RolloutMode::Canary;
            if let (Some(theirs), Some(ours)) =
                (candidate.p95_latency_ms(), baseline.p95_latency_ms())
            {
                if serves
                    && candidate.requests.min(baseline.requests) >= enough
                    && theirs > ours * self.max_latency_ratio
                {
                    return Judgement::RollBack(vec![format!(
                        "p95 latency {theirs:.1} ms > {} x the active version's {ours:.1} ms",
                        self.max_latency_ratio
                    )]);
                }
            }
        }
        if candidate.requests < self.min_requests {
            return Judgement::Continue;
        }
        let mut reasons = Vec::new();
        let mut pass = true;
        let mut check = |ok: bool, line: String| {
            pass &= ok;
            reasons.push(format!("{line} ({})", if ok { "ok" } else { "failed" }));
        };
        if mode == RolloutMode::Shadow {
            let agreement = figures.agreement().unwrap_or(0.0);
            check(
                agreement >= self.min_agreement,
                format!(
                    "agreement {agreement:.3} >= {} over {} requests",
                    self.min_agreement, figures.compared
                ),
            );
        }
        let theirs = candidate.mean_confidence().unwrap_or(0.0);
        let ours = baseline.mean_confidence().unwrap_or(theirs);
        check(
            theirs >= ours - self.max_confidence_drop,
            format!(
                "mean confidence {theirs:.3} vs {ours:.3} (drop <= {})",
                self.max_confidence_drop
            ),
        );
        let rate = candidate.error_rate().unwrap_or(0.0);
        check(
            rate <= self.max_error_rate,
            format!("error rate {rate:.3} <= {}", self.max_error_rate),
        );
        let (theirs, ours) = (reviewed.candidate, reviewed.baseline);
        if theirs.reviewed.min(ours.reviewed) >= self.min_reviewed {
            let (theirs, ours) = (
                theirs.accuracy().unwrap_or(0.0),
                ours.accuracy().unwrap_or(0.0),
            );
            check(
                theirs >= ours - self.max_accuracy_drop,
                format!(
                    "reviewed accuracy {theirs:.3} vs {ours:.3} on {} / {} predictions (drop <= {})",
                    reviewed.candidate.reviewed, reviewed.baseline.reviewed, self.max_accuracy_drop
                ),
            );
        }
        if pass {
            Judgement::Promote(reasons)
        } else {
            Judgement::RollBack(reasons)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(requests: u64, agreed: u64, confidence: f64, latency: f64) -> RolloutFigures {
        let mut figures = RolloutFigures::default();
        for i in 0..requests {
            figures.baseline.observe(0.9, 4.0);
            figures.candidate.observe(confidence, latency);
            figures.compared += 1;
            figures.agreed += u64::from(i < agreed);
        }
        figures
    }

    #[test]
    fn waits_for_enough_requests_then_promotes_a_good_candidate() {
        let policy = RolloutConfig::default();
        let none = ReviewedAccuracy::default();
        let early = figures(199, 199, 0.9, 4.0);
        assert_eq!(
            policy.judge(RolloutMode::Shadow, &early, &none),
            Judgement::Continue
        );
        let ready = figures(200, 196, 0.88, 4.0);
        match policy.judge(RolloutMode::Shadow, &ready, &none) {
            Judgement::Promote(reasons) => {
                assert!(
                    reasons[0].starts_with("agreement 0.980 >= 0.95"),
                    "{reasons:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rolls_back_on_disagreement_confidence_accuracy_errors_and_latency() {
        let policy = RolloutConfig::default();
        let none = ReviewedAccuracy::default();
        let shadow = RolloutMode::Shadow;
        assert!(matches!(
            policy.judge(shadow, &figures(200, 150, 0.9, 4.0), &none),
            Judgement::RollBack(_)
        ));
        assert!(matches!(
            policy.judge(RolloutMode::Canary, &figures(200, 0, 0.8, 4.0), &none),
            Judgement::RollBack(_)
        ));
        let worse = ReviewedAccuracy {
            baseline: Tally {
                reviewed: 40,
                correct: 38,
            },
            candidate: Tally {
                reviewed: 40,
                correct: 34,
            },
        };
        assert!(matches!(
            policy.judge(shadow, &figures(200, 200, 0.9, 4.0), &worse),
            Judgement::RollBack(_)
        ));
        // Errors and latency act early, before min_requests.
        let mut failing = figures(30, 30, 0.9, 4.0);
        failing.candidate.errors = 2;
        assert!(matches!(
            policy.judge(shadow, &failing, &none),
            Judgement::RollBack(r) if r[0].starts_with("error rate")
        ));
        let canary = RolloutMode::Canary;
        assert_eq!(
            policy.judge(canary, &figures(49, 49, 0.9, 13.0), &none),
            Judgement::Continue,
            "a p95 needs min_requests / 4 requests"
        );
        assert!(matches!(
            policy.judge(canary, &figures(50, 50, 0.9, 13.0), &none),
            Judgement::RollBack(r) if r[0].starts_with("p95 latency")
        ));
        assert_eq!(
            policy.judge(shadow, &figures(50, 50, 0.9, 13.0), &none),
            Judgement::Continue,
            "a shadow's latency is reported, not judged"
        );
    }
}
