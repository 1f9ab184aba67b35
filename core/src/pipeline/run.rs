//! One pipeline run: data set, features, head training (then fine-tuning when enabled),
//! evaluation, and the stored version.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::Utc;
use serde_json::json;
use sprig_backends::views::{augment, content_seed};
use sprig_backends::{
    decode, embedding, training::argmax, BackendError, Classifier, EpochReport, Example,
    FeatureSpec, LabelledImage, ModelArtifact, PreparedImage, TrainingObserver,
};
use sprig_store::{
    DistributionReference, EpochMetrics, ImageRecord, ModelVersionRecord, NewModelVersion, Split,
};

use super::config::TrainingConfig;
use super::data_set::DataSet;
use super::features::served_row;
use super::out_of_fold::{Entry, Features, Progress};
use super::{
    Pipeline, PipelineObserver, SamePhotosScore, TrainedVersion, FEATURES_SHARE, PREDICT_BATCH,
    TRAINING_SHARE,
};
use crate::calibration::{calibrate, measure, scale};
use crate::error::{CoreError, Result};
use crate::evaluation::evaluate;
use crate::novelty;

/// Fewer validation answers than this say too little about served confidences and class mix
/// for drift to compare with.
const MIN_ANSWER_SAMPLES: usize = 30;

/// A forward pass over a batch of images, one row per image.
type BatchRun<'a> =
    &'a dyn Fn(&[PreparedImage]) -> std::result::Result<Vec<Vec<f32>>, BackendError>;

impl Pipeline {
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
        let in_train = |image: &ImageRecord| image.split == Split::Train;
        let (features, computed, reused) = self.features(&data, config, &in_train, observer)?;
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
        let fine_tune = config.fine_tunes(self.plugin.is_accelerator());
        // Phase 1 gets the whole training share, or half of it when phase 2 follows.
        let head_share = if fine_tune {
            TRAINING_SHARE / 2.0
        } else {
            TRAINING_SHARE
        };
        let initial_head = self.warm_start_head(config.features(), &data.classes)?;
        let mut training_observer = EpochForwarder {
            observer: &mut *observer,
            start: FEATURES_SHARE,
            share: head_share,
            max_epochs: config.epochs as u32,
            epoch_offset: 0,
            what: "training the head",
        };
        let trained = self.plugin.train(
            config.features(),
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
        artifact.test_time = config.test_time();
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
        let (evaluation_split, split) = if validation.is_empty() {
            ("train", Split::Train)
        } else {
            ("validation", Split::Validation)
        };
        let classifier = self.plugin.load(&artifact)?;
        // The split's plain images, once each (a training split's augmented views are not
        // photos to score).
        let evaluated = data.images.iter().filter(|(image, _)| image.split == split);
        let labels: Vec<usize> = evaluated.clone().map(|(_, label)| *label).collect();
        let probabilities = if artifact.tail.is_some() {
            // The fine-tuned backbone makes new features: run the images through the model.
            self.predict_images(classifier.as_ref(), &data, split)?
        } else {
            let rows: Vec<Vec<f32>> = evaluated
                .map(|(image, _)| served_row(&features, image.id, config.test_time()))
                .collect();
            classifier.classify_features(&rows)?
        };
        let mut evaluation = evaluate(&data.classes, &probabilities, &labels);
        let compared_with = if evaluation_split == "validation" {
            self.score_active(config, &data, &features)?
        } else {
            None
        };
        timings.insert(
            "evaluation_ms".to_string(),
            phase.elapsed().as_millis() as u64,
        );
        // Served confidences are scaled by a temperature fitted on answers to images the model
        // did not train on: out-of-fold answers of heads trained like this one (not for a
        // fine-tuned backbone, which they do not have), else the validation split; never the
        // training images, where the model is sure of itself by construction.
        if evaluation_split == "validation" {
            let phase = Instant::now();
            let out_of_fold = match artifact.tail {
                None => self.calibrate_out_of_fold(
                    config,
                    best_epoch,
                    &data,
                    &features,
                    initial_head.as_deref(),
                    observer,
                )?,
                Some(_) => None,
            };
            evaluation.calibration = match out_of_fold {
                Some((temperature, answers)) => {
                    let mut calibration = measure(&probabilities, &labels, temperature);
                    calibration.fitted_on = sprig_store::CalibrationFit::OutOfFold;
                    calibration.fitted_answers = answers;
                    Some(calibration)
                }
                None => calibrate(&probabilities, &labels),
            };
            timings.insert(
                "calibration_ms".to_string(),
                phase.elapsed().as_millis() as u64,
            );
        }
        let phase = Instant::now();
        let reference = self.reference(
            classifier.as_ref(),
            artifact.tail.is_some(),
            &data,
            &features,
            (evaluation_split == "validation").then_some(&probabilities),
            evaluation
                .calibration
                .as_ref()
                .map_or(1.0, |c| c.temperature),
        )?;
        timings.insert(
            "reference_ms".to_string(),
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
                "label_smoothing": config.label_smoothing,
                "weight_decay": config.weight_decay,
                "augment_views": config.augment_views,
                "test_time_flip": config.test_time_flip,
                "test_time_views": config.test_time_views,
                "pooling": config.pooling,
                "seed": config.seed,
                "calibration_folds": config.calibration_folds,
                "warm_start": initial_head.is_some(),
                "fine_tune": fine_tune,
                "fine_tune_blocks": fine_tune.then_some(config.fine_tune_blocks),
                "fine_tune_epochs": fine_tune.then_some(config.fine_tune_epochs),
                "fine_tune_learning_rate": fine_tune.then_some(config.fine_tune_learning_rate),
                "fine_tune_schedule": fine_tune.then_some(config.fine_tune_schedule),
                "fine_tune_warmup_epochs": fine_tune.then_some(config.fine_tune_warmup_epochs),
                "evaluation_split": evaluation_split,
                "activation_policy": config.activation_policy,
                "compared_with": compared_with,
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
            reference,
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
        self.labelled_entries(
            data.images
                .iter()
                .filter(move |(image, _)| image.split == split),
            views,
        )
    }

    /// `entries` decoded from the store, with `views` augmented views each, produced lazily.
    pub(super) fn labelled_entries<'a>(
        &'a self,
        entries: impl Iterator<Item = &'a Entry> + 'a,
        views: u32,
    ) -> impl Iterator<Item = std::result::Result<LabelledImage, BackendError>> + 'a {
        entries.flat_map(move |(image, label)| {
            let decoded = self
                .decode_stored(image)
                .map_err(|e| BackendError::Training(e.to_string()));
            let seed = content_seed(&image.sha256);
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
        self.map_images(data, split, &|batch| classifier.predict(batch))
    }

    /// `run` over one split's plain images in batches, the rows in data-set order.
    fn map_images(&self, data: &DataSet, split: Split, run: BatchRun<'_>) -> Result<Vec<Vec<f32>>> {
        self.map_entries(
            data.images.iter().filter(|(image, _)| image.split == split),
            run,
        )
    }

    /// `run` over `entries`' plain images in batches, the rows in their order.
    pub(super) fn map_entries<'a>(
        &'a self,
        entries: impl Iterator<Item = &'a Entry> + 'a,
        run: BatchRun<'_>,
    ) -> Result<Vec<Vec<f32>>> {
        let mut rows = Vec::new();
        let mut batch = Vec::new();
        for labelled in self.labelled_entries(entries, 0) {
            batch.push(labelled?.image);
            if batch.len() == PREDICT_BATCH {
                rows.extend(run(&std::mem::take(&mut batch))?);
            }
        }
        if !batch.is_empty() {
            rows.extend(run(&batch)?);
        }
        Ok(rows)
    }

    /// The new version's reference distribution: novelty statistics of the embeddings it serves
    /// with (the fine-tuned backbone's, when it has one), and its served answers on the
    /// validation images (`validation`: their raw probabilities) for drift to compare with.
    fn reference(
        &self,
        classifier: &dyn Classifier,
        tuned: bool,
        data: &DataSet,
        features: &BTreeMap<(u64, u32), Vec<f32>>,
        validation: Option<&Vec<Vec<f32>>>,
        temperature: f64,
    ) -> Result<Option<DistributionReference>> {
        let mut embeddings = Vec::new();
        let mut labels = Vec::new();
        for split in [Split::Train, Split::Validation] {
            let in_split = data.images.iter().filter(|(image, _)| image.split == split);
            labels.extend(in_split.clone().map(|(_, label)| *label));
            if tuned {
                let served = self.map_images(data, split, &|batch| classifier.features(batch))?;
                embeddings.extend(served.iter().map(|f| embedding(f).to_vec()));
            } else {
                embeddings.extend(
                    in_split.map(|(image, _)| embedding(&features[&(image.id, 0)]).to_vec()),
                );
            }
        }
        let Some(mut reference) = novelty::reference(&embeddings, &labels, data.classes.len())
        else {
            return Ok(None);
        };
        if let Some(probabilities) = validation.filter(|p| p.len() >= MIN_ANSWER_SAMPLES) {
            for row in probabilities {
                let served = scale(row, temperature);
                let index = argmax(&served);
                reference.confidence_samples.push(served[index]);
                reference.predicted_samples.push(index as u32);
            }
        }
        Ok(Some(reference))
    }

    /// The temperature fitted on out-of-fold answers over every image of the run
    /// (`training.calibration_folds` extra heads on the cached features, each trained for the
    /// `epochs` the version's head kept), with how many answers.
    fn calibrate_out_of_fold(
        &self,
        config: &TrainingConfig,
        epochs: usize,
        data: &DataSet,
        features: &Features,
        initial_head: Option<&[u8]>,
        observer: &mut dyn PipelineObserver,
    ) -> Result<Option<(f64, usize)>> {
        let entries: Vec<&Entry> = data.images.iter().collect();
        self.out_of_fold_temperature(
            config,
            epochs,
            &data.classes,
            &entries,
            features,
            initial_head,
            0,
            &mut Progress {
                observer,
                start: FEATURES_SHARE + TRAINING_SHARE,
                share: 0.0,
                what: "calibrating on out-of-fold answers",
            },
        )
    }

    /// The active version's score on this run's validation photos, for `if_better` to compare
    /// like with like; `None` when no version is active or it has other classes. Its head runs
    /// on the cached features when it reads this run's features (and this run cached its
    /// test-time views) and has no fine-tuned tail, else the whole model runs on the images.
    fn score_active(
        &self,
        config: &TrainingConfig,
        data: &DataSet,
        cached: &Features,
    ) -> Result<Option<SamePhotosScore>> {
        let Some((version, artifact)) = self.active_artifact()? else {
            return Ok(None);
        };
        if artifact.classes != data.classes {
            return Ok(None);
        }
        let classifier = self.plugin.load(&artifact)?;
        let validation = data
            .images
            .iter()
            .filter(|(image, _)| image.split == Split::Validation);
        let views_cached = config.test_time().covers(artifact.test_time);
        let probabilities =
            if artifact.spec() == config.features() && artifact.tail.is_none() && views_cached {
                let rows: Vec<Vec<f32>> = validation
                    .clone()
                    .map(|(image, _)| served_row(cached, image.id, artifact.test_time))
                    .collect();
                classifier.classify_features(&rows)?
            } else {
                self.predict_images(classifier.as_ref(), data, Split::Validation)?
            };
        let labels: Vec<usize> = validation.map(|(_, label)| *label).collect();
        let scored = evaluate(&data.classes, &probabilities, &labels);
        Ok(Some(SamePhotosScore {
            version,
            macro_f1: scored.macro_f1,
            accuracy: scored.accuracy,
            images: labels.len(),
        }))
    }

    fn active_artifact(&self) -> Result<Option<(u32, ModelArtifact)>> {
        let Some(active) = self.stores.models.active()? else {
            return Ok(None);
        };
        let Some(bytes) = self.stores.models.artifact(active)? else {
            return Ok(None);
        };
        Ok(Some((active, ModelArtifact::from_bytes(&bytes)?)))
    }

    /// The active version's head when it reads the same features and has the same classes ("uses
    /// the previous model as the base").
    fn warm_start_head(
        &self,
        features: FeatureSpec,
        classes: &[String],
    ) -> Result<Option<Vec<u8>>> {
        let Some((_, artifact)) = self.active_artifact()? else {
            return Ok(None);
        };
        Ok((artifact.spec() == features && artifact.classes == classes).then_some(artifact.head))
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
