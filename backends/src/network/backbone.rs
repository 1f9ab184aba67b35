//! The backbone as a burn module (stem, inverted-residual blocks, head convolution, pooling), its
//! trainable tail and its folded plain-data form.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use super::kind::{BackboneKind, Pooling, FEATURE_DIM, INPUT_SCALE, STEM_CHANNELS};
use super::layers::{channel_means, ConvBn, FoldedBlock, FoldedConv, InvertedResidual};
use crate::preprocess::{PreparedImage, INPUT_SIZE};

/// A backbone's layers in execution order with batch norms folded, from [`Backbone::folded`];
/// global average pooling of the head's output gives the features.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldedBackbone {
    /// The 3×3 stride-2 conv from RGB to 32 channels.
    pub stem: FoldedConv,
    /// The inverted-residual blocks of the block table, in order.
    pub blocks: Vec<FoldedBlock>,
    /// The 1×1 conv to [`FEATURE_DIM`] channels.
    pub head: FoldedConv,
}

/// Backbone: stem, inverted-residual blocks, 1x1 head conv, global average pool → 1280 features.
#[derive(Module, Debug)]
pub struct Backbone {
    stem: ConvBn,
    blocks: Vec<InvertedResidual>,
    head: ConvBn,
    zero_point: f32,
}

impl Backbone {
    /// A backbone with the architecture of `kind` and uninitialised (random) weights.
    pub fn new(kind: BackboneKind, device: &Device) -> Self {
        let stem = ConvBn::new([3, STEM_CHANNELS], 3, 2, 1, true, device);
        let mut blocks = Vec::new();
        let mut in_channels = STEM_CHANNELS;
        for stage in kind.stages() {
            for repeat in 0..stage.repeats {
                let stride = if repeat == 0 { stage.stride } else { 1 };
                let hidden = in_channels * stage.expand;
                let expand = (stage.expand != 1)
                    .then(|| ConvBn::new([in_channels, hidden], 1, 1, 1, true, device));
                blocks.push(InvertedResidual {
                    expand,
                    depthwise: ConvBn::new(
                        [hidden, hidden],
                        stage.kernel,
                        stride,
                        hidden,
                        true,
                        device,
                    ),
                    project: ConvBn::new([hidden, stage.channels], 1, 1, 1, false, device),
                    residual: stride == 1 && in_channels == stage.channels,
                });
                in_channels = stage.channels;
            }
        }
        let head = ConvBn::new([in_channels, FEATURE_DIM], 1, 1, 1, true, device);
        Self {
            stem,
            blocks,
            head,
            zero_point: kind.input_zero_point(),
        }
    }

    /// The network as plain data with every batch norm folded into its convolution: what the
    /// ONNX export writes (and what any inference-only engine needs).
    pub fn folded(&self) -> FoldedBackbone {
        FoldedBackbone {
            stem: self.stem.folded(),
            blocks: self
                .blocks
                .iter()
                .map(|block| FoldedBlock {
                    expand: block.expand.as_ref().map(ConvBn::folded),
                    depthwise: block.depthwise.folded(),
                    project: block.project.folded(),
                    residual: block.residual,
                })
                .collect(),
            head: self.head.folded(),
        }
    }

    /// Folds every batch norm into its convolution, for serving: same features, fewer passes
    /// over the activations. The result can no longer be fine-tuned.
    pub fn fold_batch_norms(mut self) -> Self {
        self.stem.fold_batch_norm();
        self.blocks
            .iter_mut()
            .for_each(InvertedResidual::fold_batch_norms);
        self.head.fold_batch_norm();
        self
    }

    /// Number of inverted-residual blocks (fine-tuning unfreezes a suffix of them).
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// A copy of the last `blocks` blocks and the head convolution: the part phase 2 trains.
    pub fn tail(&self, blocks: usize) -> BackboneTail {
        let first = self.blocks.len() - blocks.min(self.blocks.len());
        BackboneTail {
            blocks: self.blocks[first..].to_vec(),
            head: self.head.clone(),
        }
    }

    /// This backbone with its last blocks and head convolution replaced by `tail`.
    pub fn with_tail(mut self, tail: BackboneTail) -> Self {
        let first = self.blocks.len() - tail.blocks.len();
        self.blocks.truncate(first);
        self.blocks.extend(tail.blocks);
        self.head = tail.head;
        self
    }

    /// `[batch, 224, 224, 3]` RGB bytes (as f32 0..255) → normalised NCHW input.
    pub fn normalize(&self, pixels: Tensor<4>) -> Tensor<4> {
        pixels
            .permute([0, 3, 1, 2])
            .sub_scalar(self.zero_point)
            .div_scalar(INPUT_SCALE)
    }

    /// Normalised input → pooled features `[batch, 1280]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.forward_until(x, self.blocks.len());
        self.forward_from(x, self.blocks.len())
    }

    /// Normalised input → features under `pooling` `[batch, FeatureSpec::dim]`: the final map's
    /// means first, then those of each block's depthwise output in execution order.
    pub fn forward_pooled(&self, x: Tensor<4>, pooling: Pooling) -> Tensor<2> {
        match pooling {
            Pooling::Final => self.forward(x),
            pooling => {
                let maps = self.pooled_maps(x, pooling);
                Tensor::cat(maps.into_iter().map(channel_means).collect(), 1)
            }
        }
    }

    /// Normalised input → the maps `pooling` averages, in feature order: the head
    /// convolution's output first, then (every block) each block's depthwise output.
    pub fn pooled_maps(&self, x: Tensor<4>, pooling: Pooling) -> Vec<Tensor<4>> {
        let mut x = self.stem.forward(x);
        let mut taps = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let tap = (pooling == Pooling::EveryBlock).then_some(&mut taps);
            x = block.forward_tapped(x, tap);
        }
        let mut maps = vec![self.head.forward(x)];
        maps.extend(taps);
        maps
    }

    /// Runs the stem and the first `blocks` blocks (the frozen prefix when fine-tuning).
    pub fn forward_until(&self, x: Tensor<4>, blocks: usize) -> Tensor<4> {
        let mut x = self.stem.forward(x);
        for block in &self.blocks[..blocks] {
            x = block.forward(x);
        }
        x
    }

    /// Runs blocks `first..`, the head conv and the pooling.
    pub fn forward_from(&self, mut x: Tensor<4>, first: usize) -> Tensor<2> {
        for block in &self.blocks[first..] {
            x = block.forward(x);
        }
        channel_means(self.head.forward(x))
    }
}

/// The trainable end of a backbone: its last blocks, the head convolution and the pooling.
/// Fine-tuning trains it on the frozen prefix's activations (`Backbone::forward_until`).
#[derive(Module, Debug)]
pub struct BackboneTail {
    blocks: Vec<InvertedResidual>,
    head: ConvBn,
}

impl BackboneTail {
    /// Prefix activations `[batch, channels, h, w]` → pooled features `[batch, 1280]`.
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<2> {
        for block in &self.blocks {
            x = block.forward(x);
        }
        channel_means(self.head.forward(x))
    }

    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// Folds the batch norms into the convolutions. Fine-tuning trains the folded form: the
    /// shipped MobileNetV2 batch norms are identities over folded biases, and re-estimating
    /// statistics from a small data set's batches would throw the pretrained features away.
    pub fn fold_batch_norms(mut self) -> Self {
        self.blocks
            .iter_mut()
            .for_each(InvertedResidual::fold_batch_norms);
        self.head.fold_batch_norm();
        self
    }
}

/// Prepared images → `[batch, 224, 224, 3]` float tensor of raw pixel values.
pub fn pixels_tensor(images: &[PreparedImage], device: &Device) -> Tensor<4> {
    let mut values = Vec::with_capacity(images.len() * INPUT_SIZE * INPUT_SIZE * 3);
    for image in images {
        values.extend(image.pixels().iter().map(|&p| p as f32));
    }
    let data = TensorData::new(values, [images.len(), INPUT_SIZE, INPUT_SIZE, 3]);
    Tensor::from_data(data, device)
}

/// A `[rows, cols]` tensor as row vectors.
pub fn rows(tensor: Tensor<2>) -> Vec<Vec<f32>> {
    let [_, cols] = tensor.dims();
    let values: Vec<f32> = tensor.into_data().try_into_vec().unwrap_or_default();
    values.chunks(cols.max(1)).map(<[f32]>::to_vec).collect()
}
