//! k-fold cross-validation of the head on frozen backbone features (`sprig train --cv K`): how
//! much a validation figure moves with the choice of images, so that a half-point change can be
//! told from noise on a 171-photo split.
//!
//! Folds are assigned by content hash (bits apart from those of the train/validation split), so
//! they are stable across runs and machines. In fold *i* the images of the other folds train a
//! fresh head — those in the train split as training examples with their augmented views, those
//! in the validation split for early stopping, as a retrain uses them — and fold *i*'s images, of
//! both splits, are only scored: nothing about them chooses anything. Phase 2 (fine-tuning the
//! backbone) is not part of it.

use std::time::Instant;

use sprig_backends::Example;
use sprig_store::{ImageRecord, Split};

use super::config::TrainingConfig;
use super::data_set::DataSet;
use super::folds::{fold_of, CrossValidation, FoldScore, Spread, FOLDS};
use super::{Pipeline, PipelineObserver, FEATURES_SHARE};
use crate::calibration::{calibrate, measure};
use crate::error::{CoreError, Result};
use crate::evaluation::evaluate;

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
        let example = |(image, label): &(ImageRecord, usize), view: u32| Example {
            features: features[&(image.id, view)].clone(),
            label: *label,
        };
        let share = (100.0 - FEATURES_SHARE) / folds as f64;
        let mut scores = Vec::with_capacity(folds);
        let mut correct = 0u64;
        for fold in 0..folds {
            let (held_out, others): (Vec<_>, Vec<_>) = data
                .images
                .iter()
                .partition(|(image, _)| fold_of(image, folds) == fold);
            if held_out.is_empty() {
                return Err(CoreError::NotEnoughData(format!(
                    "fold {} of {folds} has no image; use fewer folds",
                    fold + 1
                )));
            }
            let train: Vec<Example> = others
                .iter()
                .filter(|(image, _)| image.split == Split::Train)
                .flat_map(|entry| (0..=config.augment_views).map(|view| example(entry, view)))
                .collect();
            let stop: Vec<Example> = others
                .iter()
                .filter(|(image, _)| image.split == Split::Validation)
                .map(|entry| example(entry, 0))
                .collect();
            observer.progress(
                FEATURES_SHARE + share * fold as f64,
                &format!("fold {}/{folds}: training the head", fold + 1),
            );
            let trained = self.plugin.train(
                config.backbone,
                &data.classes,
                &train,
                &stop,
                &config.head_config(),
                None,
                &mut FoldObserver(&mut *observer),
            )?;
            let classifier = self.plugin.load(&trained.artifact)?;
            let rows: Vec<Vec<f32>> = held_out
                .iter()
                .map(|(image, _)| features[&(image.id, 0)].clone())
                .collect();
            let labels: Vec<usize> = held_out.iter().map(|(_, label)| *label).collect();
            let probabilities = classifier.classify_features(&rows)?;
            let mut evaluation = evaluate(&data.classes, &probabilities, &labels);
            // The temperature comes from the early-stopping images; its effect is measured on
            // the held-out ones.
            let stop_rows: Vec<Vec<f32>> = stop.iter().map(|e| e.features.clone()).collect();
            let stop_labels: Vec<usize> = stop.iter().map(|e| e.label).collect();
            let fitted = calibrate(&classifier.classify_features(&stop_rows)?, &stop_labels);
            evaluation.calibration =
                fitted.map(|fit| measure(&probabilities, &labels, fit.temperature));
            correct += (0..data.classes.len())
                .map(|c| evaluation.confusion_matrix[c][c])
                .sum::<u64>();
            scores.push(FoldScore {
                fold: fold + 1,
                trained_on: train.len() / (config.augment_views as usize + 1),
                stopped_on: stop.len(),
                evaluation,
            });
        }
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
            folds: scores,
            images: data.images.len(),
            backbone: config.backbone.name().into(),
            backend: self.plugin.name().into(),
            augment_views: config.augment_views,
            epochs: config.epochs,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }
}

/// Passes cancellation through; a fold's epochs are not reported one by one.
struct FoldObserver<'a>(&'a mut dyn PipelineObserver);

impl sprig_backends::TrainingObserver for FoldObserver<'_> {
    fn batch_done(&mut self, _epoch: usize, _batch: usize, _batches: usize) -> bool {
        !self.0.cancelled()
    }

    fn epoch_done(&mut self, _report: &sprig_backends::EpochReport) {}
}
