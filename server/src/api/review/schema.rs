//! Request and response bodies of the review queue and drift operations.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object};
use sprig_core::drift::{DriftPoint, DriftStatistic, DriftWindow};
use sprig_core::{DriftReport, DriftStatus};
use sprig_store::{ReviewItem, ReviewState, ReviewSummary};

/// A prediction kept for review; `state` is `pending`, `labelled` or `dismissed`.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ReviewEntry {
    pub prediction_id: u64,
    pub predicted_class: String,
    /// Probability per class, as served (calibrated).
    pub probabilities: BTreeMap<String, f64>,
    /// 1 − (top − second probability): what orders the queue.
    pub uncertainty: f64,
    pub entropy: f64,
    pub out_of_distribution: bool,
    /// Distance from the version's training images in units of its threshold (above 1.0: out
    /// of distribution); absent for versions without a reference.
    pub novelty: Option<f64>,
    pub model_version: u32,
    pub filename: Option<String>,
    /// When the prediction was made.
    pub created_at: DateTime<Utc>,
    pub state: ReviewStateName,
    /// The class the reviewer gave.
    pub label: Option<String>,
    /// The data-set image the label added (or found: the same bytes were already there).
    pub image_id: Option<u64>,
    pub reviewed_at: Option<DateTime<Utc>>,
    /// Where the kept image is (`GET /api/predictions/{id}/image`), while pending.
    pub image_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ReviewStateName {
    Pending,
    Labelled,
    Dismissed,
}

impl From<ReviewItem> for ReviewEntry {
    fn from(item: ReviewItem) -> Self {
        let pending = item.state == ReviewState::Pending;
        Self {
            image_url: pending.then(|| format!("/api/predictions/{}/image", item.prediction_id)),
            prediction_id: item.prediction_id,
            predicted_class: item.predicted_class,
            probabilities: item
                .probabilities
                .iter()
                .map(|c| (c.class.clone(), f64::from(c.probability)))
                .collect(),
            uncertainty: f64::from(item.uncertainty),
            entropy: f64::from(item.entropy),
            out_of_distribution: item.out_of_distribution,
            novelty: item.novelty.map(f64::from),
            model_version: item.model_version,
            filename: item.filename,
            created_at: item.created_at,
            state: match item.state {
                ReviewState::Pending => ReviewStateName::Pending,
                ReviewState::Labelled => ReviewStateName::Labelled,
                ReviewState::Dismissed => ReviewStateName::Dismissed,
            },
            label: item.label,
            image_id: item.image_id,
            reviewed_at: item.reviewed_at,
        }
    }
}

crate::api::paging::page_type!(ReviewPage, ReviewEntry);

/// Body of `POST /api/review/{prediction_id}`: either `class` or `dismiss: true`.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, example, deny_unknown_fields)]
pub struct ReviewRequest {
    /// Label the image with this class: it joins the data set (as an upload would).
    pub class: Option<String>,
    /// `true`: drop the image from the queue without labelling it.
    pub dismiss: Option<bool>,
}

impl Example for ReviewRequest {
    fn example() -> Self {
        Self {
            class: Some("bean_rust".into()),
            dismiss: None,
        }
    }
}

/// How one model version did on the predictions reviewers labelled.
#[derive(Debug, Clone, Object)]
pub struct ReviewedVersion {
    pub model_version: u32,
    pub labelled: u64,
    /// Labelled with the class the version predicted.
    pub agreed: u64,
    pub accuracy: f64,
}

/// The queue's state.
#[derive(Debug, Clone, Object)]
pub struct ReviewSummaryResponse {
    pub pending: u64,
    pub kept_bytes: u64,
    /// `review.max_bytes`: the oldest pending images are evicted beyond it.
    pub max_bytes: u64,
    /// `review.keep_images`.
    pub keep_images: String,
    pub labelled: u64,
    pub dismissed: u64,
    pub evicted: u64,
    /// Per version, on the predictions reviewers labelled.
    pub accuracy: Vec<ReviewedVersion>,
    /// What that accuracy means.
    pub caveat: String,
}

/// The caveat every per-version review accuracy carries.
pub const REVIEW_CAVEAT: &str = "Measured on the predictions kept for review, which are chosen \
because the model was unsure or the image looked unfamiliar: a sample biased toward hard cases, \
so this accuracy is lower than on typical traffic.";

impl ReviewSummaryResponse {
    pub fn new(summary: ReviewSummary, max_bytes: u64, keep_images: String) -> Self {
        Self {
            pending: summary.pending,
            kept_bytes: summary.kept_bytes,
            max_bytes,
            keep_images,
            labelled: summary.labelled,
            dismissed: summary.dismissed,
            evicted: summary.evicted,
            accuracy: summary
                .accuracy
                .iter()
                .map(|a| ReviewedVersion {
                    model_version: a.model_version,
                    labelled: a.labelled,
                    agreed: a.agreed,
                    accuracy: a.agreed as f64 / a.labelled.max(1) as f64,
                })
                .collect(),
            caveat: REVIEW_CAVEAT.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum DriftStatusName {
    Ok,
    Warning,
    Drift,
}

impl From<DriftStatus> for DriftStatusName {
    fn from(status: DriftStatus) -> Self {
        match status {
            DriftStatus::Ok => Self::Ok,
            DriftStatus::Warning => Self::Warning,
            DriftStatus::Drift => Self::Drift,
        }
    }
}

/// One statistic of a window against its thresholds.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DriftStatisticInfo {
    /// `ood_share` (share of the window's images out of distribution), `class_mix_psi` or
    /// `confidence_drop`.
    pub name: String,
    /// Absent while the window has too few predictions.
    pub value: Option<f64>,
    /// Its median over in-distribution windows of this size.
    pub expected: f64,
    pub warning: f64,
    pub drift: f64,
    pub status: DriftStatusName,
}

impl From<&DriftStatistic> for DriftStatisticInfo {
    fn from(s: &DriftStatistic) -> Self {
        Self {
            name: s.name.into(),
            value: s.value,
            expected: s.expected,
            warning: s.warning,
            drift: s.drift,
            status: s.status.into(),
        }
    }
}

/// A rolling window of recent predictions of the active version.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DriftWindowInfo {
    /// `count` (the last `size` predictions) or `time` (those of the last `size` minutes).
    pub kind: String,
    pub size: u64,
    pub predictions: u64,
    pub status: DriftStatusName,
    /// Why it is not judged, if it is not.
    pub note: Option<String>,
    pub statistics: Vec<DriftStatisticInfo>,
    /// Share of in-distribution windows of this size that would be `warning` or worse.
    pub warning_rate: f64,
    /// Share of in-distribution windows of this size that would be `drift`.
    pub false_alarm_rate: f64,
}

impl From<&DriftWindow> for DriftWindowInfo {
    fn from(w: &DriftWindow) -> Self {
        Self {
            kind: w.kind.into(),
            size: w.size,
            predictions: w.predictions as u64,
            status: w.status.into(),
            note: w.note.clone(),
            statistics: w.statistics.iter().map(Into::into).collect(),
            warning_rate: w.warning_rate,
            false_alarm_rate: w.false_alarm_rate,
        }
    }
}

/// One point of the drift history (the count window).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DriftHistoryPoint {
    pub at: DateTime<Utc>,
    pub model_version: Option<u32>,
    pub status: DriftStatusName,
    pub predictions: u64,
    pub ood_share: Option<f64>,
    pub class_mix_psi: Option<f64>,
    pub confidence_drop: Option<f64>,
}

impl From<&DriftPoint> for DriftHistoryPoint {
    fn from(p: &DriftPoint) -> Self {
        Self {
            at: p.at,
            model_version: p.model_version,
            status: p.status.into(),
            predictions: p.predictions as u64,
            ood_share: p.values[0],
            class_mix_psi: p.values[1],
            confidence_drop: p.values[2],
        }
    }
}

/// Whether recent traffic still looks like what the active version was trained on; `status` is
/// the worst window's.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DriftResponse {
    pub status: DriftStatusName,
    pub model_version: Option<u32>,
    pub checked_at: DateTime<Utc>,
    pub note: Option<String>,
    pub windows: Vec<DriftWindowInfo>,
    /// Oldest first, one point per `drift.interval_secs`, kept in this process's memory.
    pub history: Vec<DriftHistoryPoint>,
}

impl From<&DriftReport> for DriftResponse {
    fn from(r: &DriftReport) -> Self {
        Self {
            status: r.status.into(),
            model_version: r.model_version,
            checked_at: r.checked_at,
            note: r.note.clone(),
            windows: r.windows.iter().map(Into::into).collect(),
            history: r.history.iter().map(Into::into).collect(),
        }
    }
}
