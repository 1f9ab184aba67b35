//! Jobs as users follow them: submit and cancel a retrain, list and read job records, the
//! original project's retrain status, live updates, and `sprig train`'s run in the foreground.

use futures::stream::{self, BoxStream, StreamExt};
use sprig_jobs::JobQueue;
use sprig_store::{JobError, JobRecord, JobState, Page, PageRequest};
use tokio::sync::broadcast::error::RecvError;

use crate::engine::Engine;
use crate::error::{CoreError, Result};
use crate::pipeline::{CrossValidation, PipelineObserver, TrainingOverrides};
use crate::retrain::{TrainOutcome, RETRAIN};

/// The original project's `/retrain_status`, with the latest retrain job's id and state.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrainStatus {
    pub is_running: bool,
    /// 0–100.
    pub progress: f64,
    pub message: String,
    /// When the newest version a retrain produced was created.
    pub last_retrain_time: Option<chrono::DateTime<chrono::Utc>>,
    pub latest_job: Option<(u64, JobState)>,
}

impl Engine {
    /// Queues a retrain job; `RetrainInProgress` while one is queued or running.
    pub async fn submit_retrain(&self, overrides: TrainingOverrides) -> Result<JobRecord> {
        self.retrainer.submit(overrides).await
    }

    /// Cooperative cancel: a queued job at once, a running one within one training batch.
    pub fn cancel_job(&self, id: u64) -> Result<JobRecord> {
        self.retrainer.cancel(id)
    }

    /// Jobs, newest first.
    pub fn jobs(&self, page: PageRequest) -> Result<Page<JobRecord>> {
        Ok(self.stores.jobs.list(page)?)
    }

    pub fn job(&self, id: u64) -> Result<JobRecord> {
        self.stores
            .jobs
            .get(id)?
            .ok_or_else(|| CoreError::not_found("job", id))
    }

    /// Counts of jobs per state (for the Prometheus gauges).
    pub fn job_counts(&self) -> Result<Vec<(JobState, u64)>> {
        Ok(self.stores.jobs.count_by_state()?)
    }

    pub fn retrain_running(&self) -> Result<bool> {
        Ok(self.stores.jobs.active(RETRAIN)?.is_some())
    }

    pub fn retrain_status(&self) -> Result<RetrainStatus> {
        let latest = self
            .stores
            .jobs
            .list(PageRequest::new(1, 1))?
            .items
            .into_iter()
            .find(|j| j.kind == RETRAIN);
        let last_retrain_time = self
            .stores
            .models
            .list()?
            .into_iter()
            .filter(|m| m.origin == RETRAIN)
            .map(|m| m.created_at)
            .max();
        Ok(match latest {
            Some(job) => RetrainStatus {
                is_running: !job.state.is_terminal(),
                progress: job.progress,
                message: job.message,
                last_retrain_time,
                latest_job: Some((job.id, job.state)),
            },
            None => RetrainStatus {
                is_running: false,
                progress: 0.0,
                message: "no retrain has run yet".into(),
                last_retrain_time,
                latest_job: None,
            },
        })
    }

    /// A job's record now and then every change of it until it finishes (a finished job's
    /// stream is empty). A subscriber that falls behind re-reads the record.
    pub fn job_updates(&self, id: u64) -> Result<(JobRecord, BoxStream<'static, JobRecord>)> {
        // Subscribe before reading the snapshot so no change falls in between.
        let receiver = self.retrainer.subscribe();
        let job = self.job(id)?;
        if job.state.is_terminal() {
            return Ok((job, stream::empty().boxed()));
        }
        let jobs = self.stores.jobs.clone();
        let updates = stream::unfold((receiver, false), move |(mut receiver, done)| {
            let jobs = jobs.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    let job = match receiver.recv().await {
                        Ok(job) if job.id == id => job,
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => jobs.get(id).ok().flatten()?,
                        Err(RecvError::Closed) => return None,
                    };
                    let finished = job.state.is_terminal();
                    return Some((job, (receiver, finished)));
                }
            }
        });
        Ok((job, updates.boxed()))
    }

    /// The durable queue the retrain worker consumes.
    pub fn retrain_queue(&self) -> JobQueue<TrainingOverrides> {
        self.retrainer.queue()
    }

    /// Runs one queued retrain to its end state (the worker's handler).
    pub async fn run_retrain(
        &self,
        job_id: u64,
        overrides: TrainingOverrides,
    ) -> std::result::Result<(), JobError> {
        self.retrainer.run(job_id, overrides).await
    }

    /// k-fold cross-validation of the head on the stored images, in the foreground
    /// (`sprig train --cv K`); stores no version.
    pub fn cross_validate(
        &self,
        overrides: &TrainingOverrides,
        folds: usize,
        observer: &mut dyn PipelineObserver,
    ) -> Result<CrossValidation> {
        self.retrainer.cross_validate(overrides, folds, observer)
    }

    /// Trains in the foreground (`sprig train`) and applies the activation policy exactly as a
    /// retrain job does, loading and warming the new version before it is made active.
    pub fn train(
        &self,
        overrides: &TrainingOverrides,
        observer: &mut dyn PipelineObserver,
    ) -> Result<TrainOutcome> {
        self.retrainer
            .train_and_activate(overrides, "offline", None, "sprig train", observer)
    }
}
