//! The apalis side: a [`Persistence`] over the job queue of a [`JobStore`], driven by apalis'
//! [`Persisted`] and exposed as an apalis backend.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis_core::backend::codec::Codec;
use apalis_core::backend::finalize::Durable;
use apalis_core::backend::persistence::{Persisted, Persistence, TaskEvent, TaskPersistLayer};
use apalis_core::backend::{Backend, BackendConfig, WireFormatBackend};
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::status::Status;
use apalis_core::task::task_id::TaskId;
use apalis_core::task::Task;
use apalis_core::worker::context::WorkerContext;
use futures::task::AtomicWaker;
use futures::{Sink, SinkExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sprig_store::{JobError, JobOutcome, JobRecord, JobStore};

use crate::codes::{failure_of, INVALID_ARGUMENTS};
use crate::error::JobsError;

/// Capacity factor of the channel that carries task results from the worker to the queue.
const EVENT_BATCH: usize = 1;

/// JSON encoding of job arguments and results, as apalis carries them.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl<T: Serialize + DeserializeOwned> Codec<T> for JsonCodec {
    type Error = serde_json::Error;
    type Compact = Vec<u8>;

    fn encode(&self, value: &T) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(value)
    }

    fn decode(&self, bytes: &Vec<u8>) -> Result<T, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The queue of one job kind of a [`JobStore`] as apalis persistence: claims, outcomes and
/// worker liveness are written to the job records and the store's worker list.
pub(crate) struct QueuePersistence<T> {
    pub(crate) jobs: Arc<dyn JobStore>,
    /// The job kind, which is the queue's name.
    pub(crate) queue: Arc<str>,
    /// Woken on every push: apalis' `Persisted` otherwise only fetches again when its heartbeat
    /// timer fires, so an idle worker would pick new work up a whole heartbeat late.
    wake: Arc<AtomicWaker>,
    args: PhantomData<fn() -> T>,
}

impl<T> Clone for QueuePersistence<T> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
            queue: self.queue.clone(),
            wake: self.wake.clone(),
            args: PhantomData,
        }
    }
}

impl<T> QueuePersistence<T> {
    pub(crate) fn new(jobs: Arc<dyn JobStore>, queue: &str) -> Self {
        Self {
            jobs,
            queue: queue.into(),
            wake: Arc::default(),
            args: PhantomData,
        }
    }

    /// Queues one job with these arguments and wakes the worker waiting on this queue.
    pub(crate) fn push(
        &self,
        params: serde_json::Value,
        exclusive: bool,
    ) -> Result<JobRecord, JobsError> {
        let record = self.jobs.create(&self.queue, params, exclusive)?;
        self.wake.wake();
        Ok(record)
    }
}

impl<T> Persistence for QueuePersistence<T>
where
    T: DeserializeOwned + Send + 'static,
{
    type Compact = Vec<u8>;
    type Response = Vec<u8>;
    type Error = JobsError;

    async fn register(&mut self, worker: &WorkerContext) -> Result<(), JobsError> {
        self.jobs.register_worker(&self.queue, worker.name())?;
        Ok(())
    }

    async fn heartbeat(&mut self, worker: &WorkerContext) -> Result<(), JobsError> {
        // An error here would stop the worker for good; the database being away for a while
        // (a restart) must not. The next beat tries again.
        if let Err(error) = self.jobs.heartbeat(&self.queue, worker.name()) {
            tracing::warn!(%error, "recording the job worker's heartbeat failed; retrying");
        }
        Ok(())
    }

    async fn fetch_next(
        &mut self,
        worker: &WorkerContext,
    ) -> Result<Vec<Task<Vec<u8>>>, JobsError> {
        loop {
            // One job per fetch: a claimed job counts as started, so a batch would mark jobs
            // that wait behind the running one as interrupted after a crash.
            let claimed = match self.jobs.claim(&self.queue, worker.name(), 1) {
                Ok(mut claimed) => claimed.pop(),
                // As for heartbeats: not fatal, the next fetch tries again.
                Err(error) => {
                    tracing::warn!(%error, "looking for queued jobs failed; retrying");
                    None
                }
            };
            let Some(job) = claimed else {
                return Ok(Vec::new());
            };
            // apalis decodes the arguments later and stops the whole worker on failure; fail
            // just this job instead.
            if let Err(error) = serde_json::from_value::<T>(job.params.clone()) {
                tracing::warn!(job = job.id, %error, "job arguments do not decode");
                let error = JobError {
                    code: INVALID_ARGUMENTS.into(),
                    message: format!("job arguments do not decode: {error}"),
                };
                self.jobs.finish(job.id, &JobOutcome::Failed(error))?;
                continue;
            }
            tracing::debug!(job = job.id, queue = %self.queue, "job claimed");
            let task = TaskBuilder::new(serde_json::to_vec(&job.params)?)
                .task_id(TaskId::Int(job.id))
                .attempt(job.attempts.saturating_sub(1) as usize)
                .build();
            return Ok(vec![task]);
        }
    }

    async fn reenqueue_abandoned(
        &mut self,
        tasks: Vec<Task<Vec<u8>>>,
        _worker: &WorkerContext,
    ) -> Result<u64, JobsError> {
        let ids = tasks
            .iter()
            .map(|task| queue_id(task.task_id()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.jobs.requeue(&ids)?)
    }

    async fn handle_events(
        &mut self,
        events: Vec<TaskEvent<Vec<u8>>>,
        _worker: &WorkerContext,
    ) -> Result<(), JobsError> {
        for event in events {
            // Only results arrive: the layer persists results but does not lock tasks, since a
            // claim already marks its job running.
            if let TaskEvent::Complete(result) = event {
                let id = queue_id(Some(&result.task_id))?;
                let outcome = match (result.status, result.result) {
                    (Status::Done, _) => JobOutcome::Succeeded,
                    // Failed or Killed, or Running when a panic unwound through apalis' status
                    // tracking.
                    (_, Err(error)) => JobOutcome::Failed(failure_of(&error)),
                    (_, Ok(_)) => JobOutcome::Failed(failure_of("")),
                };
                let record = finish_patiently(&*self.jobs, id, outcome).await?;
                tracing::debug!(job = id, state = ?record.state, "job finished");
            }
        }
        Ok(())
    }

    async fn push_tasks(&mut self, tasks: Vec<Task<Vec<u8>>>) -> Result<(), JobsError> {
        for task in tasks {
            self.push(serde_json::from_slice(&task.args)?, false)?;
        }
        Ok(())
    }
}

/// How long a job's outcome is retried while the store is away before the worker gives up.
const FINISH_PATIENCE: Duration = Duration::from_secs(300);

/// Records a job's outcome, retrying while the store is unavailable: a lost outcome would leave
/// the job `running` under a live worker, settled by nobody.
async fn finish_patiently(
    jobs: &dyn JobStore,
    id: u64,
    outcome: JobOutcome,
) -> Result<JobRecord, JobsError> {
    let deadline = std::time::Instant::now() + FINISH_PATIENCE;
    loop {
        match jobs.finish(id, &outcome) {
            Err(sprig_store::StoreError::Unavailable(error))
                if std::time::Instant::now() < deadline =>
            {
                tracing::warn!(job = id, %error, "recording the job's outcome failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// The job id of an apalis task (tasks of this backend carry the job's id).
fn queue_id(id: Option<&TaskId>) -> Result<u64, JobsError> {
    id.and_then(TaskId::as_int)
        .ok_or_else(|| JobsError::ForeignTaskId(format!("{id:?}")))
}

/// The apalis backend of one [`JobQueue`](crate::JobQueue), for building a worker by hand (e.g.
/// with more middleware than [`run_worker`](crate::run_worker) adds). Made by
/// [`JobQueue::backend`](crate::JobQueue::backend).
///
/// It claims one job per fetch, records results through apalis' persistence layer, and is woken
/// by pushes made through any clone of its `JobQueue` (or through this backend as a
/// [`TaskSink`](apalis_core::backend::TaskSink); task metadata other than the arguments is not
/// kept). Jobs queued by other processes are seen at the next heartbeat.
pub struct JobQueueBackend<T: DeserializeOwned + Send + 'static> {
    persisted: Persisted<QueuePersistence<T>>,
    heartbeat: Duration,
}

impl<T: DeserializeOwned + Send + 'static> JobQueueBackend<T> {
    pub(crate) fn new(persistence: QueuePersistence<T>, heartbeat: Duration) -> Self {
        Self {
            persisted: Persisted::new(persistence),
            heartbeat,
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> Backend for JobQueueBackend<T> {
    type Task = Task<Vec<u8>>;
    type Error = JobsError;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), JobsError>> {
        self.persisted.poll_ready(cx, worker, self.heartbeat)
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Task<Vec<u8>>, JobsError>>> {
        // Registered before the fetch, so a push landing right after an empty fetch still wakes.
        self.persisted.wake.register(cx.waker());
        self.persisted.poll_next(cx, worker)
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), JobsError>> {
        self.persisted.poll_close(cx, worker)
    }
}

impl<T: DeserializeOwned + Send + 'static> BackendConfig for JobQueueBackend<T> {
    type Args = T;
    type Id = u64;
    type Kind = Durable;
    type Config = ();
    type Layer = TaskPersistLayer<JsonCodec, Vec<u8>>;

    fn config(&self) -> &() {
        &()
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> Self::Layer {
        self.persisted
            .layer(JsonCodec, EVENT_BATCH)
            .persist_results(true)
    }
}

impl<T: DeserializeOwned + Send + 'static> WireFormatBackend for JobQueueBackend<T> {
    type Codec = JsonCodec;
    type Compact = Vec<u8>;

    fn codec(&self) -> &JsonCodec {
        &JsonCodec
    }
}

impl<T: DeserializeOwned + Send + 'static> Sink<Task<Vec<u8>>> for JobQueueBackend<T> {
    type Error = JobsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), JobsError>> {
        self.get_mut().persisted.poll_ready_unpin(cx)
    }

    fn start_send(self: Pin<&mut Self>, task: Task<Vec<u8>>) -> Result<(), JobsError> {
        self.get_mut().persisted.start_send_unpin(task)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), JobsError>> {
        self.get_mut().persisted.poll_flush_unpin(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), JobsError>> {
        self.get_mut().persisted.poll_close_unpin(cx)
    }
}
