//! Rollouts on live traffic: a candidate version in the shadow of the active one (run on a
//! sample of requests after the answer, never changing it, on threads that run only when a CPU
//! would otherwise be idle) or as a canary (answering a share of requests, sticky
//! per client). Each process gathers figures locally and adds them to the store
//! every `sync_secs`, so every replica's traffic counts; the policy ([`policy`]) turns the
//! totals into a verdict, which the first process to record it applies.

pub mod policy;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use sha2::{Digest, Sha256};
use sprig_backends::training::argmax;
use sprig_backends::PreparedImage;
use sprig_store::{PredictionRecord, RolloutFigures, RolloutMode, RolloutRecord, RolloutStore};

use crate::error::{CoreError, Result};
use crate::model_registry::{LoadedModel, ModelRegistry};
use policy::RolloutConfig;

/// The rollout this process is serving, with the figures it gathered since its last sync.
pub struct Running {
    pub record: RolloutRecord,
    pub candidate: Arc<LoadedModel>,
    delta: Mutex<RolloutFigures>,
    /// Requests seen, for the share's sampling.
    seen: AtomicU64,
}

/// Which version answered a request, in a canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arm {
    Baseline,
    Candidate,
}

/// A request sampled for the shadow: the rollout it belongs to, a copy of its input, and where
/// shadow runs happen.
pub struct ShadowTicket {
    running: Arc<Running>,
    image: PreparedImage,
    permits: Arc<tokio::sync::Semaphore>,
    pool: Arc<rayon::ThreadPool>,
}

/// The rollout service: routing, shadow runs, local figures and their sync with the store.
pub struct Rollouts {
    store: Arc<dyn RolloutStore>,
    registry: Arc<ModelRegistry>,
    config: RolloutConfig,
    running: ArcSwapOption<Running>,
    /// Serialises `serve`: a start and a sync may both serve a new rollout, and the second must
    /// find the first's (with what it counted) rather than replace it.
    serving: Mutex<()>,
    /// Shadow runs in flight at most (one per inference worker); a sampled request finding none
    /// free is dropped and counted.
    shadow_permits: Arc<tokio::sync::Semaphore>,
    /// The threads shadow runs compute on, scheduled only when a CPU would otherwise be idle:
    /// when live requests keep the cores busy, shadow runs wait (and the next sampled requests
    /// are dropped).
    shadow_pool: Arc<rayon::ThreadPool>,
}

impl Rollouts {
    pub fn new(
        store: Arc<dyn RolloutStore>,
        registry: Arc<ModelRegistry>,
        config: RolloutConfig,
        shadow_capacity: usize,
    ) -> Self {
        Self {
            store,
            registry,
            config,
            running: ArcSwapOption::empty(),
            serving: Mutex::new(()),
            shadow_permits: Arc::new(tokio::sync::Semaphore::new(shadow_capacity.max(1))),
            shadow_pool: Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(shadow_capacity.max(1))
                    .thread_name(|i| format!("sprig-shadow-{i}"))
                    .start_handler(|_| crate::priority::idle_priority())
                    .build()
                    .expect("the shadow threads start"),
            ),
        }
    }

    pub fn config(&self) -> &RolloutConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn RolloutStore> {
        &self.store
    }

    pub fn current(&self) -> Option<Arc<Running>> {
        self.running.load_full()
    }

    /// Serves `record` from now on (blocking: loads and warms the candidate); nothing to do if
    /// it is served already.
    pub fn serve(&self, record: RolloutRecord) -> Result<()> {
        let _serving = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        if self.current().is_some_and(|r| r.record.id == record.id) {
            return Ok(());
        }
        let candidate = Arc::new(self.registry.load(record.version)?);
        tracing::info!(
            rollout = record.id,
            version = record.version,
            mode = ?record.mode,
            share = record.share,
            "rollout serving"
        );
        self.running.store(Some(Arc::new(Running {
            record,
            candidate,
            delta: Mutex::default(),
            seen: AtomicU64::new(0),
        })));
        Ok(())
    }

    /// Stops serving the rollout (its unsynced figures are handed back for the store).
    pub fn forget(&self) -> Option<(u64, RolloutFigures)> {
        let running = self.running.swap(None)?;
        Some((running.record.id, running.take_delta()))
    }

    /// The version to answer with: the candidate for a canary's share of requests (sticky per
    /// client when one is named), else the active version.
    pub fn route(
        &self,
        active: Arc<LoadedModel>,
        client: Option<&str>,
    ) -> (Arc<LoadedModel>, Option<(Arc<Running>, Arm)>) {
        let Some(running) = self.current() else {
            return (active, None);
        };
        if running.record.mode != RolloutMode::Canary || running.record.baseline != active.version()
        {
            return (active, None);
        }
        let chosen = match client {
            Some(client) => client_bucket(running.record.id, client) < running.record.share,
            None => running.sample(),
        };
        if chosen {
            let candidate = running.candidate.clone();
            (candidate, Some((running, Arm::Candidate)))
        } else {
            (active, Some((running, Arm::Baseline)))
        }
    }

    /// Whether to run this request in the shadow: the candidate's copy of the input, or `None`
    /// (no shadow, or not sampled).
    pub fn sample_shadow(
        &self,
        active_version: u32,
        image: &PreparedImage,
    ) -> Option<ShadowTicket> {
        let running = self.current()?;
        if running.record.mode != RolloutMode::Shadow
            || running.record.baseline != active_version
            || !running.sample()
        {
            return None;
        }
        Some(ShadowTicket {
            running,
            image: image.clone(),
            permits: self.shadow_permits.clone(),
            pool: self.shadow_pool.clone(),
        })
    }

    /// Adds the figures this process gathered to the store and returns the stored rollout as it
    /// now is (with every process's figures); `None` when nothing runs here.
    pub fn flush(&self) -> Result<Option<RolloutRecord>> {
        let Some(running) = self.current() else {
            return Ok(None);
        };
        let delta = running.take_delta();
        match self.store.add_figures(running.record.id, &delta) {
            Ok(record) => Ok(Some(record)),
            Err(error) => {
                // Kept for the next sync rather than lost.
                running.update(|figures| figures.merge(&delta));
                Err(error.into())
            }
        }
    }
}

impl Running {
    fn take_delta(&self) -> RolloutFigures {
        std::mem::take(&mut *self.delta.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn update(&self, change: impl FnOnce(&mut RolloutFigures)) {
        change(&mut self.delta.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Exactly `share` of the requests seen, evenly spread (no randomness to explain away).
    fn sample(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::Relaxed) as f64;
        let share = self.record.share;
        ((n + 1.0) * share).floor() > (n * share).floor()
    }

    /// A request one version of a canary answered (`latency_ms` end to end).
    pub fn observe_answer(&self, arm: Arm, confidence: f64, latency_ms: f64) {
        self.update(|figures| match arm {
            Arm::Baseline => figures.baseline.observe(confidence, latency_ms),
            Arm::Candidate => figures.candidate.observe(confidence, latency_ms),
        });
    }

    /// A request one version of a canary failed to answer.
    pub fn observe_error(&self, arm: Arm) {
        self.update(|figures| match arm {
            Arm::Baseline => figures.baseline.errors += 1,
            Arm::Candidate => figures.candidate.errors += 1,
        });
    }
}

impl ShadowTicket {
    /// Runs the candidate on the request's input and compares its answer with the one sent;
    /// dropped (and counted) when shadow runs are at their bound, one per inference worker.
    /// Latency on both sides is the forward pass's time per image (`inference_ms` is the active
    /// version's for the same request); the candidate's, on idle-priority threads, includes waiting
    /// for spare CPU, so it is reported but not judged. `kept` says whether the review queue kept
    /// the prediction (its label will measure both versions).
    pub async fn run(self, answer: &PredictionRecord, inference_ms: f64, kept: bool) {
        let Self {
            running,
            image,
            permits,
            pool,
        } = self;
        let Ok(permit) = permits.try_acquire_owned() else {
            running.update(|figures| figures.dropped += 1);
            return;
        };
        let (done, outcome) = tokio::sync::oneshot::channel();
        let candidate = running.candidate.clone();
        pool.spawn(move || {
            let started = std::time::Instant::now();
            let result = candidate
                .classifier
                .features(&[image])
                .and_then(|features| candidate.classifier.classify_features(&features))
                .map_err(CoreError::from)
                .map(|mut rows| {
                    (
                        rows.swap_remove(0),
                        started.elapsed().as_secs_f64() * 1000.0,
                    )
                });
            let _ = done.send(result);
        });
        let outcome = outcome.await;
        drop(permit);
        let Ok(Ok((probabilities, latency_ms))) = outcome else {
            running.update(|figures| figures.candidate.errors += 1);
            return;
        };
        let candidate = &running.candidate;
        let probabilities = crate::calibration::scale(&probabilities, candidate.temperature());
        let index = argmax(&probabilities);
        let class = candidate.classifier.classes()[index].clone();
        let confidence = f64::from(probabilities[index]);
        running.update(|figures| {
            figures
                .baseline
                .observe(f64::from(answer.confidence), inference_ms);
            figures.candidate.observe(confidence, latency_ms);
            figures.compared += 1;
            let difference = (confidence - f64::from(answer.confidence)).abs();
            figures.confidence_diff_sum += difference;
            figures.confidence_diff_max = figures.confidence_diff_max.max(difference);
            if class == answer.predicted_class {
                figures.agreed += 1;
            } else {
                let pair = format!("{} -> {class}", answer.predicted_class);
                *figures.disagreements.entry(pair).or_default() += 1;
            }
            if kept && answer.id > 0 {
                figures.reviewed_answers.insert(answer.id, class);
            }
        });
    }
}

/// A client's place in [0, 1) for rollout `id`: the same client lands on the same side of a
/// canary in every process and across restarts.
fn client_bucket(id: u64, client: &str) -> f64 {
    let digest = Sha256::new()
        .chain_update(id.to_be_bytes())
        .chain_update(client.as_bytes())
        .finalize();
    let value = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (value >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::client_bucket;

    #[test]
    fn client_buckets_are_stable_and_spread() {
        assert_eq!(client_bucket(3, "alice"), client_bucket(3, "alice"));
        let share = (0..10_000)
            .filter(|i| client_bucket(3, &format!("client-{i}")) < 0.2)
            .count();
        // Measured 2 062 of 10 000; the binomial sd is 40.
        assert!((1_850..2_150).contains(&share), "{share}");
    }
}
