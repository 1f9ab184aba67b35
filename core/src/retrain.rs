//! Retraining as durable jobs: a job record users can follow (progress, epochs, events) and an
//! apalis task that runs the pipeline, then applies the activation policy with a hot swap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sprig_backends::BackendError;
use sprig_jobs::{recover_interrupted, JobQueue};
use sprig_store::{EpochMetrics, JobError, JobRecord, JobState, StoreError, Stores};
use tokio::sync::broadcast;

use crate::error::{CoreError, ErrorCode, Result};
use crate::model_registry::ModelRegistry;
use crate::pipeline::{
    activation_decision, Pipeline, PipelineObserver, TrainedVersion, TrainingConfig,
    TrainingOverrides,
};

/// Job kind of retrains (one may be queued or running at a time).
pub const RETRAIN: &str = "retrain";
const QUEUE_NAME: &str = "retrain";

/// The apalis task payload: which job record to run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetrainTask {
    pub job_id: u64,
}

/// Submits, runs, cancels and reports retrain jobs.
#[derive(Clone)]
pub struct Retrainer {
    stores: Stores,
    pipeline: Pipeline,
    registry: Arc<ModelRegistry>,
    config: TrainingConfig,
    queue: JobQueue<RetrainTask>,
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
        let queue = JobQueue::new(stores.tasks.clone(), QUEUE_NAME).with_heartbeat(heartbeat);
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
        let params = serde_json::to_value(&overrides)
            .map_err(|e| CoreError::InvalidRequest(e.to_string()))?;
        let job = match self.stores.jobs.create_exclusive(RETRAIN, params) {
            Err(StoreError::Conflict { job_id, .. }) => {
                return Err(CoreError::RetrainInProgress { job_id })
            }
            other => other?,
        };
        self.queue.push(RetrainTask { job_id: job.id }).await?;
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
        let mut interrupted = Vec::new();
        for task in recover_interrupted(self.stores.tasks.as_ref(), QUEUE_NAME, lease)? {
            if let Some(args) = self.queue.args(task.id)? {
                interrupted.push(args.job_id);
            }
        }
        // A job record left `running` without its task (e.g. killed between the two writes).
        // Only where this process is the only one: on a shared store it may be another
        // replica's live job.
        if !self.stores.database.shared() {
            if let Some(job) = self.stores.jobs.active(RETRAIN)? {
                if job.state == JobState::Running && !interrupted.contains(&job.id) {
                    interrupted.push(job.id);
                }
            }
        }
        for id in &interrupted {
            let job = self.stores.jobs.update(*id, &mut |job| {
                if !job.state.is_terminal() {
                    job.state = JobState::Failed;
                    job.message = "interrupted: the server stopped while this job ran".into();
                    job.error = Some(JobError {
                        code: ErrorCode::Interrupted.to_string(),
                        message:
                            "the process stopped while the job was running; start a new retrain"
                                .into(),
                    });
                    job.finished_at = Some(Utc::now());
                }
            })?;
            self.publish(&job);
        }
        Ok(interrupted)
    }

    /// The queue handle the worker consumes.
    pub fn queue(&self) -> JobQueue<RetrainTask> {
        self.queue.clone()
    }

    /// Runs one retrain task to its end state (the apalis worker's handler).
    pub async fn run(&self, task: RetrainTask) -> std::result::Result<(), String> {
        let Some(job) = self
            .stores
            .jobs
            .get(task.job_id)
            .map_err(|e| e.to_string())?
        else {
            return Err(format!("job {} does not exist", task.job_id));
        };
        if job.state != JobState::Queued {
            return Ok(()); // cancelled while queued
        }
        let started = self.update(job.id, |job| {
            job.state = JobState::Running;
            job.started_at = Some(Utc::now());
            job.message = "starting".into();
        });
        let overrides: TrainingOverrides =
            serde_json::from_value(started.params.clone()).unwrap_or_default();
        let this = self.clone();
        let outcome = tokio::task::spawn_blocking(move || this.train(job.id, &overrides))
            .await
            .unwrap_or_else(|panic| {
                Err(CoreError::Panicked(format!("training panicked: {panic}")))
            });
        let finished = self.update(job.id, |job| {
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
        match finished.state {
            JobState::Failed => Err(finished.message),
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
