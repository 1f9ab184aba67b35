//! Answers of heads that never saw the image they score: the cross-validation's held-out scores,
//! and the out-of-fold answers a version's temperature is fitted on.
//!
//! Images fall into folds by content hash; `level` picks other hash bits, so the folds of a
//! fold's other images (nested cross-validation) are spread as evenly. Fold *i*'s images are
//! scored by a head trained on the other folds — their train-split images with augmented views
//! as training examples, their validation-split images for early stopping, as a retrain uses
//! them. Phase 2 (fine-tuning the backbone), where the cross-validation asks for it, starts from
//! the fold's artifact (`cross_validation.rs`).

use std::collections::BTreeMap;

use sprig_backends::{Classifier, EpochReport, Example, ModelArtifact, TrainingObserver};
use sprig_store::{ImageRecord, Split};

use super::config::TrainingConfig;
use super::features::served_row;
use super::folds::fold_of;
use super::{Pipeline, PipelineObserver};
use crate::calibration::{fit_temperature, MIN_EXAMPLES};
use crate::error::{CoreError, Result};

/// A labelled image of the data set (its class index).
pub(super) type Entry = (ImageRecord, usize);
/// Cached backbone features by image id and view (view 0 is the plain image).
pub(super) type Features = BTreeMap<(u64, u32), Vec<f32>>;

/// One fold: its images, the head trained without them and that head's answers on them.
pub(super) struct Fold<'a> {
    pub held_out: Vec<&'a Entry>,
    /// The other folds' images.
    pub others: Vec<&'a Entry>,
    /// Plain images the head trained on (augmented views come on top).
    pub trained_on: usize,
    /// The images of the other folds that chose the head's best epoch.
    pub stopped_on: Vec<&'a Entry>,
    pub artifact: ModelArtifact,
    pub classifier: Box<dyn Classifier>,
    /// Class probabilities of `held_out`, in its order.
    pub probabilities: Vec<Vec<f32>>,
    /// The epoch whose weights the head kept (1-based).
    pub best_epoch: usize,
}

/// Where progress goes while the folds' heads train: `start..start + share` percent.
pub(super) struct Progress<'o> {
    pub observer: &'o mut dyn PipelineObserver,
    pub start: f64,
    pub share: f64,
    pub what: &'static str,
}

impl Pipeline {
    /// Trains one head per fold of `entries` and scores each fold with the head that did not
    /// see it, calling `each` as every fold is done (folds are not all kept: their heads are
    /// dropped as soon as `each` returns). An empty fold is an error (`NotEnoughData`). Each
    /// head starts from `initial_head` when given, as the version's own head did.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn for_each_fold<'a>(
        &self,
        config: &TrainingConfig,
        classes: &[String],
        entries: &[&'a Entry],
        features: &Features,
        initial_head: Option<&[u8]>,
        folds: usize,
        level: usize,
        progress: &mut Progress<'_>,
        each: &mut dyn FnMut(usize, Fold<'a>, &mut Progress<'_>) -> Result<()>,
    ) -> Result<()> {
        let example = |(image, label): &Entry, view: u32| Example {
            features: features[&(image.id, view)].clone(),
            label: *label,
        };
        for fold in 0..folds {
            let (held_out, others): (Vec<&Entry>, Vec<&Entry>) = entries
                .iter()
                .partition(|(image, _)| fold_of(&image.sha256, folds, level) == fold);
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
            let stopped_on: Vec<&Entry> = others
                .iter()
                .copied()
                .filter(|(image, _)| image.split == Split::Validation)
                .collect();
            let stop: Vec<Example> = stopped_on.iter().map(|e| example(e, 0)).collect();
            progress.observer.progress(
                progress.start + progress.share * fold as f64 / folds as f64,
                &format!("{}: fold {}/{folds}", progress.what, fold + 1),
            );
            // One after the other: heads seed the device's generator, which concurrent
            // trainings would share (and their weights would then depend on timing).
            let trained = self.plugin.train(
                config.features(),
                classes,
                &train,
                &stop,
                &config.head_config(),
                initial_head,
                &mut FoldObserver(&mut *progress.observer),
            )?;
            let mut artifact = trained.artifact;
            artifact.test_time = config.test_time();
            let classifier = self.plugin.load(&artifact)?;
            let rows: Vec<Vec<f32>> = held_out
                .iter()
                .map(|(image, _)| served_row(features, image.id, config.test_time()))
                .collect();
            let probabilities = classifier.classify_features(&rows)?;
            let trained_on = train.len() / (config.augment_views as usize + 1);
            each(
                fold,
                Fold {
                    held_out,
                    others,
                    trained_on,
                    stopped_on,
                    artifact,
                    classifier,
                    probabilities,
                    best_epoch: trained.best_epoch,
                },
                progress,
            )?;
        }
        Ok(())
    }

    /// The temperature fitted on the out-of-fold answers of `entries` over
    /// `config.calibration_folds` folds, with how many answers it was fitted on; `None` when
    /// calibration folds are off, or the images are too few for every fold to hold some and for
    /// [`MIN_EXAMPLES`] answers. The heads are trained as the version's head was — from
    /// `initial_head` when it started from the active version's, for the `epochs` its kept
    /// weights had — so that their confidence is its confidence (a few-epoch retrain from a
    /// trained head is surer than a few epochs from scratch), and no epoch is spent past them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn out_of_fold_temperature(
        &self,
        config: &TrainingConfig,
        epochs: usize,
        classes: &[String],
        entries: &[&Entry],
        features: &Features,
        initial_head: Option<&[u8]>,
        level: usize,
        progress: &mut Progress<'_>,
    ) -> Result<Option<(f64, usize)>> {
        let folds = config.calibration_folds;
        let every_fold_holds_some = (0..folds).all(|fold| {
            entries
                .iter()
                .any(|(image, _)| fold_of(&image.sha256, folds, level) == fold)
        });
        if folds < 2 || entries.len() < MIN_EXAMPLES || !every_fold_holds_some {
            return Ok(None);
        }
        let (mut answers, mut labels) = (Vec::new(), Vec::new());
        let config = TrainingConfig {
            epochs: epochs.max(1),
            ..config.clone()
        };
        self.for_each_fold(
            &config,
            classes,
            entries,
            features,
            initial_head,
            folds,
            level,
            progress,
            &mut |_, fold, _| {
                labels.extend(fold.held_out.iter().map(|(_, label)| *label));
                answers.extend(fold.probabilities);
                Ok(())
            },
        )?;
        Ok(Some((fit_temperature(&answers, &labels), answers.len())))
    }
}

/// Passes cancellation through; a fold's epochs are not reported one by one.
pub(super) struct FoldObserver<'a>(pub &'a mut dyn PipelineObserver);

impl TrainingObserver for FoldObserver<'_> {
    fn batch_done(&mut self, _epoch: usize, _batch: usize, _batches: usize) -> bool {
        !self.0.cancelled()
    }

    fn epoch_done(&mut self, _report: &EpochReport) {}
}
