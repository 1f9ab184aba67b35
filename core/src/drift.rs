//! Drift: whether recent traffic still looks like what the active version was trained on.
//!
//! Two rolling windows of the active version's recent predictions (the last `window` of them,
//! and those of the last `window_minutes`) are compared with the version's reference
//! ([`sprig_store::DistributionReference`]) by three statistics:
//! - `ood_share`: the share of the window's images over the out-of-distribution threshold
//!   (embedding shift where it matters: about 1 % of the version's own held-out images are, by
//!   construction). The mean novelty was tried first and dropped: over 200 predictions its
//!   spread is so small that held-out bean photos from the same source, a little further from
//!   the training photos than those are from each other, read `warning` (raw output in
//!   loadtest/results/data-loop-2026-12-05-mean-novelty/);
//! - `class_mix_psi`: the population stability index of the predicted classes against the
//!   training images' class mix;
//! - `confidence_drop`: how far the mean served confidence fell below the mean on the
//!   validation images.
//!
//! Thresholds come from the version's own images: windows of the same size resampled (with
//! replacement) from its out-of-sample novelties and validation answers are in-distribution
//! traffic by construction; a statistic's `warning` and `drift` thresholds are quantiles of its
//! value over those windows, and the report states how often such a window raised either
//! (the false-alarm rate, all statistics together).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sprig_backends::SplitMix;
use sprig_store::{DistributionReference, PredictionRecord, Timestamp};

use crate::novelty::quantile;

/// `[drift]` in `sprig.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftConfig {
    /// The count window: the active version's last this many predictions.
    pub window: usize,
    /// The time window: its predictions of the last this many minutes (the newest
    /// [`MAX_TIME_WINDOW`] of them).
    pub window_minutes: u32,
    /// A window with fewer predictions is not judged.
    pub min_predictions: usize,
    /// Seconds between two points of the history (and updates of the Prometheus gauges).
    pub interval_secs: u64,
    /// Share of resampled in-distribution windows below a statistic's warning threshold.
    pub warning_quantile: f64,
    /// The same for the drift threshold.
    pub drift_quantile: f64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        Self {
            window: 200,
            window_minutes: 60,
            min_predictions: 30,
            interval_secs: 60,
            warning_quantile: 0.99,
            drift_quantile: 0.999,
        }
    }
}

/// The time window's size limit.
pub const MAX_TIME_WINDOW: usize = 2000;
const RESAMPLES: usize = 2000;
const HISTORY: usize = 1440;
const RESAMPLE_SEED: u64 = 0x5350_5249_4700_0004;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    Ok,
    Warning,
    Drift,
}

/// The statistics, in report order.
pub const STATISTICS: [&str; 3] = ["ood_share", "class_mix_psi", "confidence_drop"];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftStatistic {
    pub name: &'static str,
    /// `None` when the window or the reference is too small to judge.
    pub value: Option<f64>,
    /// Its median over the resampled in-distribution windows.
    pub expected: f64,
    pub warning: f64,
    pub drift: f64,
    pub status: DriftStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftWindow {
    /// `count` or `time`.
    pub kind: &'static str,
    /// Predictions (`count`) or minutes (`time`) it spans at most.
    pub size: u64,
    /// Predictions of the active version in it.
    pub predictions: usize,
    pub status: DriftStatus,
    /// Why it is not judged, if it is not.
    pub note: Option<String>,
    pub statistics: Vec<DriftStatistic>,
    /// Of in-distribution windows of this size, the share that would be `warning` or worse,
    /// and `drift` (all statistics together).
    pub warning_rate: f64,
    pub false_alarm_rate: f64,
}

/// One point of the history: the count window's statistics at a time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftPoint {
    pub at: Timestamp,
    pub model_version: Option<u32>,
    pub status: DriftStatus,
    pub predictions: usize,
    pub values: [Option<f64>; 3],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    pub status: DriftStatus,
    pub model_version: Option<u32>,
    pub checked_at: Timestamp,
    /// Why nothing is judged, if nothing is (no active version, or one without a reference).
    pub note: Option<String>,
    pub windows: Vec<DriftWindow>,
    pub history: Vec<DriftPoint>,
}

/// Per statistic (in [`STATISTICS`] order): expected, warning and drift values; `None` when the
/// reference cannot judge it.
struct Thresholds {
    levels: [Option<(f64, f64, f64)>; 3],
    warning_rate: f64,
    drift_rate: f64,
}

/// The three statistics of a window's (novelty, confidence, predicted class) triples.
fn statistics(
    reference: &DistributionReference,
    reference_confidence: f64,
    novelty: &[f32],
    answers: &[(f32, u32)],
) -> [Option<f64>; 3] {
    let mean = |values: &mut dyn Iterator<Item = f64>| {
        let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
        (n > 0).then(|| sum / n as f64)
    };
    let novelty = share_over_threshold(novelty);
    let judged = !reference.confidence_samples.is_empty() && !answers.is_empty();
    let confidence = judged
        .then(|| mean(&mut answers.iter().map(|&(c, _)| f64::from(c))))
        .flatten()
        .map(|m| reference_confidence - m);
    let psi = judged.then(|| {
        let k = reference.class_prior.len();
        let mut counts = vec![0.0f64; k];
        for &(_, class) in answers {
            if let Some(count) = counts.get_mut(class as usize) {
                *count += 1.0;
            }
        }
        let n = answers.len() as f64;
        counts
            .iter()
            .zip(&reference.class_prior)
            .map(|(&c, &q)| {
                // Half a count of smoothing keeps an empty class finite.
                let p = (c + 0.5) / (n + 0.5 * k as f64);
                let q = q.max(1e-4);
                (p - q) * (p / q).ln()
            })
            .sum()
    });
    [novelty, psi, confidence]
}

/// The share of novelties above 1.0 (`None` for none).
fn share_over_threshold(novelty: &[f32]) -> Option<f64> {
    (!novelty.is_empty())
        .then(|| novelty.iter().filter(|&&v| v > 1.0).count() as f64 / novelty.len() as f64)
}

fn mean_of(samples: &[f32]) -> f64 {
    samples.iter().map(|&c| f64::from(c)).sum::<f64>() / samples.len().max(1) as f64
}

fn mean_confidence(reference: &DistributionReference) -> f64 {
    mean_of(&reference.confidence_samples)
}

fn resample_thresholds(
    reference: &DistributionReference,
    n: usize,
    config: &DriftConfig,
) -> Thresholds {
    let mut rng = SplitMix::new(RESAMPLE_SEED ^ n as u64);
    let reference_confidence = mean_confidence(reference);
    let answers: Vec<(f32, u32)> = reference
        .confidence_samples
        .iter()
        .copied()
        .zip(reference.predicted_samples.iter().copied())
        .collect();
    let mut pick = |len: usize| (rng.next_u64() % len.max(1) as u64) as usize;
    let reference_share = share_over_threshold(&reference.novelty_samples).unwrap_or(0.0);
    let windows: Vec<[Option<f64>; 3]> = (0..RESAMPLES)
        .map(|_| {
            let mut draw = |samples: &[f32], count: usize| -> Vec<f32> {
                (0..count).map(|_| samples[pick(samples.len())]).collect()
            };
            // The reference is a sample too: each resampled window is compared with a
            // resampled reference, so the thresholds allow for both (a few hundred images
            // pin the reference's share and mean down only so far).
            let novelty_samples = &reference.novelty_samples;
            let boot_share =
                share_over_threshold(&draw(novelty_samples, novelty_samples.len())).unwrap_or(0.0);
            let boot_confidence = mean_of(&draw(
                &reference.confidence_samples,
                reference.confidence_samples.len(),
            ));
            let novelty = draw(novelty_samples, n);
            let drawn: Vec<(f32, u32)> = if answers.is_empty() {
                Vec::new()
            } else {
                (0..n).map(|_| answers[pick(answers.len())]).collect()
            };
            let mut values = statistics(reference, reference_confidence, &novelty, &drawn);
            values[0] = values[0].map(|v| v - (boot_share - reference_share));
            values[2] = values[2].map(|v| v + (boot_confidence - reference_confidence));
            values
        })
        .collect();
    let mut levels = [None; 3];
    for (index, level) in levels.iter_mut().enumerate() {
        let mut values: Vec<f64> = windows.iter().filter_map(|w| w[index]).collect();
        if values.len() < RESAMPLES {
            continue;
        }
        values.sort_by(f64::total_cmp);
        *level = Some((
            quantile(&values, 0.5),
            quantile(&values, config.warning_quantile),
            quantile(&values, config.drift_quantile),
        ));
    }
    let rate = |at: fn(&(f64, f64, f64)) -> f64| {
        let raised = windows
            .iter()
            .filter(|w| {
                w.iter().zip(&levels).any(
                    |(value, level)| matches!((value, level), (Some(v), Some(l)) if *v > at(l)),
                )
            })
            .count();
        raised as f64 / RESAMPLES as f64
    };
    Thresholds {
        warning_rate: rate(|l| l.1),
        drift_rate: rate(|l| l.2),
        levels,
    }
}

/// Computes reports, caches thresholds, keeps the history.
pub struct DriftMonitor {
    config: DriftConfig,
    thresholds: Mutex<HashMap<(u32, usize), Arc<Thresholds>>>,
    history: Mutex<VecDeque<DriftPoint>>,
}

impl DriftMonitor {
    pub fn new(config: DriftConfig) -> Self {
        Self {
            config,
            thresholds: Mutex::default(),
            history: Mutex::default(),
        }
    }

    pub fn config(&self) -> &DriftConfig {
        &self.config
    }

    fn thresholds(
        &self,
        version: u32,
        reference: &DistributionReference,
        n: usize,
    ) -> Arc<Thresholds> {
        let mut cache = self.thresholds.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 64 {
            cache.clear();
        }
        cache
            .entry((version, n))
            .or_insert_with(|| Arc::new(resample_thresholds(reference, n, &self.config)))
            .clone()
    }

    /// Judges `recent` (the newest predictions, newest first, any version) against `version`'s
    /// reference.
    pub fn report(
        &self,
        active: Option<(u32, Option<&DistributionReference>)>,
        recent: &[PredictionRecord],
    ) -> DriftReport {
        let now = Utc::now();
        let mut report = DriftReport {
            status: DriftStatus::Ok,
            model_version: active.map(|(v, _)| v),
            checked_at: now,
            note: None,
            windows: Vec::new(),
            history: Vec::new(),
        };
        let (version, reference) = match active {
            None => {
                report.note = Some("no model version is active".into());
                return report;
            }
            Some((version, None)) => {
                report.note = Some(format!(
                    "version {version} has no reference distribution (trained before drift \
                     detection, or on fewer than {} images)",
                    crate::novelty::MIN_IMAGES
                ));
                return report;
            }
            Some((version, Some(reference))) => (version, reference),
        };
        let ours: Vec<&PredictionRecord> = recent
            .iter()
            .filter(|p| p.model_version == version && p.novelty.is_some())
            .collect();
        let cutoff = now - chrono::Duration::minutes(i64::from(self.config.window_minutes));
        let count_window: Vec<&PredictionRecord> =
            ours.iter().take(self.config.window).copied().collect();
        let time_window: Vec<&PredictionRecord> = ours
            .iter()
            .take_while(|p| p.created_at >= cutoff)
            .take(MAX_TIME_WINDOW)
            .copied()
            .collect();
        for (kind, size, window) in [
            ("count", self.config.window as u64, count_window),
            ("time", u64::from(self.config.window_minutes), time_window),
        ] {
            report
                .windows
                .push(self.judge(version, reference, kind, size, &window));
        }
        report.status = report
            .windows
            .iter()
            .map(|w| w.status)
            .max()
            .unwrap_or(DriftStatus::Ok);
        report
    }

    fn judge(
        &self,
        version: u32,
        reference: &DistributionReference,
        kind: &'static str,
        size: u64,
        window: &[&PredictionRecord],
    ) -> DriftWindow {
        let n = window.len();
        let thresholds = self.thresholds(version, reference, n.max(self.config.min_predictions));
        let judged = n >= self.config.min_predictions;
        let novelty: Vec<f32> = window.iter().filter_map(|p| p.novelty).collect();
        let answers: Vec<(f32, u32)> = window
            .iter()
            .map(|p| (p.confidence, p.predicted_index as u32))
            .collect();
        let values = statistics(reference, mean_confidence(reference), &novelty, &answers);
        let mut statistics = Vec::new();
        for ((name, value), level) in STATISTICS.iter().zip(values).zip(&thresholds.levels) {
            let Some((expected, warning, drift)) = *level else {
                continue;
            };
            let value = value.filter(|_| judged);
            let status = match value {
                Some(v) if v > drift => DriftStatus::Drift,
                Some(v) if v > warning => DriftStatus::Warning,
                _ => DriftStatus::Ok,
            };
            statistics.push(DriftStatistic {
                name,
                value,
                expected,
                warning,
                drift,
                status,
            });
        }
        DriftWindow {
            kind,
            size,
            predictions: n,
            status: statistics
                .iter()
                .map(|s| s.status)
                .max()
                .unwrap_or(DriftStatus::Ok),
            note: (!judged).then(|| {
                format!(
                    "{n} predictions of version {version}; a window is judged from {}",
                    self.config.min_predictions
                )
            }),
            statistics,
            warning_rate: thresholds.warning_rate,
            false_alarm_rate: thresholds.drift_rate,
        }
    }

    /// Appends the count window of `report` to the history.
    pub fn remember(&self, report: &DriftReport) {
        let Some(window) = report.windows.first() else {
            return;
        };
        let mut values = [None; 3];
        for statistic in &window.statistics {
            if let Some(index) = STATISTICS.iter().position(|s| *s == statistic.name) {
                values[index] = statistic.value;
            }
        }
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(DriftPoint {
            at: report.checked_at,
            model_version: report.model_version,
            status: window.status,
            predictions: window.predictions,
            values,
        });
    }

    pub fn history(&self) -> Vec<DriftPoint> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sprig_store::ClassProbability;

    fn reference(rng: &mut SplitMix) -> DistributionReference {
        DistributionReference {
            embedding_width: 4,
            projection_seed: 1,
            dims: 2,
            class_means: vec![],
            precision: vec![],
            threshold: 1.0,
            threshold_quantile: 0.99,
            novelty_samples: (0..300)
                .map(|_| 0.3 + 0.71 * rng.next_unit() as f32)
                .collect(),
            class_prior: vec![1.0 / 3.0; 3],
            confidence_samples: (0..120)
                .map(|_| 0.6 + 0.4 * rng.next_unit() as f32)
                .collect(),
            predicted_samples: (0..120).map(|i| i % 3).collect(),
        }
    }

    fn prediction(novelty: f32, confidence: f32, class: usize) -> PredictionRecord {
        PredictionRecord {
            id: 1,
            created_at: Utc::now(),
            model_version: 1,
            predicted_class: class.to_string(),
            predicted_index: class,
            confidence,
            probabilities: vec![ClassProbability {
                class: class.to_string(),
                probability: confidence,
            }],
            uncertainty: 0.0,
            entropy: 0.0,
            out_of_distribution: novelty > 1.0,
            novelty: Some(novelty),
            label: None,
            latency_ms: 1.0,
            image_sha256: String::new(),
            filename: None,
        }
    }

    fn status_of(report: &DriftReport, statistic: &str) -> DriftStatus {
        report.windows[0]
            .statistics
            .iter()
            .find(|s| s.name == statistic)
            .unwrap()
            .status
    }

    #[test]
    fn in_distribution_traffic_is_ok_and_each_kind_of_shift_is_drift() {
        let mut rng = SplitMix::new(11);
        let reference = reference(&mut rng);
        let monitor = DriftMonitor::new(DriftConfig::default());
        let report =
            |traffic: &[PredictionRecord]| monitor.report(Some((1, Some(&reference))), traffic);
        let fresh = |rng: &mut SplitMix| {
            (0..200)
                .map(|i| {
                    prediction(
                        0.3 + 0.71 * rng.next_unit() as f32,
                        0.6 + 0.4 * rng.next_unit() as f32,
                        i % 3,
                    )
                })
                .collect::<Vec<_>>()
        };
        let calm = report(&fresh(&mut rng));
        assert_eq!(calm.status, DriftStatus::Ok, "{calm:#?}");
        assert_eq!(calm.windows.len(), 2);
        assert_eq!(calm.windows[0].statistics.len(), 3);
        let rate = calm.windows[0].false_alarm_rate;
        assert!(rate > 0.0 && rate < 0.01, "false-alarm rate {rate}");

        let mut unfamiliar = fresh(&mut rng);
        unfamiliar.iter_mut().for_each(|p| p.novelty = Some(1.4));
        assert_eq!(
            status_of(&report(&unfamiliar), "ood_share"),
            DriftStatus::Drift
        );

        let mut one_class = fresh(&mut rng);
        one_class.iter_mut().for_each(|p| p.predicted_index = 0);
        assert_eq!(
            status_of(&report(&one_class), "class_mix_psi"),
            DriftStatus::Drift
        );

        let mut unsure = fresh(&mut rng);
        unsure.iter_mut().for_each(|p| p.confidence = 0.45);
        let unsure = report(&unsure);
        assert_eq!(status_of(&unsure, "confidence_drop"), DriftStatus::Drift);
        assert_eq!(unsure.status, DriftStatus::Drift);

        // Too few predictions: not judged, whatever they look like.
        let few = report(&unfamiliar[..10]);
        assert_eq!(few.status, DriftStatus::Ok);
        assert!(few.windows[0].note.is_some());
        // Another version's predictions do not count.
        unfamiliar.iter_mut().for_each(|p| p.model_version = 2);
        assert_eq!(report(&unfamiliar).windows[0].predictions, 0);
        // A version without a reference is not judged, and says why.
        assert!(monitor.report(Some((1, None)), &unfamiliar).note.is_some());
    }
}
