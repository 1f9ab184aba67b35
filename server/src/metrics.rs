//! Prometheus metrics (`GET /metrics`) and the rolling prediction window `/api/metrics` reports.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use sprig_core::{DriftReport, DriftStatus, InferenceObserver};
use sprig_store::JobState;

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_seconds: HistogramVec,
    inference_seconds: HistogramVec,
    batch_size: HistogramVec,
    jobs: IntGaugeVec,
    unrecorded: IntCounter,
    drift_status: IntGauge,
    drift_statistic: GaugeVec,
    recent: Mutex<VecDeque<(Instant, f64)>>,
}

/// How far back the rolling prediction statistics look.
const WINDOW: Duration = Duration::from_secs(60);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("sprig".into()), None).expect("valid registry prefix");
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let http_seconds = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route, method and status",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let inference_seconds = HistogramVec::new(
            HistogramOpts::new(
                "inference_batch_duration_seconds",
                "Forward-pass time per batch by model version",
            )
            .buckets(vec![
                0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12,
            ]),
            &["model_version"],
        )
        .expect("valid metric");
        let batch_size = HistogramVec::new(
            HistogramOpts::new(
                "inference_batch_size",
                "Images per forward pass by model version",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
            &["model_version"],
        )
        .expect("valid metric");
        let jobs =
            IntGaugeVec::new(Opts::new("jobs", "Jobs by state"), &["state"]).expect("valid metric");
        let unrecorded = IntCounter::new(
            "predictions_unrecorded_total",
            "Predictions answered but not written to the history (the store refused the write)",
        )
        .expect("valid metric");
        let drift_status = IntGauge::new(
            "drift_status",
            "Drift of recent traffic against the active version: 0 ok, 1 warning, 2 drift",
        )
        .expect("valid metric");
        let drift_statistic = GaugeVec::new(
            Opts::new(
                "drift_statistic",
                "Drift statistics of the rolling windows (level: value, warning or drift threshold)",
            ),
            &["window", "statistic", "level"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_seconds.clone()),
            Box::new(inference_seconds.clone()),
            Box::new(batch_size.clone()),
            Box::new(jobs.clone()),
            Box::new(unrecorded.clone()),
            Box::new(drift_status.clone()),
            Box::new(drift_statistic.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric registered once");
        }
        Self {
            registry,
            http_requests,
            http_seconds,
            inference_seconds,
            batch_size,
            jobs,
            unrecorded,
            drift_status,
            drift_statistic,
            recent: Mutex::default(),
        }
    }

    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [route, method, status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_seconds
            .with_label_values(&labels)
            .observe(seconds);
    }

    /// One served prediction (end-to-end latency), for the rolling window.
    pub fn observe_prediction(&self, latency_ms: f64) {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.push_back((now, latency_ms));
        while recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            recent.pop_front();
        }
    }

    /// Predictions in the last minute and their p50 / p95 latency.
    pub fn recent_predictions(&self) -> (u64, Option<f64>, Option<f64>) {
        let now = Instant::now();
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let mut latencies: Vec<f64> = recent
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= WINDOW)
            .map(|(_, l)| *l)
            .collect();
        latencies.sort_by(f64::total_cmp);
        let quantile = |q: f64| -> Option<f64> {
            (!latencies.is_empty())
                .then(|| latencies[((latencies.len() - 1) as f64 * q).round() as usize])
        };
        (latencies.len() as u64, quantile(0.5), quantile(0.95))
    }

    /// Sets the drift gauges from a report (statistics not judged are left out).
    pub fn observe_drift(&self, report: &DriftReport) {
        self.drift_status.set(match report.status {
            DriftStatus::Ok => 0,
            DriftStatus::Warning => 1,
            DriftStatus::Drift => 2,
        });
        self.drift_statistic.reset();
        for window in &report.windows {
            for statistic in &window.statistics {
                let Some(value) = statistic.value else {
                    continue;
                };
                for (level, number) in [
                    ("value", value),
                    ("warning", statistic.warning),
                    ("drift", statistic.drift),
                ] {
                    self.drift_statistic
                        .with_label_values(&[window.kind, statistic.name, level])
                        .set(number);
                }
            }
        }
    }

    /// Prometheus text exposition, with job gauges set from `job_counts`.
    pub fn render(&self, job_counts: &[(JobState, u64)]) -> String {
        for (state, count) in job_counts {
            self.jobs
                .with_label_values(&[state.name()])
                .set(*count as i64);
        }
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }
}

impl InferenceObserver for Metrics {
    fn predictions_unrecorded(&self, count: usize) {
        self.unrecorded.inc_by(count as u64);
    }

    fn batch_done(&self, model_version: u32, batch_size: usize, seconds: f64) {
        let version = model_version.to_string();
        self.inference_seconds
            .with_label_values(&[version.as_str()])
            .observe(seconds);
        self.batch_size
            .with_label_values(&[version.as_str()])
            .observe(batch_size as f64);
    }
}
