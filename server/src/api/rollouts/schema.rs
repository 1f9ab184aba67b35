//! Request and response bodies of the rollout operations.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use sprig_core::rollout::policy::{RolloutConfig, Tally};
use sprig_core::RolloutView;
use sprig_store::{ArmFigures, RolloutMode, RolloutState};

#[derive(Debug, Clone, Object)]
pub struct ShadowRequest {
    /// Share of live predict requests the candidate also runs on, after the answer is sent.
    #[oai(validator(minimum(value = "0", exclusive), maximum(value = "1")))]
    pub sample: f64,
}

#[derive(Debug, Clone, Object)]
pub struct CanaryRequest {
    /// Percent of predict requests the candidate answers.
    #[oai(validator(minimum(value = "1"), maximum(value = "50")))]
    pub percent: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RolloutModeName {
    /// Runs on a sample of requests after the answer; never answers.
    Shadow,
    /// Answers a share of requests.
    Canary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RolloutStateName {
    Running,
    /// The policy found the candidate good and activated it.
    Promoted,
    /// The policy found the candidate worse or failing; the active version stayed.
    RolledBack,
    /// Stopped by a person, or because the active version changed.
    Stopped,
}

/// One version's side of a rollout.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ArmInfo {
    pub version: u32,
    /// Requests it answered (canary) or ran on (shadow; for the active version: the shadowed
    /// requests it answered).
    pub requests: u64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub mean_confidence: Option<f64>,
    /// End to end for a canary; for a shadow, the forward pass's time per image (the candidate's
    /// runs only on otherwise idle CPU, and includes waiting for it).
    pub mean_latency_ms: Option<f64>,
    /// The bound of the histogram bucket holding the 95th percentile.
    pub p95_latency_ms: Option<f64>,
    pub max_latency_ms: f64,
    /// Predictions of this version during the rollout that reviewers labelled.
    pub reviewed: u64,
    pub reviewed_accuracy: Option<f64>,
}

impl ArmInfo {
    fn new(version: u32, arm: &ArmFigures, reviewed: Tally) -> Self {
        Self {
            version,
            requests: arm.requests,
            errors: arm.errors,
            error_rate: arm.error_rate(),
            mean_confidence: arm.mean_confidence(),
            mean_latency_ms: arm.mean_latency_ms(),
            p95_latency_ms: arm.p95_latency_ms(),
            max_latency_ms: arm.latency_max_ms,
            reviewed: reviewed.reviewed,
            reviewed_accuracy: reviewed.accuracy(),
        }
    }
}

/// Predictions on which the two versions disagreed (shadow).
#[derive(Debug, Clone, Object)]
pub struct DisagreementInfo {
    pub active_class: String,
    pub candidate_class: String,
    pub count: u64,
}

#[derive(Debug, Clone, Object)]
pub struct VerdictInfo {
    pub at: DateTime<Utc>,
    /// Each bound checked, with its figure.
    pub reasons: Vec<String>,
}

/// The bounds the rollout policy applies (`[rollout]` in the configuration).
#[derive(Debug, Clone, Object)]
pub struct RolloutPolicyInfo {
    pub min_requests: u64,
    pub min_agreement: f64,
    pub max_confidence_drop: f64,
    pub min_reviewed: u64,
    pub max_accuracy_drop: f64,
    pub max_error_rate: f64,
    pub max_latency_ratio: f64,
}

impl From<&RolloutConfig> for RolloutPolicyInfo {
    fn from(policy: &RolloutConfig) -> Self {
        Self {
            min_requests: policy.min_requests,
            min_agreement: policy.min_agreement,
            max_confidence_drop: policy.max_confidence_drop,
            min_reviewed: policy.min_reviewed,
            max_accuracy_drop: policy.max_accuracy_drop,
            max_error_rate: policy.max_error_rate,
            max_latency_ratio: policy.max_latency_ratio,
        }
    }
}

/// A shadow or canary rollout and its live figures, summed over every replica.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct RolloutInfo {
    pub id: u64,
    /// The candidate version.
    pub version: u32,
    pub mode: RolloutModeName,
    /// Shadow: the share of requests sampled.
    pub sample: Option<f64>,
    /// Canary: the percent of requests it answers.
    pub percent: Option<f64>,
    pub state: RolloutStateName,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// How it ended (the policy's figures; also in the activation log).
    pub verdict: Option<VerdictInfo>,
    /// The active version's side.
    pub active: ArmInfo,
    pub candidate: ArmInfo,
    /// Shadow: sampled requests not run because shadow runs were at their bound (busy server).
    pub dropped: u64,
    /// Shadow: requests both versions answered.
    pub compared: u64,
    /// Shadow: share of `compared` where both gave the same class.
    pub agreement: Option<f64>,
    /// Shadow: mean and largest |candidate confidence − active confidence|.
    pub mean_confidence_difference: Option<f64>,
    pub worst_confidence_difference: Option<f64>,
    pub disagreements: Vec<DisagreementInfo>,
    pub policy: RolloutPolicyInfo,
}

impl From<&RolloutView> for RolloutInfo {
    fn from(view: &RolloutView) -> Self {
        let record = &view.record;
        let figures = &record.figures;
        let shadow = record.mode == RolloutMode::Shadow;
        Self {
            id: record.id,
            version: record.version,
            mode: if shadow {
                RolloutModeName::Shadow
            } else {
                RolloutModeName::Canary
            },
            sample: shadow.then_some(record.share),
            percent: (!shadow).then(|| (record.share * 100.0).round()),
            state: match record.state {
                RolloutState::Running => RolloutStateName::Running,
                RolloutState::Promoted => RolloutStateName::Promoted,
                RolloutState::RolledBack => RolloutStateName::RolledBack,
                RolloutState::Stopped => RolloutStateName::Stopped,
            },
            started_at: record.started_at,
            ended_at: record.ended_at,
            verdict: record.verdict.as_ref().map(|v| VerdictInfo {
                at: v.at,
                reasons: v.reasons.clone(),
            }),
            active: ArmInfo::new(record.baseline, &figures.baseline, view.reviewed.baseline),
            candidate: ArmInfo::new(record.version, &figures.candidate, view.reviewed.candidate),
            dropped: figures.dropped,
            compared: figures.compared,
            agreement: figures.agreement(),
            mean_confidence_difference: figures.mean_confidence_diff(),
            worst_confidence_difference: (figures.compared > 0)
                .then_some(figures.confidence_diff_max),
            disagreements: figures
                .disagreements
                .iter()
                .filter_map(|(pair, &count)| {
                    let (active, candidate) = pair.split_once(" -> ")?;
                    Some(DisagreementInfo {
                        active_class: active.into(),
                        candidate_class: candidate.into(),
                        count,
                    })
                })
                .collect(),
            policy: (&view.policy).into(),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct RolloutListResponse {
    /// Newest first.
    pub rollouts: Vec<RolloutInfo>,
}
