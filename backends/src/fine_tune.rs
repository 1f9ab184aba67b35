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

/// Prefix examples, the activations' `[channels, height, width]` and the taps' width (`None`
/// without images).
type PrefixExamples = (Vec<Example>, Option<([usize; 3], usize)>);

/// Images pushed through the frozen prefix at once.
const PREFIX_BATCH: usize = 16;

/// An example's features here: the prefix activations (`channels · side · side` values), then,
/// for every-block pooling, the frozen prefix blocks' pooled taps (`frozen` values).
#[derive(Module, Debug)]
struct TailModel {
    tail: BackboneTail,
    head: ClassifierHead,
    /// Shape `[channels, side, side]` of the prefix activations the tail takes.
    channels: usize,
    side: usize,
    /// Every-block pooling: the head reads the final map's means, the frozen blocks' cached
    /// taps, then the tail blocks' taps (the order of [`Backbone::forward_pooled`]).
    every_block: bool,
    frozen: usize,
}

impl Trainable for TailModel {
    fn logits(&self, batch: &[&Example], device: &Device) -> Tensor<2> {
        let size = self.channels * self.side * self.side;
        let part = |range: fn(&[f32], usize) -> &[f32]| -> Vec<f32> {
            batch
                .iter()
                .flat_map(|e| range(&e.features, size).iter().copied())
                .collect()
        };
        let shape = [batch.len(), self.channels, self.side, self.side];
        let activations = Tensor::from_data(TensorData::new(part(|f, n| &f[..n]), shape), device);
        if !self.every_block {
            return self.head.forward(self.tail.forward(activations));
        }
        let (final_means, taps) = self.tail.forward_tapped(activations);
        let mut parts = vec![final_means];
        if self.frozen > 0 {
            let frozen = TensorData::new(part(|f, n| &f[n..]), [batch.len(), self.frozen]);
            parts.push(Tensor::from_data(frozen, device));
        }
        parts.extend(taps);
        self.head.forward(Tensor::cat(parts, 1))
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
    let every_block = match base.pooling {
        Pooling::Final => false,
        Pooling::EveryBlock => true,
        // The texture pool's block may lie in the tail; the tail model does not pool it.
        other => {
            return Err(BackendError::Training(format!(
                "fine-tuning needs {} or {} pooling; this version pools {}",
                Pooling::Final.name(),
                Pooling::EveryBlock.name(),
                other.name()
            )))
        }
    };
    let frozen = load_backbone(base.backbone, base.tail_ref(), device)?.fold_batch_norms();
    let blocks = config.blocks.clamp(1, frozen.block_count());
    let split = frozen.block_count() - blocks;
    let (train, shape) = prefix_activations(&frozen, split, every_block, train, device)?;
    let (validation, _) = prefix_activations(&frozen, split, every_block, validation, device)?;
    let ([channels, side, _], frozen_width) =
        shape.ok_or_else(|| BackendError::Training("no training images".into()))?;

    let train_device = device.clone().autodiff();
    let start = load_backbone(base.backbone, base.tail_ref(), &train_device)?;
    let model = TailModel {
        tail: start.tail(blocks).fold_batch_norms(),
        head: base.load_head(&train_device)?,
        channels,
        side,
        every_block,
        frozen: frozen_width,
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
            test_time: base.test_time,
        },
        history: fitted.history,
        best_epoch: fitted.best_epoch,
    })
}

/// Runs every image through the frozen prefix; returns the activations (followed by the
/// prefix blocks' pooled taps when `tapped`) as examples, with the activations'
/// `[channels, height, width]` and the taps' width.
fn prefix_activations(
    backbone: &Backbone,
    split: usize,
    tapped: bool,
    images: LabelledImages<'_>,
    device: &Device,
) -> Result<PrefixExamples, BackendError> {
    let mut examples = Vec::new();
    let mut shape = None;
    let mut pending: Vec<LabelledImage> = Vec::with_capacity(PREFIX_BATCH);
    let mut flush = |pending: &mut Vec<LabelledImage>| -> Result<(), BackendError> {
        if pending.is_empty() {
            return Ok(());
        }
        let batch: Vec<PreparedImage> = pending.iter().map(|l| l.image.clone()).collect();
        let (activations, taps) = guarded(|| {
            let x = backbone.normalize(pixels_tensor(&batch, device));
            let (activations, taps) = backbone.forward_until_tapped(x, split);
            let taps = (tapped && !taps.is_empty()).then(|| Tensor::cat(taps, 1));
            (activations, taps)
        })?;
        let [count, channels, height, width] = activations.dims();
        let size = channels * height * width;
        let values = to_vec(activations.into_data())?;
        let (taps, width_taps) = match taps {
            Some(taps) => {
                let [_, width] = taps.dims();
                (to_vec(taps.into_data())?, width)
            }
            None => (Vec::new(), 0),
        };
        shape = Some(([channels, height, width], width_taps));
        for (i, labelled) in pending.drain(..).enumerate().take(count) {
            let mut features = values[i * size..(i + 1) * size].to_vec();
            features.extend_from_slice(&taps[i * width_taps..(i + 1) * width_taps]);
            examples.push(Example {
                features,
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

fn to_vec(data: TensorData) -> Result<Vec<f32>, BackendError> {
    data.try_into_vec()
        .map_err(|e| BackendError::Training(format!("{e:?}")))
}
