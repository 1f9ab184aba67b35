//! Phase 2 of the original recipe: fine-tune the last backbone blocks together with the head.
//!
//! The frozen prefix runs once per image (no gradients) and its activations are kept for the
//! run; only the tail (last blocks + head convolution, batch norms folded) and the head train,
//! with the same loop as phase 1. Costly on a CPU (hence off by default there), cheap on a GPU.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::artifact::{ModelArtifact, TailWeights, TrainedArtifact};
use crate::error::{guarded, BackendError};
use crate::head::ClassifierHead;
use crate::network::{load_backbone, pixels_tensor, Backbone, BackboneTail, Pooling};
use crate::preprocess::PreparedImage;
use crate::training::{fit, Example, HeadTrainingConfig, Trainable, TrainingObserver};

/// What phase 2 trains and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneConfig {
    /// How many of the last inverted-residual blocks train (the head convolution always does).
    pub blocks: usize,
    pub training: HeadTrainingConfig,
}

/// A prepared image with its class index.
pub struct LabelledImage {
    pub image: PreparedImage,
    pub label: usize,
}

/// Labelled images, produced on demand (decoding a whole data set up front would not fit).
pub type LabelledImages<'a> = &'a mut dyn Iterator<Item = Result<LabelledImage, BackendError>>;

/// Images pushed through the frozen prefix at once.
const PREFIX_BATCH: usize = 16;

#[derive(Module, Debug)]
struct TailModel {
    tail: BackboneTail,
    head: ClassifierHead,
    /// Shape `[channels, side, side]` of the prefix activations the tail takes.
    channels: usize,
    side: usize,
}

impl Trainable for TailModel {
    fn logits(&self, batch: &[&Example], device: &Device) -> Tensor<2> {
        let values: Vec<f32> = batch
            .iter()
            .flat_map(|e| e.features.iter().copied())
            .collect();
        let shape = [batch.len(), self.channels, self.side, self.side];
        self.head.forward(
            self.tail
                .forward(Tensor::from_data(TensorData::new(values, shape), device)),
        )
    }

    fn l2_penalty(&self) -> Tensor<1> {
        self.head.l2_penalty()
    }
}

/// Fine-tunes the phase-1 artifact `base` on `device`; returns an artifact with a tail.
pub fn fine_tune(
    device: &Device,
    base: &ModelArtifact,
    train: LabelledImages<'_>,
    validation: LabelledImages<'_>,
    config: &FineTuneConfig,
    observer: &mut dyn TrainingObserver,
) -> Result<TrainedArtifact, BackendError> {
    if base.pooling != Pooling::Final {
        // The head would also read the frozen prefix's pooled layers; the tail model trains
        // on the final map alone.
        return Err(BackendError::Training(format!(
            "fine-tuning needs {} pooling; this version pools {}",
            Pooling::Final.name(),
            base.pooling.name()
        )));
    }
    let frozen = load_backbone(base.backbone, base.tail_ref(), device)?.fold_batch_norms();
    let blocks = config.blocks.clamp(1, frozen.block_count());
    let split = frozen.block_count() - blocks;
    let (train, shape) = prefix_activations(&frozen, split, train, device)?;
    let (validation, _) = prefix_activations(&frozen, split, validation, device)?;
    let [channels, side, _] =
        shape.ok_or_else(|| BackendError::Training("no training images".into()))?;

    let train_device = device.clone().autodiff();
    let start = load_backbone(base.backbone, base.tail_ref(), &train_device)?;
    let model = TailModel {
        tail: start.tail(blocks).fold_batch_norms(),
        head: base.load_head(&train_device)?,
        channels,
        side,
    };
    let fitted = fit(
        model,
        device,
        &train,
        &validation,
        &config.training,
        observer,
    )?;
    Ok(TrainedArtifact {
        artifact: ModelArtifact {
            backbone: base.backbone,
            pooling: base.pooling,
            classes: base.classes.clone(),
            head: fitted.model.head.to_bytes()?,
            tail: Some(TailWeights {
                blocks,
                weights: crate::snapshot::to_bytes(&fitted.model.tail)?,
            }),
        },
        history: fitted.history,
        best_epoch: fitted.best_epoch,
    })
}

/// Runs every image through the frozen prefix; returns the activations as examples and their
/// `[channels, height, width]`.
fn prefix_activations(
    backbone: &Backbone,
    split: usize,
    images: LabelledImages<'_>,
    device: &Device,
) -> Result<(Vec<Example>, Option<[usize; 3]>), BackendError> {
    let mut examples = Vec::new();
    let mut shape = None;
    let mut pending: Vec<LabelledImage> = Vec::with_capacity(PREFIX_BATCH);
    let mut flush = |pending: &mut Vec<LabelledImage>| -> Result<(), BackendError> {
        if pending.is_empty() {
            return Ok(());
        }
        let batch: Vec<PreparedImage> = pending.iter().map(|l| l.image.clone()).collect();
        let activations = guarded(|| {
            backbone.forward_until(backbone.normalize(pixels_tensor(&batch, device)), split)
        })?;
        let [count, channels, height, width] = activations.dims();
        shape = Some([channels, height, width]);
        let values: Vec<f32> = activations
            .into_data()
            .try_into_vec()
            .map_err(|e| BackendError::Training(format!("{e:?}")))?;
        for (i, labelled) in pending.drain(..).enumerate().take(count) {
            let size = channels * height * width;
            examples.push(Example {
                features: values[i * size..(i + 1) * size].to_vec(),
                label: labelled.label,
            });
        }
        Ok(())
    };
    for image in images {
        pending.push(image?);
        if pending.len() == PREFIX_BATCH {
            flush(&mut pending)?;
        }
    }
    flush(&mut pending)?;
    Ok((examples, shape))
}
