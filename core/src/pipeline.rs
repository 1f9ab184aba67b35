//! The training pipeline shared by the first-start bootstrap, retrain jobs and `sprig train`:
//! snapshot the data, compute (or reuse cached) backbone features, train the head, evaluate on the
//! validation split and store the result as an immutable model version.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sprig_backends::preprocess::augment;
use sprig_backends::{
    decode, BackboneKind, BackendError, BackendPlugin, Classifier, DecodeLimits, EpochReport,
    Example, FeatureExtractor, FineTuneConfig, HeadTrainingConfig, LabelledImage, ModelArtifact,
    PreparedImage, TrainingObserver,
};
use sprig_store::{
    DataSnapshot, EpochMetrics, FeatureKey, ImageRecord, ModelVersionRecord, NewModelVersion,
    Split, SplitCounts, Stores,
};

use crate::error::{CoreError, Result};
use crate::evaluation::evaluate;

/// When a finished retrain becomes the served version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationPolicy {
    Always,
    /// Activate unless validation macro-F1 is worse than the active version's by more than the tolerance.
    IfBetter,
    Manual,
}

impl std::str::FromStr for ActivationPolicy {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Self, String> {
        match name {
            "always" => Ok(Self::Always),
            "if_better" => Ok(Self::IfBetter),
            "manual" => Ok(Self::Manual),
            other => Err(format!(
                "unknown activation policy '{other}' (always, if_better or manual)"
            )),
        }
    }
}

/// Whether phase 2 (fine-tuning) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FineTuneMode {
    Auto,
    On,
    Off,
}

impl FineTuneMode {
    /// Whether to fine-tune on a backend (`auto` means: when it is a GPU).
    pub fn enabled(self, accelerator: bool) -> bool {
        match self {
            FineTuneMode::Auto => accelerator,
            FineTuneMode::On => true,
            FineTuneMode::Off => false,
        }
    }
}

/// Training defaults (config `[training]`); a retrain request may override some per job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    pub backbone: BackboneKind,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub l2: f64,
    pub early_stopping_patience: usize,
    pub lr_patience: usize,
    /// Extra augmented views (flip, rotation, zoom, shift) cached per training image.
    pub augment_views: u32,
    /// Images per backbone forward pass while computing features.
    pub feature_batch_size: usize,
    /// Phase 2, fine-tuning the last backbone blocks: `auto` (on with a GPU backend, off on
    /// CPU, where it costs minutes), `on` or `off`.
    pub fine_tune: FineTuneMode,
    /// Backbone blocks phase 2 trains (the head convolution always trains with them).
    pub fine_tune_blocks: usize,
    pub fine_tune_epochs: usize,
    pub fine_tune_learning_rate: f64,
    pub activation_policy: ActivationPolicy,
    /// Largest macro-F1 drop `if_better` still accepts.
    pub activation_tolerance: f64,
    pub seed: u64,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        let head = HeadTrainingConfig::default();
        Self {
            backbone: BackboneKind::MobilenetV2,
            epochs: head.max_epochs,
            batch_size: head.batch_size,
            learning_rate: head.learning_rate,
            l2: head.l2,
            early_stopping_patience: head.early_stopping_patience,
            lr_patience: head.lr_patience,
            augment_views: 2,
            feature_batch_size: 16,
            fine_tune: FineTuneMode::Auto,
            fine_tune_blocks: 2,
            fine_tune_epochs: 5,
            fine_tune_learning_rate: 1e-5,
            activation_policy: ActivationPolicy::IfBetter,
            activation_tolerance: 0.02,
            seed: head.seed,
        }
    }
}

/// Per-run overrides (the body of `POST /api/retrain`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingOverrides {
    pub backbone: Option<BackboneKind>,
    pub epochs: Option<usize>,
    pub learning_rate: Option<f64>,
    pub augment_views: Option<u32>,
    /// Run phase 2 (fine-tune the last backbone blocks) regardless of the configured mode.
    pub fine_tune: Option<bool>,
    /// Whether this run's version replaces the active one, instead of `training.activation_policy`.
    pub activation_policy: Option<ActivationPolicy>,
}

impl TrainingConfig {
    /// This config with a run's overrides applied, validated.
    pub fn with_overrides(&self, overrides: &TrainingOverrides) -> Result<TrainingConfig> {
        let mut config = self.clone();
        if let Some(backbone) = overrides.backbone {
            config.backbone = backbone;
        }
        if let Some(epochs) = overrides.epochs {
            config.epochs = epochs;
        }
        if let Some(rate) = overrides.learning_rate {
            config.learning_rate = rate;
        }
        if let Some(views) = overrides.augment_views {
            config.augment_views = views;
        }
        if let Some(policy) = overrides.activation_policy {
            config.activation_policy = policy;
        }
        if let Some(fine_tune) = overrides.fine_tune {
            config.fine_tune = if fine_tune {
                FineTuneMode::On
            } else {
                FineTuneMode::Off
            };
        }
        if !(1..=1000).contains(&config.epochs) {
            return Err(CoreError::InvalidRequest(
                "epochs must be between 1 and 1000".into(),
            ));
        }
        if !(config.learning_rate > 0.0 && config.learning_rate <= 1.0) {
            return Err(CoreError::InvalidRequest(
                "learning_rate must be in (0, 1]".into(),
            ));
        }
        if config.augment_views > 16 {
            return Err(CoreError::InvalidRequest(
                "augment_views must be at most 16".into(),
            ));
        }
        Ok(config)
    }

    fn fine_tune_config(&self) -> FineTuneConfig {
        FineTuneConfig {
            blocks: self.fine_tune_blocks,
            training: HeadTrainingConfig {
                max_epochs: self.fine_tune_epochs,
                learning_rate: self.fine_tune_learning_rate,
                ..self.head_config()
            },
        }
    }

    fn head_config(&self) -> HeadTrainingConfig {
        HeadTrainingConfig {
            max_epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            l2: self.l2,
            early_stopping_patience: self.early_stopping_patience,
            lr_patience: self.lr_patience,
            seed: self.seed,
            ..HeadTrainingConfig::default()
        }
    }
}

/// What a pipeline run reports while it works.
pub trait PipelineObserver: Send {
    /// Overall progress 0–100 and a human-readable phase message.
    fn progress(&mut self, percent: f64, message: &str);
    fn epoch(&mut self, metrics: &EpochMetrics, max_epochs: u32);
    /// Polled between batches: true stops the run (cooperative cancellation).
    fn cancelled(&self) -> bool;
}

/// Result of a pipeline run.
#[derive(Debug)]
pub struct TrainedVersion {
    pub version: ModelVersionRecord,
    /// Backbone forward passes this run needed (features not found in the cache).
    pub features_computed: usize,
    pub features_reused: usize,
    /// Milliseconds per phase (`features_ms`, `training_ms`, `evaluation_ms`).
    pub timings_ms: BTreeMap<String, u64>,
}

/// Runs the training pipeline on one backend.
#[derive(Clone)]
pub struct Pipeline {
    stores: Stores,
    plugin: Arc<dyn BackendPlugin>,
    decode_limits: DecodeLimits,
}

const FEATURES_SHARE: f64 = 40.0;
/// Images per forward pass when evaluating a fine-tuned model on images.
const PREDICT_BATCH: usize = 16;
const TRAINING_SHARE: f64 = 55.0;

impl Pipeline {
    pub fn new(
        stores: Stores,
        plugin: Arc<dyn BackendPlugin>,
        decode_limits: DecodeLimits,
    ) -> Self {
        Self {
            stores,
            plugin,
            decode_limits,
        }
    }

    /// Trains and stores a new version (blocking; run it off the async runtime).
    pub fn run(
        &self,
        config: &TrainingConfig,
        origin: &str,
        job_id: Option<u64>,
        observer: &mut dyn PipelineObserver,
    ) -> Result<TrainedVersion> {
        let started = Instant::now();
        let mut timings = BTreeMap::new();
        observer.progress(0.0, "collecting the data set");
        let data = DataSet::collect(self.stores.images.all()?)?;

        let phase = Instant::now();
        let (features, computed, reused) = self.features(&data, config, observer)?;
        timings.insert(
            "features_ms".to_string(),
            phase.elapsed().as_millis() as u64,
        );

        let examples = |split: Split, all_views: bool| -> Vec<Example> {
            data.images
                .iter()
                .filter(|(image, _)| image.split == split)
                .flat_map(|(image, label)| {
                    let views = if all_views {
                        0..=config.augment_views
                    } else {
                        0..=0
                    };
                    views.map(|view| Example {
                        features: features[&(image.id, view)].clone(),
                        label: *label,
                    })
                })
                .collect()
        };
        let train = examples(Split::Train, true);
        let validation = examples(Split::Validation, false);

        let phase = Instant::now();
        let fine_tune = config.fine_tune.enabled(self.plugin.is_accelerator());
        // Phase 1 gets the whole training share, or half of it when phase 2 follows.
        let head_share = if fine_tune {
            TRAINING_SHARE / 2.0
        } else {
            TRAINING_SHARE
        };
        let initial_head = self.warm_start_head(config.backbone, &data.classes)?;
        let mut training_observer = EpochForwarder {
            observer: &mut *observer,
            start: FEATURES_SHARE,
            share: head_share,
            max_epochs: config.epochs as u32,
            epoch_offset: 0,
            what: "training the head",
        };
        let trained = self.plugin.train(
            config.backbone,
            &data.classes,
            &train,
            &validation,
            &config.head_config(),
            initial_head.as_deref(),
            &mut training_observer,
        )?;
        timings.insert(
            "training_ms".to_string(),
            phase.elapsed().as_millis() as u64,
        );
        let mut artifact = trained.artifact;
        let mut history: Vec<EpochMetrics> = trained.history.iter().map(epoch_metrics).collect();
        let mut best_epoch = trained.best_epoch;
        if fine_tune {
            let phase = Instant::now();
            let mut forwarder = EpochForwarder {
                observer: &mut *observer,
                start: FEATURES_SHARE + head_share,
                share: TRAINING_SHARE - head_share,
                max_epochs: config.fine_tune_epochs as u32,
                epoch_offset: history.len() as u32,
                what: "fine-tuning the last backbone blocks",
            };
            let tuned = self.plugin.fine_tune(
                &artifact,
                &mut self.labelled_images(&data, Split::Train, config.augment_views),
                &mut self.labelled_images(&data, Split::Validation, 0),
                &config.fine_tune_config(),
                &mut forwarder,
            )?;
            let offset = history.len();
            history.extend(tuned.history.iter().map(|report| {
                let mut metrics = epoch_metrics(report);
                metrics.epoch += offset as u32;
                metrics
            }));
            best_epoch = offset + tuned.best_epoch;
            artifact = tuned.artifact;
            timings.insert(
                "fine_tuning_ms".to_string(),
                phase.elapsed().as_millis() as u64,
            );
        }

        observer.progress(
            FEATURES_SHARE + TRAINING_SHARE,
            "evaluating on the validation split",
        );
        let phase = Instant::now();
        let (evaluation_split, evaluated) = if validation.is_empty() {
            ("train", &train)
        } else {
            ("validation", &validation)
        };
        let classifier = self.plugin.load(&artifact)?;
        let labels: Vec<usize> = evaluated.iter().map(|e| e.label).collect();
        let probabilities = if artifact.tail.is_some() {
            // The fine-tuned backbone makes new features: run the images through the model.
            let split = if validation.is_empty() {
                Split::Train
            } else {
                Split::Validation
            };
            self.predict_images(classifier.as_ref(), &data, split)?
        } else {
            let rows: Vec<Vec<f32>> = evaluated.iter().map(|e| e.features.clone()).collect();
            classifier.classify_features(&rows)?
        };
        let evaluation = evaluate(&data.classes, &probabilities, &labels);
        timings.insert(
            "evaluation_ms".to_string(),
            phase.elapsed().as_millis() as u64,
        );

        let record = ModelVersionRecord {
            version: 0,
            created_at: Utc::now(),
            backbone: config.backbone.name().into(),
            classes: data.classes.clone(),
            hyperparameters: json!({
                "epochs": config.epochs,
                "batch_size": config.batch_size,
                "learning_rate": config.learning_rate,
                "l2": config.l2,
                "early_stopping_patience": config.early_stopping_patience,
                "lr_patience": config.lr_patience,
                "augment_views": config.augment_views,
                "seed": config.seed,
                "warm_start": initial_head.is_some(),
                "fine_tune": fine_tune,
                "fine_tune_blocks": fine_tune.then_some(config.fine_tune_blocks),
                "fine_tune_epochs": fine_tune.then_some(config.fine_tune_epochs),
                "fine_tune_learning_rate": fine_tune.then_some(config.fine_tune_learning_rate),
                "evaluation_split": evaluation_split,
                "activation_policy": config.activation_policy,
                "timings_ms": &timings,
            }),
            data_snapshot: data.snapshot(),
            epochs: history,
            best_epoch: best_epoch as u32,
            duration_ms: started.elapsed().as_millis() as u64,
            backend: self.plugin.name().into(),
            evaluation,
            origin: origin.into(),
            job_id,
        };
        let version = self.stores.models.create(NewModelVersion {
            record,
            artifact: artifact.to_bytes(),
        })?;
        observer.progress(100.0, &format!("version {} created", version.version));
        Ok(TrainedVersion {
            version,
            features_computed: computed,
            features_reused: reused,
            timings_ms: timings,
        })
    }

    /// One split's images decoded from the store, with `views` augmented views each (view 0 is
    /// the plain image), produced lazily for phase 2.
    fn labelled_images<'a>(
        &'a self,
        data: &'a DataSet,
        split: Split,
        views: u32,
    ) -> impl Iterator<Item = std::result::Result<LabelledImage, BackendError>> + 'a {
        data.images
            .iter()
            .filter(move |(image, _)| image.split == split)
            .flat_map(move |(image, label)| {
                let decoded = self
                    .decode_stored(image)
                    .map_err(|e| BackendError::Training(e.to_string()));
                let seed = u64::from_str_radix(&image.sha256[..16], 16).unwrap_or(0);
                (0..=views).map(move |view| match &decoded {
                    Ok(rgb) => Ok(LabelledImage {
                        image: augment(rgb, seed, view),
                        label: *label,
                    }),
                    Err(error) => Err(BackendError::Training(error.to_string())),
                })
            })
    }

    fn decode_stored(&self, image: &ImageRecord) -> Result<image::RgbImage> {
        let bytes = self
            .stores
            .images
            .content(image.id)?
            .ok_or_else(|| CoreError::not_found("image content", image.id))?;
        Ok(decode(&bytes, &self.decode_limits)?.rgb)
    }

    /// Class probabilities of `classifier` for one split's images, in data-set order.
    fn predict_images(
        &self,
        classifier: &dyn Classifier,
        data: &DataSet,
        split: Split,
    ) -> Result<Vec<Vec<f32>>> {
        let mut probabilities = Vec::new();
        let mut batch = Vec::new();
        for labelled in self.labelled_images(data, split, 0) {
            batch.push(labelled?.image);
            if batch.len() == PREDICT_BATCH {
                probabilities.extend(classifier.predict(&std::mem::take(&mut batch))?);
            }
        }
        if !batch.is_empty() {
            probabilities.extend(classifier.predict(&batch)?);
        }
        Ok(probabilities)
    }

    /// The active version's head when it has the same backbone and classes ("uses the previous
    /// model as the base").
    fn warm_start_head(
        &self,
        backbone: BackboneKind,
        classes: &[String],
    ) -> Result<Option<Vec<u8>>> {
        let Some(active) = self.stores.models.active()? else {
            return Ok(None);
        };
        let Some(bytes) = self.stores.models.artifact(active)? else {
            return Ok(None);
        };
        let artifact = ModelArtifact::from_bytes(&bytes)?;
        Ok((artifact.backbone == backbone && artifact.classes == classes).then_some(artifact.head))
    }

    /// Features of every (image, view) the run needs: from the cache, or computed and cached.
    #[allow(clippy::type_complexity)]
    fn features(
        &self,
        data: &DataSet,
        config: &TrainingConfig,
        observer: &mut dyn PipelineObserver,
    ) -> Result<(BTreeMap<(u64, u32), Vec<f32>>, usize, usize)> {
        let backbone = config.backbone.name();
        let mut features = BTreeMap::new();
        let mut missing: Vec<(&ImageRecord, Vec<u32>)> = Vec::new();
        for (image, _) in &data.images {
            let views = if image.split == Split::Train {
                config.augment_views
            } else {
                0
            };
            let mut absent = Vec::new();
            for view in 0..=views {
                let key = FeatureKey {
                    sha256: image.sha256.clone(),
                    backbone: backbone.into(),
                    view,
                };
                match self.stores.features.get(&key)? {
                    Some(vector) => {
                        features.insert((image.id, view), vector);
                    }
                    None => absent.push(view),
                }
            }
            if !absent.is_empty() {
                missing.push((image, absent));
            }
        }
        let reused = features.len();
        let total_missing: usize = missing.iter().map(|(_, views)| views.len()).sum();
        if total_missing == 0 {
            observer.progress(
                FEATURES_SHARE,
                &format!("all {reused} feature vectors found in the cache"),
            );
            return Ok((features, 0, reused));
        }

        let extractor = self.plugin.feature_extractor(config.backbone)?;
        let mut queue: Vec<(&ImageRecord, u32, PreparedImage)> = Vec::new();
        let mut computed = 0;
        for (image, views) in missing {
            let bytes = self
                .stores
                .images
                .content(image.id)?
                .ok_or_else(|| CoreError::not_found("image content", image.id))?;
            let decoded = decode(&bytes, &self.decode_limits)?;
            let seed = u64::from_str_radix(&image.sha256[..16], 16).unwrap_or(0);
            for view in views {
                queue.push((image, view, augment(&decoded.rgb, seed, view)));
            }
            while queue.len() >= config.feature_batch_size.max(1) {
                let batch: Vec<_> = queue.drain(..config.feature_batch_size.max(1)).collect();
                computed += self.extract(extractor.as_ref(), backbone, batch, &mut features)?;
                self.report_features(observer, computed, total_missing)?;
            }
        }
        if !queue.is_empty() {
            computed += self.extract(extractor.as_ref(), backbone, queue, &mut features)?;
            self.report_features(observer, computed, total_missing)?;
        }
        Ok((features, computed, reused))
    }

    fn report_features(
        &self,
        observer: &mut dyn PipelineObserver,
        done: usize,
        total: usize,
    ) -> Result<()> {
        if observer.cancelled() {
            return Err(CoreError::Backend(sprig_backends::BackendError::Cancelled));
        }
        observer.progress(
            FEATURES_SHARE * done as f64 / total as f64,
            &format!("computing backbone features {done}/{total}"),
        );
        Ok(())
    }

    fn extract(
        &self,
        extractor: &dyn FeatureExtractor,
        backbone: &str,
        batch: Vec<(&ImageRecord, u32, PreparedImage)>,
        features: &mut BTreeMap<(u64, u32), Vec<f32>>,
    ) -> Result<usize> {
        let images: Vec<PreparedImage> = batch.iter().map(|(_, _, image)| image.clone()).collect();
        let vectors = extractor.features(&images)?;
        let mut entries = Vec::with_capacity(batch.len());
        for ((image, view, _), vector) in batch.iter().zip(vectors) {
            entries.push((
                FeatureKey {
                    sha256: image.sha256.clone(),
                    backbone: backbone.into(),
                    view: *view,
                },
                vector.clone(),
            ));
            features.insert((image.id, *view), vector);
        }
        self.stores.features.put(entries)?;
        Ok(batch.len())
    }
}

fn epoch_metrics(report: &EpochReport) -> EpochMetrics {
    EpochMetrics {
        epoch: report.epoch as u32,
        train_loss: report.train_loss,
        train_accuracy: report.train_accuracy,
        val_loss: report.val_loss,
        val_accuracy: report.val_accuracy,
        learning_rate: report.learning_rate,
    }
}

/// Bridges training callbacks to the pipeline observer: progress within `start..start + share`,
/// epochs numbered after `epoch_offset` (phase 2 continues phase 1's count).
struct EpochForwarder<'a> {
    observer: &'a mut dyn PipelineObserver,
    start: f64,
    share: f64,
    max_epochs: u32,
    epoch_offset: u32,
    what: &'static str,
}

impl TrainingObserver for EpochForwarder<'_> {
    fn batch_done(&mut self, epoch: usize, batch: usize, batches: usize) -> bool {
        let done = (epoch - 1) as f64 + batch as f64 / batches as f64;
        let percent = self.start + self.share * done / f64::from(self.max_epochs.max(1));
        self.observer.progress(
            percent,
            &format!("{}: epoch {epoch}/{}", self.what, self.max_epochs),
        );
        !self.observer.cancelled()
    }

    fn epoch_done(&mut self, report: &EpochReport) {
        let mut metrics = epoch_metrics(report);
        metrics.epoch += self.epoch_offset;
        self.observer
            .epoch(&metrics, self.epoch_offset + self.max_epochs);
    }
}

/// The labelled images a run trains on, with class indices.
struct DataSet {
    classes: Vec<String>,
    images: Vec<(ImageRecord, usize)>,
}

impl DataSet {
    fn collect(records: Vec<ImageRecord>) -> Result<Self> {
        let mut train_counts: BTreeMap<String, u64> = BTreeMap::new();
        for record in &records {
            let count = train_counts.entry(record.class.clone()).or_default();
            if record.split == Split::Train {
                *count += 1;
            }
        }
        if let Some((class, _)) = train_counts.iter().find(|(_, n)| **n == 0) {
            return Err(CoreError::NotEnoughData(format!(
                "class '{class}' has no image in the train split; upload more images of it"
            )));
        }
        let classes: Vec<String> = train_counts.into_keys().collect();
        if classes.len() < 2 {
            return Err(CoreError::NotEnoughData(format!(
                "need images of at least 2 classes, have {}",
                classes.len()
            )));
        }
        let images = records
            .into_iter()
            .map(|r| {
                let label = classes
                    .iter()
                    .position(|c| *c == r.class)
                    .expect("class collected above");
                (r, label)
            })
            .collect();
        Ok(Self { classes, images })
    }

    fn snapshot(&self) -> DataSnapshot {
        let mut class_counts: BTreeMap<String, SplitCounts> = BTreeMap::new();
        let mut ids: Vec<u64> = Vec::with_capacity(self.images.len());
        for (image, _) in &self.images {
            let counts = class_counts
                .entry(image.class.clone())
                .or_insert(SplitCounts {
                    train: 0,
                    validation: 0,
                });
            match image.split {
                Split::Train => counts.train += 1,
                Split::Validation => counts.validation += 1,
            }
            ids.push(image.id);
        }
        ids.sort_unstable();
        let mut hasher = Sha256::new();
        for id in &ids {
            hasher.update(id.to_be_bytes());
        }
        DataSnapshot {
            class_counts,
            total_images: ids.len() as u64,
            image_set_hash: hex::encode(hasher.finalize()),
        }
    }
}

/// Whether a freshly trained version should replace the active one, and why. `if_better`
/// compares validation macro-F1 even when the class set changed: a new class with poor data
/// must not silently replace a good model (activate it by hand if wanted).
pub fn activation_decision(
    policy: ActivationPolicy,
    tolerance: f64,
    candidate: &ModelVersionRecord,
    active: Option<&ModelVersionRecord>,
) -> (bool, String) {
    match (policy, active) {
        (ActivationPolicy::Manual, _) => (false, "activation policy is manual".into()),
        (_, None) => (true, "no version was active".into()),
        (ActivationPolicy::Always, Some(_)) => (true, "activation policy is always".into()),
        (ActivationPolicy::IfBetter, Some(active)) => {
            let (new, old) = (candidate.evaluation.macro_f1, active.evaluation.macro_f1);
            if new + tolerance >= old {
                (true, format!("validation macro-F1 {new:.4} vs {old:.4} of version {} (tolerance {tolerance})", active.version))
            } else {
                (false, format!("validation macro-F1 {new:.4} is worse than {old:.4} of version {} by more than {tolerance}", active.version))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(number: u32, classes: &[&str], macro_f1: f64) -> ModelVersionRecord {
        let mut record = sprig_store::conformance::model_record(classes);
        record.version = number;
        record.evaluation.macro_f1 = macro_f1;
        record
    }

    #[test]
    fn activation_policies() {
        let active = version(1, &["a", "b"], 0.90);
        let better = version(2, &["a", "b"], 0.93);
        let slightly_worse = version(3, &["a", "b"], 0.89);
        let much_worse = version(4, &["a", "b"], 0.70);
        let new_class_poor = version(5, &["a", "b", "c"], 0.40);
        let decide =
            |policy, candidate: &ModelVersionRecord, active: Option<&ModelVersionRecord>| {
                activation_decision(policy, 0.02, candidate, active).0
            };
        use ActivationPolicy::*;
        assert!(decide(IfBetter, &better, Some(&active)));
        assert!(
            decide(IfBetter, &slightly_worse, Some(&active)),
            "within tolerance"
        );
        assert!(!decide(IfBetter, &much_worse, Some(&active)));
        assert!(
            !decide(IfBetter, &new_class_poor, Some(&active)),
            "a new class does not bypass the check"
        );
        assert!(
            decide(IfBetter, &much_worse, None),
            "anything beats no model"
        );
        assert!(decide(Always, &much_worse, Some(&active)));
        assert!(!decide(Manual, &better, Some(&active)));
        assert!(!decide(Manual, &better, None));
    }
}
