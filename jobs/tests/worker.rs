//! The job queue end to end: a real sled store in a temp dir and a real apalis worker, reading
//! the job records the queue is made of.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis_core::backend::TaskSink;
use serde::{Deserialize, Serialize};
use sprig_jobs::{recover_interrupted, run_worker, JobQueue, JobsError, INTERRUPTED, PANICKED};
use sprig_store::{JobError, JobState, JobStore, SledStore};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const QUEUE: &str = "retrain";
/// Long enough that a test passing well within it shows pushes do not wait for a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(30);
const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    n: u32,
}

fn open(dir: &Path) -> Arc<dyn JobStore> {
    Arc::new(SledStore::open(dir).unwrap())
}

fn job_queue(tasks: &Arc<dyn JobStore>) -> JobQueue<Job> {
    JobQueue::new(tasks.clone(), QUEUE).with_heartbeat(HEARTBEAT)
}

/// A worker running in the background, stopped by [`Worker::stop`].
struct Worker {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<Result<(), JobsError>>,
}

impl Worker {
    /// Starts a worker whose handler records each job and fails those listed in `fail`.
    fn start(queue: &JobQueue<Job>, runs: &Arc<Mutex<Vec<u32>>>, fail: &'static [u32]) -> Self {
        let runs = runs.clone();
        let handler = move |_id: u64, job: Job| {
            let runs = runs.clone();
            async move {
                runs.lock().unwrap().push(job.n);
                if fail.contains(&job.n) {
                    return Err(JobError {
                        code: "training_failed".into(),
                        message: format!("job {} went wrong", job.n),
                    });
                }
                Ok(())
            }
        };
        Self::start_with(queue, handler)
    }

    fn start_with<F, Fut>(queue: &JobQueue<Job>, handler: F) -> Self
    where
        F: Fn(u64, Job) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(run_worker(queue.clone(), handler, async move {
            let _ = stopped.await;
        }));
        Self { stop, handle }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(PATIENCE, self.handle)
            .await
            .expect("worker stops")
            .unwrap()
            .expect("worker ends without error");
    }
}

/// Waits until job `id` reaches `status`.
async fn wait_for_status(tasks: &Arc<dyn JobStore>, id: u64, status: JobState) {
    let reached = async {
        while tasks.get(id).unwrap().unwrap().state != status {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, reached)
        .await
        .unwrap_or_else(|_| panic!("job {id} did not become {status:?} within {PATIENCE:?}"));
}

/// Waits until the worker has registered, fetched nothing and gone idle.
async fn wait_until_idle(tasks: &Arc<dyn JobStore>) {
    let registered = async {
        while tasks.workers(QUEUE).unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, registered)
        .await
        .expect("worker registers");
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn push_wakes_an_idle_worker_long_before_its_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = open(dir.path());
    let queue = job_queue(&tasks);
    let runs = Arc::default();
    let worker = Worker::start(&queue, &runs, &[]);
    wait_until_idle(&tasks).await;

    let id = queue.push(Job { n: 1 }).await.unwrap();
    wait_for_status(&tasks, id, JobState::Succeeded).await;
    let record = tasks.get(id).unwrap().unwrap();
    assert_eq!(
        (record.attempts, record.error, record.progress),
        (1, None, 100.0)
    );
    assert_eq!(*runs.lock().unwrap(), [1]);

    // The worker stays awake for the next push too.
    let id = queue.push(Job { n: 2 }).await.unwrap();
    wait_for_status(&tasks, id, JobState::Succeeded).await;
    worker.stop().await;
}

#[tokio::test]
async fn failing_handler_marks_its_job_failed_with_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = open(dir.path());
    let queue = job_queue(&tasks);
    let runs = Arc::default();
    let worker = Worker::start(&queue, &runs, &[1]);

    let failed = queue.push(Job { n: 1 }).await.unwrap();
    let next = queue.push(Job { n: 2 }).await.unwrap();
    wait_for_status(&tasks, next, JobState::Succeeded).await;
    let record = tasks.get(failed).unwrap().unwrap();
    assert_eq!(record.state, JobState::Failed);
    let error = record.error.unwrap();
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        ("training_failed", "job 1 went wrong")
    );
    assert_eq!(record.attempts, 1);
    assert!(record.finished_at.is_some());
    worker.stop().await;
}

#[tokio::test]
async fn panicking_handler_fails_its_job_and_the_worker_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = open(dir.path());
    let queue = job_queue(&tasks);
    let worker = Worker::start_with(&queue, |_id, job: Job| async move {
        assert!(job.n != 1, "job 1 panics");
        Ok(())
    });

    let panicked = queue.push(Job { n: 1 }).await.unwrap();
    let next = queue.push(Job { n: 2 }).await.unwrap();
    wait_for_status(&tasks, next, JobState::Succeeded).await;
    let record = tasks.get(panicked).unwrap().unwrap();
    assert_eq!(record.state, JobState::Failed);
    let error = record.error.unwrap();
    assert_eq!(error.code, PANICKED);
    assert!(error.message.contains("job 1 panics"), "{error:?}");
    worker.stop().await;
}

#[tokio::test]
async fn jobs_queued_before_a_restart_run_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let ids = {
        let tasks = open(dir.path());
        let queue = job_queue(&tasks);
        [
            queue.push(Job { n: 1 }).await.unwrap(),
            queue.push(Job { n: 2 }).await.unwrap(),
        ]
    };

    let tasks = open(dir.path());
    assert!(recover_interrupted(&*tasks, QUEUE, Duration::ZERO)
        .unwrap()
        .is_empty());
    let queue = job_queue(&tasks);
    let runs = Arc::default();
    let worker = Worker::start(&queue, &runs, &[]);
    for id in ids {
        wait_for_status(&tasks, id, JobState::Succeeded).await;
    }
    assert_eq!(*runs.lock().unwrap(), [1, 2]);
    worker.stop().await;
}

#[tokio::test]
async fn job_running_at_a_crash_is_reported_and_not_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let (interrupted, queued) = {
        let tasks = open(dir.path());
        let queue = job_queue(&tasks);
        let interrupted = queue.push(Job { n: 1 }).await.unwrap();
        // What a worker does when it starts a job; the process then dies.
        tasks.claim(QUEUE, "dead-worker", 1).unwrap();
        let queued = queue.push(Job { n: 2 }).await.unwrap();
        (interrupted, queued)
    };

    let tasks = open(dir.path());
    let queue = job_queue(&tasks);
    let recovered = recover_interrupted(&*tasks, QUEUE, Duration::ZERO).unwrap();
    assert_eq!(recovered.len(), 1);
    let record = &recovered[0];
    assert_eq!((record.id, record.state), (interrupted, JobState::Failed));
    assert_eq!(record.error.as_ref().unwrap().code, INTERRUPTED);
    assert_eq!(record.worker.as_deref(), Some("dead-worker"));
    assert_eq!(record.attempts, 1);
    assert_eq!(queue.args(record.id).unwrap(), Some(Job { n: 1 }));

    let runs = Arc::default();
    let worker = Worker::start(&queue, &runs, &[]);
    wait_for_status(&tasks, queued, JobState::Succeeded).await;
    let later = queue.push(Job { n: 3 }).await.unwrap();
    wait_for_status(&tasks, later, JobState::Succeeded).await;
    assert_eq!(*runs.lock().unwrap(), [2, 3]);
    assert_eq!(tasks.get(interrupted).unwrap().as_ref(), Some(record));
    worker.stop().await;
}

#[tokio::test]
async fn one_job_runs_at_a_time_in_push_order() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = open(dir.path());
    let queue = job_queue(&tasks);
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(queue.push(Job { n }).await.unwrap());
    }

    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let order = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let (running, most, order) = (running.clone(), most.clone(), order.clone());
        move |_id, job: Job| {
            let (running, most, order) = (running.clone(), most.clone(), order.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                order.lock().unwrap().push(job.n);
                tokio::time::sleep(Duration::from_millis(100)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        }
    };
    let worker = Worker::start_with(&queue, handler);
    for n in 3..5 {
        ids.push(queue.push(Job { n }).await.unwrap());
    }
    for &id in &ids {
        wait_for_status(&tasks, id, JobState::Succeeded).await;
    }
    assert_eq!(most.load(Ordering::SeqCst), 1);
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
    worker.stop().await;
}

#[tokio::test]
async fn apalis_task_sink_pushes_wake_the_worker_too() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = open(dir.path());
    let queue = job_queue(&tasks);
    let runs = Arc::default();
    let worker = Worker::start(&queue, &runs, &[]);
    wait_until_idle(&tasks).await;

    let mut backend = queue.backend();
    backend.push(Job { n: 7 }).await.unwrap();
    let pending = async {
        while runs.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, pending)
        .await
        .expect("sink push runs");
    assert_eq!(*runs.lock().unwrap(), [7]);
    worker.stop().await;
}

#[tokio::test]
async fn undecodable_arguments_fail_the_job_not_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = open(dir.path());
    let queue = job_queue(&tasks);
    let bad = tasks
        .create(QUEUE, serde_json::json!({"unexpected": true}), false)
        .unwrap()
        .id;
    let good = queue.push(Job { n: 1 }).await.unwrap();
    let runs = Arc::default();
    let worker = Worker::start(&queue, &runs, &[]);

    wait_for_status(&tasks, good, JobState::Succeeded).await;
    let record = tasks.get(bad).unwrap().unwrap();
    assert_eq!(record.state, JobState::Failed);
    let error = record.error.unwrap();
    assert_eq!(error.code, sprig_jobs::INVALID_ARGUMENTS);
    assert!(error.message.starts_with("job arguments do not decode"));
    assert_eq!(*runs.lock().unwrap(), [1]);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_keeps_beating_so_its_job_is_never_taken_for_orphaned() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = open(dir.path());
    let beat = Duration::from_millis(100);
    let queue = JobQueue::<Job>::new(tasks.clone(), QUEUE).with_heartbeat(beat);
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = Arc::new(Mutex::new(released));
    // A handler that blocks (as training does) far longer than the lease below.
    let worker = Worker::start_with(&queue, move |_id, _job: Job| {
        let released = released.clone();
        async move {
            tokio::task::spawn_blocking(move || released.lock().unwrap().recv().unwrap())
                .await
                .unwrap();
            Ok(())
        }
    });
    let id = queue.push(Job { n: 1 }).await.unwrap();
    wait_for_status(&tasks, id, JobState::Running).await;
    let lease = beat * 5;
    for _ in 0..10 {
        tokio::time::sleep(lease / 2).await;
        assert!(
            recover_interrupted(&*tasks, QUEUE, lease)
                .unwrap()
                .is_empty(),
            "a live worker's job was taken for orphaned"
        );
    }
    // The worker's name is this process's: another process's worker would not share it.
    let running = tasks.get(id).unwrap().unwrap();
    assert_eq!(
        running.worker.as_deref(),
        Some(queue.worker_name().as_str())
    );
    release.send(()).unwrap();
    wait_for_status(&tasks, id, JobState::Succeeded).await;
    worker.stop().await;
    // Once its worker is gone and silent for the lease, a job it held would be settled.
    let orphan = queue.push(Job { n: 2 }).await.unwrap();
    tasks.claim(QUEUE, &queue.worker_name(), 1).unwrap();
    tokio::time::sleep(lease + beat).await;
    let recovered = recover_interrupted(&*tasks, QUEUE, lease).unwrap();
    assert_eq!(recovered.iter().map(|t| t.id).collect::<Vec<_>>(), [orphan]);
}

/// The handler gets its job's id and may write a richer end state itself; the worker's report
/// afterwards does not overwrite it.
#[tokio::test]
async fn a_handler_writes_its_own_end_state_and_the_worker_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = open(dir.path());
    let queue = job_queue(&tasks);
    let store = tasks.clone();
    let worker = Worker::start_with(&queue, move |id, job: Job| {
        let store = store.clone();
        async move {
            store
                .update(id, &mut |record| {
                    record.state = JobState::Succeeded;
                    record.model_version = Some(job.n);
                    record.message = format!("version {} trained", job.n);
                })
                .unwrap();
            // An error after the end state was written changes nothing.
            Err(JobError {
                code: "training_failed".into(),
                message: "late".into(),
            })
        }
    });
    let id = queue.push(Job { n: 9 }).await.unwrap();
    wait_for_status(&tasks, id, JobState::Succeeded).await;
    // The report lands after the handler returns: give it the time to, then look again.
    wait_until_idle(&tasks).await;
    let record = tasks.get(id).unwrap().unwrap();
    assert_eq!(
        (record.state, record.model_version, record.message.as_str()),
        (JobState::Succeeded, Some(9), "version 9 trained")
    );
    assert_eq!(record.error, None);
    worker.stop().await;
}
