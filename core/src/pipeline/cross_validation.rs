//! k-fold cross-validation of the head on frozen backbone features (`sprig train --cv K`): how
//! much a validation figure moves with the choice of images, so that a half-point change can be
//! told from noise on a 171-photo split.
//!
//! Folds are assigned by content hash (bits apart from those of the train/validation split), so
//! they are stable across runs and machines. In fold *i* the images of the other folds train a
//! fresh head (`out_of_fold.rs`) and fit its temperature as a retrain does — on out-of-fold
//! answers of those images (`training.calibration_folds`, nested) — and fold *i*'s images, of
//! both splits, are only scored: nothing about them chooses anything. When the configuration
//! fine-tunes (`training.fine_tune`), each fold's head then goes through phase 2 as a retrain's
//! does — the other folds' training images with their augmented views, stopped on their
//! validation images — and the tuned model scores the fold's images; its temperature is fitted
//! on the stopping images' answers, as a fine-tuned version's is.

use std::time::Instant;

use super::config::TrainingConfig;
use super::data_set::DataSet;
use super::features::served_row;
use super::folds::{CrossValidation, FoldScore, HeldOutAnswer, Spread, FOLDS};
use super::out_of_fold::{Entry, Fold, FoldObserver, Progress};
use super::{Pipeline, PipelineObserver, FEATURES_SHARE};
use crate::calibration::{calibrate, measure, reliability, scale};
use crate::error::{CoreError, Result};
use crate::evaluation::evaluate;
use sprig_store::Split;

impl Pipeline {
    /// Cross-validates the head over `folds` folds of the stored images (blocking). Stores no
    /// version; features are cached as a retrain caches them.
    pub fn cross_validate(
        &self,
        config: &TrainingConfig,
        folds: usize,
        observer: &mut dyn PipelineObserver,
    ) -> Result<CrossValidation> {
        if !FOLDS.contains(&folds) {
            return Err(CoreError::InvalidRequest(format!(
                "cross-validation needs {} to {} folds, not {folds}",
                FOLDS.start(),
                FOLDS.end()
            )));
        }
        let started = Instant::now();
        observer.progress(0.0, "collecting the data set");
        let data = DataSet::collect(self.stores.images.all()?)?;
        // Every image trains in some fold, so every image needs its augmented views.
        let (features, _, _) = self.features(&data, config, &|_| true, observer)?;
        let entries: Vec<&Entry> = data.images.iter().collect();
        let mut scores = Vec::with_capacity(folds);
        let mut correct = 0u64;
        let (mut pooled_raw, mut pooled_scaled, mut pooled_labels) = (vec![], vec![], vec![]);
        let mut every_fold_calibrated = true;
        let mut answers = Vec::with_capacity(data.images.len());
        let fine_tune = config.fine_tunes(self.plugin.is_accelerator());
        let mut progress = Progress {
            observer,
            start: FEATURES_SHARE,
            share: 100.0 - FEATURES_SHARE,
            what: "training the fold's head",
        };
        self.for_each_fold(
            config,
            &data.classes,
            &entries,
            &features,
            None,
            folds,
            0,
            &mut progress,
            &mut |index, mut fold, progress| {
                if fine_tune {
                    progress.observer.progress(
                        progress.start + progress.share * (index as f64 + 0.5) / folds as f64,
                        &format!(
                            "fine-tuning the fold's last backbone blocks: fold {}/{folds}",
                            index + 1
                        ),
                    );
                    self.fine_tune_fold(config, &mut fold, &mut *progress.observer)?;
                }
                let labels: Vec<usize> = fold.held_out.iter().map(|(_, label)| *label).collect();
                let mut evaluation = evaluate(&data.classes, &fold.probabilities, &labels);
                // The temperature is fitted as a retrain fits it, on images of the other folds
                // only; its effect is measured on the held-out ones.
                let share = progress.share / folds as f64;
                let mut inner = Progress {
                    observer: &mut *progress.observer,
                    start: progress.start + share * index as f64,
                    share,
                    what: "calibrating the fold's head",
                };
                // Out-of-fold heads have no tuned backbone: a tuned fold fits on its stopping
                // images, as a fine-tuned version does.
                let out_of_fold = match fine_tune {
                    true => None,
                    false => self.out_of_fold_temperature(
                        config,
                        fold.best_epoch,
                        &data.classes,
                        &fold.others,
                        &features,
                        None,
                        1,
                        &mut inner,
                    )?,
                };
                let temperature = match out_of_fold {
                    Some((temperature, _)) => Some(temperature),
                    None => {
                        let answers = if fine_tune {
                            let classifier = fold.classifier.as_ref();
                            self.map_entries(fold.stopped_on.iter().copied(), &|batch| {
                                classifier.predict(batch)
                            })?
                        } else {
                            let rows: Vec<Vec<f32>> = fold
                                .stopped_on
                                .iter()
                                .map(|(image, _)| {
                                    served_row(&features, image.id, config.test_time())
                                })
                                .collect();
                            fold.classifier.classify_features(&rows)?
                        };
                        let stop_labels: Vec<usize> =
                            fold.stopped_on.iter().map(|(_, label)| *label).collect();
                        calibrate(&answers, &stop_labels).map(|fit| fit.temperature)
                    }
                };
                evaluation.calibration =
                    temperature.map(|t| measure(&fold.probabilities, &labels, t));
                every_fold_calibrated &= temperature.is_some();
                pooled_scaled.extend(
                    fold.probabilities
                        .iter()
                        .map(|p| scale(p, temperature.unwrap_or(1.0))),
                );
                correct += (0..data.classes.len())
                    .map(|c| evaluation.confusion_matrix[c][c])
                    .sum::<u64>();
                scores.push(FoldScore {
                    fold: index + 1,
                    trained_on: fold.trained_on,
                    stopped_on: fold.stopped_on.len(),
                    evaluation,
                });
                answers.extend(fold.held_out.iter().zip(&fold.probabilities).map(
                    |((image, label), probabilities)| HeldOutAnswer {
                        fold: index + 1,
                        sha256: image.sha256.clone(),
                        label: *label,
                        probabilities: probabilities.clone(),
                    },
                ));
                pooled_raw.extend(fold.probabilities);
                pooled_labels.extend(labels);
                Ok(())
            },
        )?;
        let observer = progress.observer;
        observer.progress(100.0, "cross-validation done");
        Ok(CrossValidation {
            accuracy: Spread::of(scores.iter().map(|s| s.evaluation.accuracy)),
            macro_f1: Spread::of(scores.iter().map(|s| s.evaluation.macro_f1)),
            ece_before: Spread::of_some(
                scores
                    .iter()
                    .filter_map(|s| s.evaluation.calibration.as_ref().map(|c| c.ece_before)),
            ),
            ece_after: Spread::of_some(
                scores
                    .iter()
                    .filter_map(|s| s.evaluation.calibration.as_ref().map(|c| c.ece_after)),
            ),
            pooled_accuracy: correct as f64 / data.images.len() as f64,
            pooled_ece_before: reliability(&pooled_raw, &pooled_labels).0,
            pooled_ece_after: every_fold_calibrated
                .then(|| reliability(&pooled_scaled, &pooled_labels).0),
            calibration_folds: config.calibration_folds,
            fine_tuned_blocks: fine_tune.then_some(config.fine_tune_blocks),
            folds: scores,
            images: data.images.len(),
            classes: data.classes.clone(),
            backbone: config.backbone.name().into(),
            pooling: config.pooling.name().into(),
            backend: self.plugin.name().into(),
            augment_views: config.augment_views,
            epochs: config.epochs,
            duration_ms: started.elapsed().as_millis() as u64,
            answers,
        })
    }

    /// Phase 2 on one fold: its head and the backbone's last blocks tuned on the other folds'
    /// training images (with their augmented views), stopped on their validation images; the
    /// tuned model replaces the fold's and answers for the fold's images.
    fn fine_tune_fold(
        &self,
        config: &TrainingConfig,
        fold: &mut Fold<'_>,
        observer: &mut dyn PipelineObserver,
    ) -> Result<()> {
        let train = fold
            .others
            .iter()
            .copied()
            .filter(|(image, _)| image.split == Split::Train);
        let tuned = self.plugin.fine_tune(
            &fold.artifact,
            &mut self.labelled_entries(train, config.augment_views),
            &mut self.labelled_entries(fold.stopped_on.iter().copied(), 0),
            &config.fine_tune_config(),
            &mut FoldObserver(observer),
        )?;
        fold.classifier = self.plugin.load(&tuned.artifact)?;
        let classifier = fold.classifier.as_ref();
        fold.probabilities = self.map_entries(fold.held_out.iter().copied(), &|batch| {
            classifier.predict(batch)
        })?;
        Ok(())
    }
}
