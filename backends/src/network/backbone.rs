//! The backbone as a burn module (stem, inverted-residual blocks, head convolution, pooling), its
//! trainable tail and its folded plain-data form.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

use super::kind::{BackboneKind, Pooling, FEATURE_DIM, INPUT_SCALE, STEM_CHANNELS};
use super::layers::{
    channel_means, second_order, ConvBn, FoldedBlock, FoldedConv, InvertedResidual,
};
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
    /// The block whose output [`Pooling::EveryBlockTexture`] pools second-order.
    texture_block: usize,
}

/// The maps a pooling reads: `means` averaged per channel (the head convolution's output first,
/// then each block's depthwise output), `texture` pooled second-order.
pub struct PooledMaps {
    pub means: Vec<Tensor<4>>,
    pub texture: Option<Tensor<4>>,
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
            texture_block: kind.texture_block(),
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

    /// Index of the block whose output [`Pooling::EveryBlockTexture`] pools second-order.
    pub fn texture_block(&self) -> usize {
        self.texture_block
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
    /// means first, then those of each block's depthwise output in execution order, then the
    /// texture pool.
    pub fn forward_pooled(&self, x: Tensor<4>, pooling: Pooling) -> Tensor<2> {
        match pooling {
            Pooling::Final => self.forward(x),
            pooling => {
                let maps = self.pooled_maps(x, pooling);
                let mut parts: Vec<Tensor<2>> = maps.means.into_iter().map(channel_means).collect();
                parts.extend(maps.texture.map(second_order));
                Tensor::cat(parts, 1)
            }
        }
    }

    /// Normalised input → the maps `pooling` reads, in feature order.
    pub fn pooled_maps(&self, x: Tensor<4>, pooling: Pooling) -> PooledMaps {
        let texture_block = (pooling == Pooling::EveryBlockTexture).then_some(self.texture_block);
        let mut x = self.stem.forward(x);
        let mut taps = Vec::with_capacity(self.blocks.len());
        let mut texture = None;
        for (index, block) in self.blocks.iter().enumerate() {
            let tap = pooling.pools_blocks().then_some(&mut taps);
            x = block.forward_tapped(x, tap);
            if texture_block == Some(index) {
                texture = Some(x.clone());
            }
        }
        let mut means = vec![self.head.forward(x)];
        means.extend(taps);
        PooledMaps { means, texture }
    }

    /// Runs the stem and the first `blocks` blocks (the frozen prefix when fine-tuning).
    pub fn forward_until(&self, x: Tensor<4>, blocks: usize) -> Tensor<4> {
        self.prefix(x, blocks, None)
    }

    /// [`Self::forward_until`], with the channel means of each block's depthwise output in
    /// execution order: the frozen prefix's part of every-block features.
    pub fn forward_until_tapped(&self, x: Tensor<4>, blocks: usize) -> (Tensor<4>, Vec<Tensor<2>>) {
        let mut taps = Vec::with_capacity(blocks);
        let x = self.prefix(x, blocks, Some(&mut taps));
        (x, taps.into_iter().map(channel_means).collect())
    }

    fn prefix(
        &self,
        x: Tensor<4>,
        blocks: usize,
        mut taps: Option<&mut Vec<Tensor<4>>>,
    ) -> Tensor<4> {
        let mut x = self.stem.forward(x);
        for block in &self.blocks[..blocks] {
            x = block.forward_tapped(x, taps.as_deref_mut());
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
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.run(x, None)
    }

    /// [`Self::forward`], with the channel means of each tail block's depthwise output: the
    /// tail's part of every-block features.
    pub fn forward_tapped(&self, x: Tensor<4>) -> (Tensor<2>, Vec<Tensor<2>>) {
        let mut taps = Vec::with_capacity(self.blocks.len());
        let means = self.run(x, Some(&mut taps));
        (means, taps.into_iter().map(channel_means).collect())
    }

    fn run(&self, mut x: Tensor<4>, mut taps: Option<&mut Vec<Tensor<4>>>) -> Tensor<2> {
        for block in &self.blocks {
            x = block.forward_tapped(x, taps.as_deref_mut());
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
