//! Prediction: decode off the async runtime, queue into the batcher, record the result.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use chrono::Utc;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use sprig_backends::views::content_seed;
use sprig_backends::{decode, prepare, training::argmax, PreparedImage};
use sprig_store::{ClassProbability, PredictionRecord, PredictionStore};
use tokio::sync::oneshot;

use crate::batcher::{Batcher, InferenceObserver};
use crate::error::{CoreError, Result};
use crate::ingest::{content_hash, sanitize_filename, IngestLimits};
use crate::model_registry::ModelRegistry;
use crate::review::ReviewQueue;
use crate::rollout::{Rollouts, ShadowTicket};

/// How much prediction history is kept. Bounded by default: anyone who may predict adds to it.
/// The aggregates (`/api/stats/predictions`) count every prediction, kept or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictionRetention {
    /// Most predictions kept; the oldest go first.
    pub max_count: u64,
    /// Days a prediction is kept; 0: no age limit.
    pub max_age_days: u32,
}

impl Default for PredictionRetention {
    fn default() -> Self {
        Self {
            max_count: 100_000,
            max_age_days: 90,
        }
    }
}

/// Serves predictions for the active model version.
pub struct Predictor {
    registry: Arc<ModelRegistry>,
    batcher: Arc<Batcher>,
    recorder: Recorder,
    observer: Arc<dyn InferenceObserver>,
    predictions: Arc<dyn PredictionStore>,
    retention: PredictionRetention,
    limits: IngestLimits,
    decode_permits: Arc<tokio::sync::Semaphore>,
    review: Arc<ReviewQueue>,
    rollouts: Arc<Rollouts>,
}

/// One answered request, before it is recorded.
struct Classified {
    record: PredictionRecord,
    /// The file as received, for the review queue.
    bytes: Vec<u8>,
    /// The active version's forward-pass time per image (no queue wait), for a shadow's
    /// comparison.
    inference_ms: f64,
    shadow: Option<ShadowTicket>,
}

struct DecodedRequest {
    image: PreparedImage,
    sha256: String,
    /// The file as received, for the review queue to keep.
    bytes: Vec<u8>,
}

impl Predictor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        registry: Arc<ModelRegistry>,
        batcher: Arc<Batcher>,
        predictions: Arc<dyn PredictionStore>,
        observer: Arc<dyn InferenceObserver>,
        retention: PredictionRetention,
        limits: IngestLimits,
        decode_permits: Arc<tokio::sync::Semaphore>,
        review: Arc<ReviewQueue>,
        rollouts: Arc<Rollouts>,
    ) -> Self {
        Self {
            registry,
            batcher,
            recorder: Recorder::start(predictions.clone()),
            observer,
            predictions,
            retention,
            limits,
            decode_permits,
            review,
            rollouts,
        }
    }

    /// Applies the retention policy to the recorded history (blocking); returns how many
    /// predictions were deleted.
    pub fn prune_history(&self) -> Result<u64> {
        let older_than = (self.retention.max_age_days > 0)
            .then(|| Utc::now() - chrono::Duration::days(i64::from(self.retention.max_age_days)));
        Ok(self
            .predictions
            .prune(self.retention.max_count, older_than)?)
    }

    /// Predicts one image and records the prediction. `client` (the caller's stable id, if it
    /// sent one) keeps it on one side of a canary.
    pub async fn predict(
        &self,
        bytes: Vec<u8>,
        filename: Option<String>,
        client: Option<&str>,
    ) -> Result<PredictionRecord> {
        let started = Instant::now();
        let decoded = self.decode(bytes).await?;
        let classified = self.classify(decoded, filename, client, started).await?;
        let record = self.record(vec![classified.record.clone()]).await.remove(0);
        self.after_answer(record.clone(), classified).await;
        Ok(record)
    }

    /// What follows an answer: the review queue considers it, and a sampled shadow run starts
    /// (on its own task: the answer never waits for it).
    async fn after_answer(&self, record: PredictionRecord, classified: Classified) {
        let kept = self.review.consider(&record, classified.bytes).await;
        if let Some(ticket) = classified.shadow {
            let inference_ms = classified.inference_ms;
            tokio::spawn(async move { ticket.run(&record, inference_ms, kept).await });
        }
    }

    /// Writes answered predictions to the history. A failed write does not take the answers
    /// back: they are returned unnumbered (id 0), logged and counted.
    async fn record(&self, records: Vec<PredictionRecord>) -> Vec<PredictionRecord> {
        match self.recorder.record(records.clone()).await {
            Ok(recorded) => recorded,
            Err(error) => {
                tracing::error!(%error, count = records.len(), "predictions answered but not recorded");
                self.observer.predictions_unrecorded(records.len());
                records
            }
        }
    }

    /// Predicts many images; they enter the batcher together so they share forward passes.
    /// One bad file (or one the caller could not read: an `Err` slot) yields an error in its
    /// slot and does not affect the others.
    pub async fn predict_many(
        &self,
        files: Vec<(Option<String>, Result<Vec<u8>>)>,
        client: Option<&str>,
    ) -> Vec<Result<PredictionRecord>> {
        let started = Instant::now();
        let decodes = files.into_iter().map(|(name, bytes)| async move {
            match bytes {
                Ok(bytes) => (name, self.decode(bytes).await),
                Err(error) => (name, Err(error)),
            }
        });
        let decoded = join_all(decodes).await;
        let classified = join_all(decoded.into_iter().map(|(name, result)| async move {
            match result {
                Ok(request) => self.classify(request, name, client, started).await,
                Err(e) => Err(e),
            }
        }))
        .await;
        let successes: Vec<PredictionRecord> = classified
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|c| c.record.clone()))
            .collect();
        let mut recorded = self.record(successes).await.into_iter();
        let mut answers = Vec::with_capacity(classified.len());
        for result in classified {
            answers.push(match result {
                Ok(classified) => {
                    let record = recorded.next().expect("one record per success");
                    self.after_answer(record.clone(), classified).await;
                    Ok(record)
                }
                Err(error) => Err(error),
            });
        }
        answers
    }

    async fn decode(&self, bytes: Vec<u8>) -> Result<DecodedRequest> {
        if bytes.len() as u64 > self.limits.max_file_bytes {
            return Err(CoreError::FileTooLarge {
                size: bytes.len() as u64,
                limit: self.limits.max_file_bytes,
            });
        }
        let limits = self.limits.decode_limits();
        let _permit = self
            .decode_permits
            .acquire()
            .await
            .map_err(|_| CoreError::ShuttingDown)?;
        tokio::task::spawn_blocking(move || {
            let decoded = decode(&bytes, &limits)?;
            let sha256 = content_hash(&bytes);
            // Seeded as training seeds the photo's augmented views: a version answering from
            // test-time views serves the views its evaluation scored.
            Ok(DecodedRequest {
                image: prepare(&decoded.rgb).seeded(content_seed(&sha256)),
                sha256,
                bytes,
            })
        })
        .await
        .map_err(|_| CoreError::ShuttingDown)?
    }

    async fn classify(
        &self,
        request: DecodedRequest,
        filename: Option<String>,
        client: Option<&str>,
        started: Instant,
    ) -> Result<Classified> {
        let active = self.registry.current().ok_or(CoreError::NoActiveModel)?;
        let shadow = self
            .rollouts
            .sample_shadow(active.version(), &request.image);
        let (model, canary) = self.rollouts.route(active, client);
        let inference = self
            .batcher
            .submit(request.image, model.clone())?
            .await
            .map_err(|_| CoreError::ShuttingDown)?
            .map_err(|e| CoreError::Backend(sprig_backends::BackendError::Inference(e)));
        let inference = match (inference, &canary) {
            (Ok(inference), _) => inference,
            (Err(error), Some((running, arm))) => {
                running.observe_error(*arm);
                return Err(error);
            }
            (Err(error), None) => return Err(error),
        };
        let inference_ms = inference.compute_ms;
        let probabilities =
            crate::calibration::scale(&inference.probabilities, model.temperature());
        let novelty = model
            .novelty
            .as_ref()
            .and_then(|scorer| scorer.score(&inference.embedding));
        let index = argmax(&probabilities);
        let (uncertainty, entropy) = crate::uncertainty::scores(&probabilities);
        let classes = model.classifier.classes();
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if let Some((running, arm)) = &canary {
            running.observe_answer(*arm, f64::from(probabilities[index]), latency_ms);
        }
        let record = PredictionRecord {
            id: 0,
            created_at: Utc::now(),
            model_version: model.version(),
            predicted_class: classes[index].clone(),
            predicted_index: index,
            confidence: probabilities[index],
            probabilities: classes
                .iter()
                .zip(&probabilities)
                .map(|(class, &probability)| ClassProbability {
                    class: class.clone(),
                    probability,
                })
                .collect(),
            uncertainty,
            entropy,
            out_of_distribution: novelty.is_some_and(|n| n > 1.0),
            novelty,
            label: None,
            latency_ms,
            image_sha256: request.sha256,
            // Anyone who may predict names the file; it is stored and listed like an upload's.
            filename: filename.map(|name| sanitize_filename(&name)),
        };
        Ok(Classified {
            record,
            bytes: request.bytes,
            inference_ms,
            shadow,
        })
    }

    /// Requests waiting for an inference worker.
    pub fn queued(&self) -> usize {
        self.batcher.queued()
    }

    /// Stops the batcher and the recorder after the work they hold.
    pub fn shutdown(&self) {
        self.batcher.shutdown();
        self.recorder.shutdown();
    }
}

type Ack = oneshot::Sender<Result<Vec<u64>>>;
/// Records waiting to be written, with the acknowledgement their request waits on.
type Pending = (Vec<PredictionRecord>, Ack);

/// Writes prediction records on a background thread, many per transaction, and acknowledges
/// each write so a client that got its answer can read the record back.
struct Recorder {
    sender: std::sync::Mutex<Option<std::sync::mpsc::Sender<Pending>>>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Recorder {
    fn start(store: Arc<dyn PredictionStore>) -> Self {
        let (sender, receiver) = std::sync::mpsc::channel::<Pending>();
        let thread = std::thread::Builder::new()
            .name("sprig-recorder".into())
            .spawn(move || {
                while let Ok(first) = receiver.recv() {
                    let mut pending = vec![first];
                    pending.extend(receiver.try_iter().take(255));
                    write_batch(store.as_ref(), pending);
                }
            })
            .expect("spawn recorder thread");
        Self {
            sender: std::sync::Mutex::new(Some(sender)),
            thread: std::sync::Mutex::new(Some(thread)),
        }
    }

    async fn record(&self, mut records: Vec<PredictionRecord>) -> Result<Vec<PredictionRecord>> {
        if records.is_empty() {
            return Ok(records);
        }
        let (ack, done) = oneshot::channel();
        {
            let guard = self.sender.lock().unwrap_or_else(|p| p.into_inner());
            let sender = guard.as_ref().ok_or(CoreError::ShuttingDown)?;
            sender
                .send((records.clone(), ack))
                .map_err(|_| CoreError::ShuttingDown)?;
        }
        let ids = done.await.map_err(|_| CoreError::ShuttingDown)??;
        for (record, id) in records.iter_mut().zip(ids) {
            record.id = id;
        }
        Ok(records)
    }

    fn shutdown(&self) {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

fn write_batch(store: &dyn PredictionStore, pending: Vec<Pending>) {
    let sizes: Vec<usize> = pending.iter().map(|(records, _)| records.len()).collect();
    let (records, acks): (Vec<Vec<PredictionRecord>>, Vec<Ack>) = pending.into_iter().unzip();
    match store.record(records.into_iter().flatten().collect()) {
        Ok(ids) => {
            let mut ids = ids.into_iter();
            for (ack, size) in acks.into_iter().zip(sizes) {
                let _ = ack.send(Ok(ids.by_ref().take(size).collect()));
            }
        }
        Err(error) => {
            tracing::error!(%error, "recording predictions failed");
            let message = error.to_string();
            for ack in acks {
                let _ = ack.send(Err(CoreError::Store(sprig_store::StoreError::Engine(
                    message.clone(),
                ))));
            }
        }
    }
}
