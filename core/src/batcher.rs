//! The dynamic batcher: a bounded request queue whose worker threads coalesce concurrent
//! requests for the same model version into one forward pass.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::{Deserialize, Serialize};
use sprig_backends::PreparedImage;
use tokio::sync::oneshot;

use crate::error::{CoreError, Result};
use crate::model_registry::LoadedModel;

/// Dynamic batching settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchingConfig {
    /// Off: every request is its own forward pass.
    pub enabled: bool,
    /// Largest batch one forward pass takes.
    pub max_batch_size: usize,
    /// How long a worker waits for more requests after taking the first one.
    pub max_wait_ms: u64,
    /// Requests waiting beyond this are refused with 429 instead of queueing without bound.
    pub queue_capacity: usize,
    /// Inference threads pulling from the queue; 0 = as many as the backend runs side by side
    /// (onnxruntime and openvino: one per core, as they keep a runner per core; burn backends: 1).
    pub workers: usize,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        // Measured on 2 cores (loadtest/LOAD_TEST_RESULTS.md): with a worker per core, batches
        // past 2 cost memory without adding throughput (ONNX Runtime's cost per image is flat in
        // the batch size), and any fixed wait adds straight to single-client latency, so batches
        // form only from requests already waiting.
        Self {
            enabled: true,
            max_batch_size: 2,
            max_wait_ms: 0,
            queue_capacity: 256,
            workers: 0,
        }
    }
}

/// Receives per-batch timings (the server turns them into Prometheus histograms).
pub trait InferenceObserver: Send + Sync {
    fn batch_done(&self, model_version: u32, batch_size: usize, seconds: f64);
    /// Predictions that were answered but could not be written to the history (the store
    /// refused the write: disk full, I/O error).
    fn predictions_unrecorded(&self, _count: usize) {}
}

/// What one image's forward pass gives: the head's probabilities and the backbone embedding
/// they came from.
pub struct Inference {
    pub probabilities: Vec<f32>,
    pub embedding: Vec<f32>,
    /// The forward pass's time per image of its batch (no queue wait): what a model costs.
    pub compute_ms: f64,
}

type Reply = oneshot::Sender<Result<Inference, String>>;

struct Request {
    image: PreparedImage,
    model: Arc<LoadedModel>,
    reply: Reply,
}

/// The bounded request queue and its worker threads.
pub struct Batcher {
    sender: Mutex<Option<Sender<Request>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Batcher {
    /// `workers` inference threads (the engine resolves `config.workers = 0`).
    pub fn start(
        config: &BatchingConfig,
        workers: usize,
        observer: Arc<dyn InferenceObserver>,
    ) -> Self {
        let (sender, receiver) = crossbeam_channel::bounded(config.queue_capacity.max(1));
        let max_batch = if config.enabled {
            config.max_batch_size.max(1)
        } else {
            1
        };
        let max_wait = Duration::from_millis(if config.enabled {
            config.max_wait_ms
        } else {
            0
        });
        let workers = (0..workers.max(1))
            .map(|i| {
                let receiver = receiver.clone();
                let observer = observer.clone();
                std::thread::Builder::new()
                    .name(format!("sprig-infer-{i}"))
                    .spawn(move || worker_loop(receiver, max_batch, max_wait, observer.as_ref()))
                    .expect("spawn inference thread")
            })
            .collect();
        Self {
            sender: Mutex::new(Some(sender)),
            workers: Mutex::new(workers),
        }
    }

    /// Queues one image for `model`; refuses at once when the queue is full.
    pub fn submit(
        &self,
        image: PreparedImage,
        model: Arc<LoadedModel>,
    ) -> Result<oneshot::Receiver<Result<Inference, String>>> {
        let (reply, receiver) = oneshot::channel();
        let guard = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        let sender = guard.as_ref().ok_or(CoreError::ShuttingDown)?;
        match sender.try_send(Request {
            image,
            model,
            reply,
        }) {
            Ok(()) => Ok(receiver),
            Err(TrySendError::Full(_)) => Err(CoreError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Err(CoreError::ShuttingDown),
        }
    }

    /// Requests currently waiting for a worker.
    pub fn queued(&self) -> usize {
        self.sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, Sender::len)
    }

    /// Stops accepting work, lets the workers finish what is queued, and joins them.
    pub fn shutdown(&self) {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        for worker in self
            .workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = worker.join();
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn worker_loop(
    receiver: Receiver<Request>,
    max_batch: usize,
    max_wait: Duration,
    observer: &dyn InferenceObserver,
) {
    let mut carried: Option<Request> = None;
    loop {
        let first = match carried.take() {
            Some(request) => request,
            None => match receiver.recv() {
                Ok(request) => request,
                Err(_) => return, // queue closed and drained
            },
        };
        let deadline = Instant::now() + max_wait;
        let mut batch = vec![first];
        while batch.len() < max_batch {
            let next = match receiver.try_recv() {
                Ok(request) => request,
                Err(_) => match receiver
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                {
                    Ok(request) => request,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                },
            };
            // A request for another version (a swap happened) starts the next batch.
            if Arc::ptr_eq(&next.model, &batch[0].model) {
                batch.push(next);
            } else {
                carried = Some(next);
                break;
            }
        }
        run_batch(batch, observer);
    }
}

fn run_batch(batch: Vec<Request>, observer: &dyn InferenceObserver) {
    let model = batch[0].model.clone();
    let (images, replies): (Vec<PreparedImage>, Vec<Reply>) =
        batch.into_iter().map(|r| (r.image, r.reply)).unzip();
    let started = Instant::now();
    let result = model.classifier.features(&images).and_then(|features| {
        let rows = model.classifier.classify_features(&features)?;
        Ok((rows, features))
    });
    let seconds = started.elapsed().as_secs_f64();
    observer.batch_done(model.version(), images.len(), seconds);
    let compute_ms = seconds * 1000.0 / images.len() as f64;
    match result {
        Ok((rows, features)) => {
            for ((reply, probabilities), mut features) in
                replies.into_iter().zip(rows).zip(features)
            {
                // The embedding is the features' leading part: keep it in place, no copy.
                features.truncate(sprig_backends::embedding(&features).len());
                let _ = reply.send(Ok(Inference {
                    probabilities,
                    embedding: features,
                    compute_ms,
                }));
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(error.to_string()));
            }
        }
    }
}
