//! What a rollout keeps: a candidate version tried on live traffic beside the active one (in the
//! shadow of it, or serving a share of requests), the figures every process gathered, and how it
//! ended.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::Timestamp;

/// How the candidate meets live traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutMode {
    /// Runs on a sample of requests after the answer is sent; never answers.
    Shadow,
    /// Answers a share of requests.
    Canary,
}

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    Running,
    /// The policy found the candidate good; it was activated.
    Promoted,
    /// The policy found the candidate worse (or failing); the active version stayed.
    RolledBack,
    /// A person stopped it.
    Stopped,
}

/// A rollout to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRollout {
    pub version: u32,
    pub mode: RolloutMode,
    /// Shadow: the share of requests mirrored (0–1). Canary: the share answered (0.01–0.5).
    pub share: f64,
    /// The active version it is measured against.
    pub baseline: u32,
    /// The newest prediction id when it started: reviews of later predictions measure it.
    pub since_prediction: u64,
}

/// How a rollout ended: the decision and the figures that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub at: Timestamp,
    /// One line per bound checked, e.g. `agreement 0.97 >= 0.95`.
    pub reasons: Vec<String>,
}

/// A rollout: one running at a time per store, kept after it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    pub id: u64,
    pub version: u32,
    pub mode: RolloutMode,
    pub share: f64,
    pub baseline: u32,
    pub since_prediction: u64,
    pub state: RolloutState,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub figures: RolloutFigures,
    pub verdict: Option<Verdict>,
}

impl RolloutRecord {
    pub fn from_new(id: u64, new: NewRollout, started_at: Timestamp) -> Self {
        Self {
            id,
            version: new.version,
            mode: new.mode,
            share: new.share,
            baseline: new.baseline,
            since_prediction: new.since_prediction,
            state: RolloutState::Running,
            started_at,
            ended_at: None,
            figures: RolloutFigures::default(),
            verdict: None,
        }
    }

    /// Ends a running record (its figures stay).
    pub fn end(&mut self, state: RolloutState, verdict: Verdict) {
        self.state = state;
        self.ended_at = Some(verdict.at);
        self.verdict = Some(verdict);
    }
}

/// Upper bounds (ms) of the latency histogram's buckets; the last bucket is everything above.
pub const LATENCY_BOUNDS_MS: [f64; 16] = [
    1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 50.0, 80.0, 130.0, 200.0, 300.0, 500.0, 800.0,
    1300.0,
];

/// One version's side of a rollout: requests it answered (or, in a shadow, ran on), failures,
/// confidence and latency. Sums, so that processes' figures add up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmFigures {
    pub requests: u64,
    pub errors: u64,
    pub confidence_sum: f64,
    pub latency_sum_ms: f64,
    pub latency_max_ms: f64,
    /// Counts per [`LATENCY_BOUNDS_MS`] bucket, plus one for above the last bound.
    pub latency_buckets: Vec<u64>,
}

impl ArmFigures {
    pub fn observe(&mut self, confidence: f64, latency_ms: f64) {
        self.requests += 1;
        self.confidence_sum += confidence;
        self.latency_sum_ms += latency_ms;
        self.latency_max_ms = self.latency_max_ms.max(latency_ms);
        if self.latency_buckets.len() != LATENCY_BOUNDS_MS.len() + 1 {
            self.latency_buckets = vec![0; LATENCY_BOUNDS_MS.len() + 1];
        }
        let bucket = LATENCY_BOUNDS_MS
            .iter()
            .position(|&bound| latency_ms <= bound)
            .unwrap_or(LATENCY_BOUNDS_MS.len());
        self.latency_buckets[bucket] += 1;
    }

    pub fn mean_confidence(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.confidence_sum / self.requests as f64)
    }

    pub fn mean_latency_ms(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.latency_sum_ms / self.requests as f64)
    }

    /// The bound of the bucket holding the 95th percentile (the largest latency seen, for the
    /// open top bucket).
    pub fn p95_latency_ms(&self) -> Option<f64> {
        let total: u64 = self.latency_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (total as f64 * 0.95).ceil() as u64;
        let mut seen = 0;
        for (bucket, count) in self.latency_buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let bound = LATENCY_BOUNDS_MS.get(bucket).copied();
                return Some(bound.map_or(self.latency_max_ms, |b| b.min(self.latency_max_ms)));
            }
        }
        Some(self.latency_max_ms)
    }

    pub fn error_rate(&self) -> Option<f64> {
        let tried = self.requests + self.errors;
        (tried > 0).then(|| self.errors as f64 / tried as f64)
    }

    fn merge(&mut self, other: &ArmFigures) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.confidence_sum += other.confidence_sum;
        self.latency_sum_ms += other.latency_sum_ms;
        self.latency_max_ms = self.latency_max_ms.max(other.latency_max_ms);
        if self.latency_buckets.len() < other.latency_buckets.len() {
            self.latency_buckets.resize(other.latency_buckets.len(), 0);
        }
        for (mine, theirs) in self.latency_buckets.iter_mut().zip(&other.latency_buckets) {
            *mine += theirs;
        }
    }
}

/// The most candidate answers kept for predictions waiting in the review queue (a shadow's
/// reviewed accuracy is measured on them).
pub const MAX_REVIEWED_ANSWERS: usize = 5_000;

/// What a rollout saw, summed over every process that served it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutFigures {
    /// The active version's side (shadow: the answers sent; canary: requests it answered).
    pub baseline: ArmFigures,
    /// The candidate's side (shadow: its runs; canary: requests it answered).
    pub candidate: ArmFigures,
    /// Shadow: requests sampled but not run because the server was busy.
    pub dropped: u64,
    /// Shadow: requests both versions answered, and how many alike (top-1).
    pub compared: u64,
    pub agreed: u64,
    /// Shadow: |candidate confidence − active confidence|, summed and at its largest.
    pub confidence_diff_sum: f64,
    pub confidence_diff_max: f64,
    /// Shadow: disagreements as `active class -> candidate class`, counted.
    pub disagreements: BTreeMap<String, u64>,
    /// Shadow: the candidate's class for predictions kept for review (prediction id → class).
    pub reviewed_answers: BTreeMap<u64, String>,
}

impl RolloutFigures {
    /// Adds another process's (or a later moment's) figures to these.
    pub fn merge(&mut self, other: &RolloutFigures) {
        self.baseline.merge(&other.baseline);
        self.candidate.merge(&other.candidate);
        self.dropped += other.dropped;
        self.compared += other.compared;
        self.agreed += other.agreed;
        self.confidence_diff_sum += other.confidence_diff_sum;
        self.confidence_diff_max = self.confidence_diff_max.max(other.confidence_diff_max);
        for (pair, count) in &other.disagreements {
            *self.disagreements.entry(pair.clone()).or_default() += count;
        }
        for (id, class) in &other.reviewed_answers {
            if self.reviewed_answers.len() >= MAX_REVIEWED_ANSWERS {
                break;
            }
            self.reviewed_answers.insert(*id, class.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == RolloutFigures::default()
    }

    pub fn agreement(&self) -> Option<f64> {
        (self.compared > 0).then(|| self.agreed as f64 / self.compared as f64)
    }

    pub fn mean_confidence_diff(&self) -> Option<f64> {
        (self.compared > 0).then(|| self.confidence_diff_sum / self.compared as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_add_up_across_processes() {
        let mut a = RolloutFigures::default();
        a.candidate.observe(0.9, 4.0);
        a.compared = 1;
        a.agreed = 1;
        a.disagreements.insert("x -> y".into(), 2);
        let mut b = RolloutFigures::default();
        b.candidate.observe(0.5, 900.0);
        b.compared = 1;
        b.confidence_diff_max = 0.3;
        b.disagreements.insert("x -> y".into(), 1);
        a.merge(&b);
        assert_eq!(a.candidate.requests, 2);
        assert_eq!(a.candidate.mean_confidence(), Some(0.7));
        assert_eq!(a.candidate.latency_max_ms, 900.0);
        assert_eq!(a.agreement(), Some(0.5));
        assert_eq!(a.confidence_diff_max, 0.3);
        assert_eq!(a.disagreements["x -> y"], 3);
    }

    #[test]
    fn p95_is_the_bucket_bound_holding_it() {
        let mut arm = ArmFigures::default();
        for _ in 0..95 {
            arm.observe(1.0, 2.5);
        }
        for _ in 0..5 {
            arm.observe(1.0, 60.0);
        }
        assert_eq!(arm.p95_latency_ms(), Some(3.0));
        arm.observe(1.0, 60.0);
        assert_eq!(arm.p95_latency_ms(), Some(60.0));
    }
}
