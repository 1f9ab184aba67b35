//! Retraining as durable jobs: one job record users follow (progress, epochs, events) and the
//! apalis worker claims from the queue, whose handler runs the pipeline, then applies the
//! activation policy with a hot swap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sprig_backends::BackendError;
use sprig_jobs::{recover_interrupted, JobQueue, JobsError};
use sprig_store::{EpochMetrics, JobError, JobRecord, JobState, StoreError, Stores};
use tokio::sync::broadcast;

use crate::error::{CoreError, Result};
use crate::model_registry::ModelRegistry;
use crate::pipeline::{
    activation_decision, CrossValidation, Pipeline, PipelineObserver, TrainedVersion,
    TrainingConfig, TrainingOverrides,
};

/// Job kind of retrains, and the name of their queue (one may be queued or running at a time).
pub const RETRAIN: &str = "retrain";

/// Submits, runs, cancels and reports retrain jobs.
#[derive(Clone)]
pub struct Retrainer {
    stores: Stores,
    pipeline: Pipeline,
    registry: Arc<ModelRegistry>,
    config: TrainingConfig,
    queue: JobQueue<TrainingOverrides>,
    events: broadcast::Sender<JobRecord>,
}

impl Retrainer {
    pub fn new(
        stores: Stores,
        pipeline: Pipeline,
        registry: Arc<ModelRegistry>,
        config: TrainingConfig,
        heartbeat: Duration,
    ) -> Self {
        let queue = JobQueue::new(stores.jobs.clone(), RETRAIN).with_heartbeat(heartbeat);
        let (events, _) = broadcast::channel(256);
        Self {
            stores,
            pipeline,
            registry,
            config,
            queue,
            events,
        }
    }

    /// Queues a retrain; 409-style conflict when one is already queued or running.
    pub async fn submit(&self, overrides: TrainingOverrides) -> Result<JobRecord> {
        self.config.with_overrides(&overrides)?;
        let job = match self.queue.push_exclusive(&overrides) {
            Err(JobsError::Store(StoreError::Conflict { job_id, .. })) => {
                return Err(CoreError::RetrainInProgress { job_id })
            }
            other => other?,
        };
        self.publish(&job);
        Ok(job)
    }

    /// Cooperative cancel: a queued job is cancelled at once, a running one within one batch.
    pub fn cancel(&self, id: u64) -> Result<JobRecord> {
        let current = self
            .stores
            .jobs
            .get(id)?
            .ok_or_else(|| CoreError::not_found("job", id))?;
        if current.state.is_terminal() {
            return Err(CoreError::JobFinished(id));
        }
        let job = self.stores.jobs.update(id, &mut |job| match job.state {
            JobState::Queued => {
                job.state = JobState::Cancelled;
                job.message = "cancelled before it started".into();
                job.finished_at = Some(Utc::now());
            }
            JobState::Running => {
                job.cancel_requested = true;
                job.message = "cancelling".into();
            }
            _ => {}
        })?;
        self.publish(&job);
        Ok(job)
    }

    /// Live job updates (every change of every job; filter by id).
    pub fn subscribe(&self) -> broadcast::Receiver<JobRecord> {
        self.events.subscribe()
    }

    fn publish(&self, job: &JobRecord) {
        let _ = self.events.send(job.clone());
    }

    /// Publishes job `id`'s stored record to this process's followers (another replica
    /// changed it).
    pub(crate) fn republish(&self, id: u64) -> Result<()> {
        if let Some(job) = self.stores.jobs.get(id)? {
            self.publish(&job);
        }
        Ok(())
    }

    /// Recovery of retrains whose process died: such a retrain is not resumed; its job is
    /// marked failed with code `interrupted`. Queued retrains run normally. `lease`: how long a
    /// worker must have been silent to count as dead (zero for a store only this process uses,
    /// at start-up, where every running retrain is a dead process's).
    pub fn recover(&self, lease: Duration) -> Result<Vec<u64>> {
        let interrupted = recover_interrupted(self.stores.jobs.as_ref(), RETRAIN, lease)?;
        for job in &interrupted {
            self.publish(job);
        }
        Ok(interrupted.iter().map(|job| job.id).collect())
    }

    /// The queue handle the worker consumes.
    pub fn queue(&self) -> JobQueue<TrainingOverrides> {
        self.queue.clone()
    }

    /// Runs one claimed retrain job to its end state, written into its record (the apalis
    /// worker's handler).
    pub async fn run(
        &self,
        job_id: u64,
        overrides: TrainingOverrides,
    ) -> std::result::Result<(), JobError> {
        let this = self.clone();
        let outcome = tokio::task::spawn_blocking(move || this.train(job_id, &overrides))
            .await
            .unwrap_or_else(|panic| {
                Err(CoreError::Panicked(format!("training panicked: {panic}")))
            });
        let finished = self.update(job_id, |job| {
            job.finished_at = Some(Utc::now());
            match &outcome {
                Ok(TrainOutcome {
                    trained,
                    activated,
                    reason,
                }) => {
                    let version = trained.version.version;
                    job.state = JobState::Succeeded;
                    job.progress = 100.0;
                    job.model_version = Some(version);
                    job.features_computed = Some(trained.features_computed as u64);
                    job.features_reused = Some(trained.features_reused as u64);
                    job.timings_ms.extend(trained.timings_ms.clone());
                    job.message = if *activated {
                        format!("version {version} trained and activated ({reason})")
                    } else {
                        format!("version {version} trained, not activated ({reason})")
                    };
                }
                Err(CoreError::Backend(BackendError::Cancelled)) => {
                    job.state = JobState::Cancelled;
                    job.message = "cancelled".into();
                }
                Err(error) => {
                    job.state = JobState::Failed;
                    job.message = format!("failed: {error}");
                    job.error = Some(JobError {
                        code: error.code().to_string(),
                        message: error.to_string(),
                    });
                }
            }
        });
        match finished.error {
            Some(error) if finished.state == JobState::Failed => Err(error),
            _ => Ok(()),
        }
    }

    /// Runs the pipeline, then applies the activation policy through the model registry (load,
    /// warm, swap): retrain jobs and `sprig train` both come here. `label` starts the reason
    /// recorded with the activation.
    pub(crate) fn train_and_activate(
        &self,
        overrides: &TrainingOverrides,
        origin: &str,
        job_id: Option<u64>,
        label: &str,
        observer: &mut dyn PipelineObserver,
    ) -> Result<TrainOutcome> {
        let config = self.config.with_overrides(overrides)?;
        let trained = self.pipeline.run(&config, origin, job_id, observer)?;
        // The store's active version, not the served one: offline there is none served.
        let active = match self.stores.models.active()? {
            Some(version) => self.stores.models.get(version)?,
            None => None,
        };
        let (activated, reason) = activation_decision(
            config.activation_policy,
            config.activation_tolerance,
            &trained.version,
            active.as_ref(),
        );
        if activated {
            self.registry
                .activate(trained.version.version, &format!("{label}: {reason}"))?;
        }
        Ok(TrainOutcome {
            trained,
            activated,
            reason,
        })
    }

    /// Cross-validates the head with these overrides (blocking; `sprig train --cv`).
    pub(crate) fn cross_validate(
        &self,
        overrides: &TrainingOverrides,
        folds: usize,
        observer: &mut dyn PipelineObserver,
    ) -> Result<CrossValidation> {
        let config = self.config.with_overrides(overrides)?;
        self.pipeline.cross_validate(&config, folds, observer)
    }

    fn train(&self, job_id: u64, overrides: &TrainingOverrides) -> Result<TrainOutcome> {
        let mut observer = JobObserver {
            retrainer: self,
            job_id,
            last_write: None,
        };
        self.train_and_activate(
            overrides,
            RETRAIN,
            Some(job_id),
            &format!("retrain job {job_id}"),
            &mut observer,
        )
    }

    /// Applies a change to a job record and publishes it. Store failures are logged, not fatal:
    /// progress reporting must not kill a training run.
    fn update(&self, id: u64, change: impl FnMut(&mut JobRecord)) -> JobRecord {
        let mut change = change;
        match self.stores.jobs.update(id, &mut change) {
            Ok(job) => {
                self.publish(&job);
                job
            }
            Err(error) => {
                tracing::error!(job = id, %error, "updating the job record failed");
                let mut fallback = JobRecord::new(id, RETRAIN, serde_json::Value::Null, Utc::now());
                change(&mut fallback);
                fallback
            }
        }
    }
}

/// What a training run produced, and whether it now serves (and why).
#[derive(Debug)]
pub struct TrainOutcome {
    pub trained: TrainedVersion,
    pub activated: bool,
    pub reason: String,
}

/// Writes pipeline progress into the job record (throttled) and reads cancellation from it.
struct JobObserver<'a> {
    retrainer: &'a Retrainer,
    job_id: u64,
    last_write: Option<Instant>,
}

const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

impl PipelineObserver for JobObserver<'_> {
    fn progress(&mut self, percent: f64, message: &str) {
        if self
            .last_write
            .is_some_and(|t| t.elapsed() < PROGRESS_INTERVAL)
            && percent < 100.0
        {
            return;
        }
        self.last_write = Some(Instant::now());
        let message = message.to_string();
        self.retrainer.update(self.job_id, |job| {
            job.progress = percent.clamp(0.0, 100.0);
            job.message = message.clone();
        });
    }

    fn epoch(&mut self, metrics: &EpochMetrics, max_epochs: u32) {
        self.retrainer.update(self.job_id, |job| {
            job.current_epoch = Some(metrics.epoch);
            job.total_epochs = Some(max_epochs);
            job.epochs.push(metrics.clone());
        });
    }

    fn cancelled(&self) -> bool {
        self.retrainer
            .stores
            .jobs
            .get(self.job_id)
            .ok()
            .flatten()
            .is_some_and(|job| job.cancel_requested)
    }
}

impl std::fmt::Debug for Retrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retrainer").finish_non_exhaustive()
    }
}
