//! The apalis side: a [`Persistence`] over a [`TaskQueue`], driven by apalis' [`Persisted`] and
//! exposed as an apalis backend.

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
use sprig_store::queue::TaskOutcome;
use sprig_store::TaskQueue;

use crate::error::JobsError;

/// Capacity factor of the channel that carries task results from the worker to the queue.
const EVENT_BATCH: usize = 1;

/// JSON encoding of job arguments and results, as stored in the task queue.
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

/// One named queue of a [`TaskQueue`] as apalis persistence: claims, outcomes and worker
/// liveness are written to the queue.
pub(crate) struct QueuePersistence<T> {
    pub(crate) tasks: Arc<dyn TaskQueue>,
    pub(crate) queue: Arc<str>,
    /// Woken on every push: apalis' `Persisted` otherwise only fetches again when its heartbeat
    /// timer fires, so an idle worker would pick new work up a whole heartbeat late.
    wake: Arc<AtomicWaker>,
    args: PhantomData<fn() -> T>,
}

impl<T> Clone for QueuePersistence<T> {
    fn clone(&self) -> Self {
        Self {
            tasks: self.tasks.clone(),
            queue: self.queue.clone(),
            wake: self.wake.clone(),
            args: PhantomData,
        }
    }
}

impl<T> QueuePersistence<T> {
    pub(crate) fn new(tasks: Arc<dyn TaskQueue>, queue: &str) -> Self {
        Self {
            tasks,
            queue: queue.into(),
            wake: Arc::default(),
            args: PhantomData,
        }
    }

    /// Stores one encoded task and wakes the worker waiting on this queue.
    pub(crate) fn push(&self, payload: Vec<u8>) -> Result<u64, JobsError> {
        let record = self.tasks.push(&self.queue, payload)?;
        self.wake.wake();
        Ok(record.id)
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
        self.tasks.register_worker(&self.queue, worker.name())?;
        Ok(())
    }

    async fn heartbeat(&mut self, worker: &WorkerContext) -> Result<(), JobsError> {
        // An error here would stop the worker for good; the database being away for a while
        // (a restart) must not. The next beat tries again.
        if let Err(error) = self.tasks.heartbeat(&self.queue, worker.name()) {
            tracing::warn!(%error, "recording the job worker's heartbeat failed; retrying");
        }
        Ok(())
    }

    async fn fetch_next(
        &mut self,
        worker: &WorkerContext,
    ) -> Result<Vec<Task<Vec<u8>>>, JobsError> {
        loop {
            // One task per fetch: a claimed task counts as started, so a batch would mark tasks
            // that wait behind the running one as interrupted after a crash.
            let claimed = match self.tasks.claim(&self.queue, worker.name(), 1) {
                Ok(mut claimed) => claimed.pop(),
                // As for heartbeats: not fatal, the next fetch tries again.
                Err(error) => {
                    tracing::warn!(%error, "looking for queued jobs failed; retrying");
                    None
                }
            };
            let Some(claimed) = claimed else {
                return Ok(Vec::new());
            };
            let record = claimed.record;
            // apalis decodes the arguments later and stops the whole worker on failure; fail
            // just this task instead.
            if let Err(error) = serde_json::from_slice::<T>(&claimed.payload) {
                tracing::warn!(task = record.id, %error, "job arguments do not decode");
                let outcome = TaskOutcome::Failed(format!("job arguments do not decode: {error}"));
                self.tasks.finish(record.id, record.attempts + 1, outcome)?;
                continue;
            }
            tracing::debug!(task = record.id, queue = %self.queue, "task claimed");
            let task = TaskBuilder::new(claimed.payload)
                .task_id(TaskId::Int(record.id))
                .attempt(record.attempts as usize)
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
        Ok(self.tasks.requeue(&ids)?)
    }

    async fn handle_events(
        &mut self,
        events: Vec<TaskEvent<Vec<u8>>>,
        _worker: &WorkerContext,
    ) -> Result<(), JobsError> {
        for event in events {
            // Only results arrive: the layer persists results but does not lock tasks, since a
            // claim already marks its task running.
            if let TaskEvent::Complete(result) = event {
                let id = queue_id(Some(&result.task_id))?;
                let error = result.result.err().unwrap_or_default();
                let outcome = match result.status {
                    Status::Done => TaskOutcome::Done,
                    Status::Killed => TaskOutcome::Killed(error),
                    // Failed, or Running when a panic unwound through apalis' status tracking.
                    _ => TaskOutcome::Failed(error),
                };
                let record =
                    finish_patiently(&*self.tasks, id, result.attempt as u32, outcome).await?;
                tracing::debug!(task = id, status = ?record.status, "task finished");
            }
        }
        Ok(())
    }

    async fn push_tasks(&mut self, tasks: Vec<Task<Vec<u8>>>) -> Result<(), JobsError> {
        for task in tasks {
            self.push(task.args)?;
        }
        Ok(())
    }
}

/// How long a task's outcome is retried while the store is away before the worker gives up.
const FINISH_PATIENCE: Duration = Duration::from_secs(300);

/// Records a task's outcome, retrying while the store is unavailable: a lost outcome would leave
/// the task `running` under a live worker, settled by nobody.
async fn finish_patiently(
    tasks: &dyn TaskQueue,
    id: u64,
    attempts: u32,
    outcome: TaskOutcome,
) -> Result<sprig_store::TaskRecord, JobsError> {
    let deadline = std::time::Instant::now() + FINISH_PATIENCE;
    loop {
        match tasks.finish(id, attempts, outcome.clone()) {
            Err(sprig_store::StoreError::Unavailable(error))
                if std::time::Instant::now() < deadline =>
            {
                tracing::warn!(task = id, %error, "recording the task's outcome failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// The queue id of an apalis task (tasks of this backend carry integer ids).
fn queue_id(id: Option<&TaskId>) -> Result<u64, JobsError> {
    id.and_then(TaskId::as_int)
        .ok_or_else(|| JobsError::ForeignTaskId(format!("{id:?}")))
}

/// The apalis backend of one [`JobQueue`](crate::JobQueue), for building a worker by hand (e.g.
/// with more middleware than [`run_worker`](crate::run_worker) adds). Made by
/// [`JobQueue::backend`](crate::JobQueue::backend).
///
/// It claims one task per fetch, records results through apalis' persistence layer, and is woken
/// by pushes made through any clone of its `JobQueue` (or through this backend as a
/// [`TaskSink`](apalis_core::backend::TaskSink); task metadata other than the arguments is not
/// kept). Pushes made by other processes are seen at the next heartbeat.
pub struct TaskQueueBackend<T: DeserializeOwned + Send + 'static> {
    persisted: Persisted<QueuePersistence<T>>,
    heartbeat: Duration,
}

impl<T: DeserializeOwned + Send + 'static> TaskQueueBackend<T> {
    pub(crate) fn new(persistence: QueuePersistence<T>, heartbeat: Duration) -> Self {
        Self {
            persisted: Persisted::new(persistence),
            heartbeat,
        }
    }
}

impl<T: DeserializeOwned + Send + 'static> Backend for TaskQueueBackend<T> {
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

impl<T: DeserializeOwned + Send + 'static> BackendConfig for TaskQueueBackend<T> {
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

impl<T: DeserializeOwned + Send + 'static> WireFormatBackend for TaskQueueBackend<T> {
    type Codec = JsonCodec;
    type Compact = Vec<u8>;

    fn codec(&self) -> &JsonCodec {
        &JsonCodec
    }
}

impl<T: DeserializeOwned + Send + 'static> Sink<Task<Vec<u8>>> for TaskQueueBackend<T> {
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
