//! The inverted-residual backbone family (MobileNetV2, EfficientNet-Lite0) written once,
//! driven by a block table, and loaded from torchvision-style safetensors through burn's store.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::store::{KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::activation::relu6;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::BackendError;
use crate::preprocess::{PreparedImage, INPUT_SIZE};

/// Width of the pooled feature vector both backbones produce.
pub const FEATURE_DIM: usize = 1280;

/// Divisor of the input scaling `(pixel - zero_point) / INPUT_SCALE` both originals use.
pub const INPUT_SCALE: f32 = 128.0;

/// Batch-norm epsilon of the TensorFlow originals (torchvision's default 1e-5 is wrong here).
const BN_EPSILON: f64 = 1e-3;

/// The shipped ImageNet backbones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackboneKind {
    MobilenetV2,
    EfficientnetLite0,
}

impl BackboneKind {
    pub const ALL: [BackboneKind; 2] = [BackboneKind::MobilenetV2, BackboneKind::EfficientnetLite0];

    pub fn name(self) -> &'static str {
        match self {
            BackboneKind::MobilenetV2 => "mobilenet_v2",
            BackboneKind::EfficientnetLite0 => "efficientnet_lite0",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Zero point of the input scaling `(pixel - zero_point) / INPUT_SCALE` each original was
    /// trained with.
    pub fn input_zero_point(self) -> f32 {
        match self {
            BackboneKind::MobilenetV2 => 128.0,
            BackboneKind::EfficientnetLite0 => 127.0,
        }
    }

    /// Number of ImageNet logits of the shipped classifier (MobileNetV2 keeps TF's `background`).
    pub fn imagenet_classes(self) -> usize {
        match self {
            BackboneKind::MobilenetV2 => 1001,
            BackboneKind::EfficientnetLite0 => 1000,
        }
    }

    fn spec(self) -> BackboneSpec {
        match self {
            BackboneKind::MobilenetV2 => BackboneSpec {
                stages: MOBILENET_V2_STAGES,
                naming: &TorchvisionMobilenetNames,
            },
            BackboneKind::EfficientnetLite0 => BackboneSpec {
                stages: EFFICIENTNET_LITE0_STAGES,
                naming: &EfficientnetNames,
            },
        }
    }
}

/// The block tables: (expand ratio, kernel, first stride, output channels, repeats) per stage.
const MOBILENET_V2_STAGES: &[Stage] = &[
    Stage::new(1, 3, 1, 16, 1),
    Stage::new(6, 3, 2, 24, 2),
    Stage::new(6, 3, 2, 32, 3),
    Stage::new(6, 3, 2, 64, 4),
    Stage::new(6, 3, 1, 96, 3),
    Stage::new(6, 3, 2, 160, 3),
    Stage::new(6, 3, 1, 320, 1),
];

const EFFICIENTNET_LITE0_STAGES: &[Stage] = &[
    Stage::new(1, 3, 1, 16, 1),
    Stage::new(6, 3, 2, 24, 2),
    Stage::new(6, 5, 2, 40, 2),
    Stage::new(6, 3, 2, 80, 3),
    Stage::new(6, 5, 1, 112, 3),
    Stage::new(6, 5, 2, 192, 4),
    Stage::new(6, 3, 1, 320, 1),
];

impl std::fmt::Display for BackboneKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

const STEM_CHANNELS: usize = 32;

struct Stage {
    expand: usize,
    kernel: usize,
    stride: usize,
    channels: usize,
    repeats: usize,
}

impl Stage {
    const fn new(
        expand: usize,
        kernel: usize,
        stride: usize,
        channels: usize,
        repeats: usize,
    ) -> Self {
        Self {
            expand,
            kernel,
            stride,
            channels,
            repeats,
        }
    }
}

struct BackboneSpec {
    stages: &'static [Stage],
    naming: &'static dyn WeightNames,
}

/// Where a layer of our module lives in a weight file's own naming scheme.
/// Each method returns the source prefix (conv weight at `{prefix}conv`, BN at `{prefix}bn`).
trait WeightNames: Sync {
    fn stem(&self) -> (String, String);
    fn head(&self) -> (String, String);
    /// `part` is 0 = expand, 1 = depthwise, 2 = project; `has_expand` tells the block's layout.
    fn block(&self, index: usize, part: usize, has_expand: bool) -> (String, String);
    fn classifier(&self) -> String;
}

struct TorchvisionMobilenetNames;

impl WeightNames for TorchvisionMobilenetNames {
    fn stem(&self) -> (String, String) {
        ("features.0.0".into(), "features.0.1".into())
    }
    fn head(&self) -> (String, String) {
        ("features.18.0".into(), "features.18.1".into())
    }
    fn block(&self, index: usize, part: usize, has_expand: bool) -> (String, String) {
        let base = format!("features.{}.conv", index + 1);
        // Without an expansion layer torchvision numbers the depthwise conv 0 and the projection 1.
        let slot = if has_expand { part } else { part - 1 };
        if part == 2 {
            // The projection's conv and BN are siblings, not a Conv2dNormActivation pair.
            (format!("{base}.{slot}"), format!("{base}.{}", slot + 1))
        } else {
            (format!("{base}.{slot}.0"), format!("{base}.{slot}.1"))
        }
    }
    fn classifier(&self) -> String {
        "classifier.1".into()
    }
}

struct EfficientnetNames;

impl WeightNames for EfficientnetNames {
    fn stem(&self) -> (String, String) {
        ("_conv_stem".into(), "_bn0".into())
    }
    fn head(&self) -> (String, String) {
        ("_conv_head".into(), "_bn1".into())
    }
    fn block(&self, index: usize, part: usize, _has_expand: bool) -> (String, String) {
        let conv = ["_expand_conv", "_depthwise_conv", "_project_conv"][part];
        (
            format!("_blocks.{index}.{conv}"),
            format!("_blocks.{index}._bn{part}"),
        )
    }
    fn classifier(&self) -> String {
        "_fc".into()
    }
}

/// Convolution followed by batch norm and an optional ReLU6.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    /// `None` once folded into `conv` for inference ([`Backbone::fold_batch_norms`]).
    bn: Option<BatchNorm>,
    relu6: bool,
}

impl ConvBn {
    fn new(
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        groups: usize,
        relu6: bool,
        device: &Device,
    ) -> Self {
        let conv = Conv2dConfig::new(channels, [kernel, kernel])
            .with_stride([stride, stride])
            .with_groups(groups)
            // TensorFlow "SAME": stride-2 convs pad asymmetrically (extra row/column at the end).
            .with_padding(PaddingConfig2d::Same)
            .with_bias(false)
            .init(device);
        let bn = BatchNormConfig::new(channels[1])
            .with_epsilon(BN_EPSILON)
            .init(device);
        Self {
            conv,
            bn: Some(bn),
            relu6,
        }
    }

    /// This layer for inference: the batch norm's affine map folded into the convolution.
    /// `scale = gamma / sqrt(var + eps)`, `weight' = weight * scale` per output channel,
    /// `bias = beta - mean * scale` (computed in f64 so folding adds no visible rounding).
    fn folded(&self) -> FoldedConv {
        // Parameters are created as f32 on every device this crate builds.
        fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
            tensor.into_data().try_into_vec().expect("f32 parameters")
        }
        let shape = self.conv.weight.dims();
        let mut weight = values(self.conv.weight.val());
        let bias = match &self.bn {
            // Already folded: the conv carries the bias.
            None => self
                .conv
                .bias
                .as_ref()
                .map_or_else(|| vec![0.0; shape[0]], |bias| values(bias.val())),
            Some(bn) => {
                let gamma = values(bn.gamma.val());
                let beta = values(bn.beta.val());
                let mean = values(bn.running_mean.value());
                let var = values(bn.running_var.value());
                let per_channel = shape[1] * shape[2] * shape[3];
                let mut bias = Vec::with_capacity(shape[0]);
                for (channel, kernel) in weight.chunks_mut(per_channel).enumerate() {
                    let scale =
                        f64::from(gamma[channel]) / (f64::from(var[channel]) + bn.epsilon).sqrt();
                    for w in kernel {
                        *w = (f64::from(*w) * scale) as f32;
                    }
                    bias.push((f64::from(beta[channel]) - f64::from(mean[channel]) * scale) as f32);
                }
                bias
            }
        };
        FoldedConv {
            weight,
            shape,
            bias,
            stride: self.conv.stride[0],
            groups: self.conv.groups,
            relu6: self.relu6,
        }
    }

    /// Replaces conv + batch norm by the folded conv (one op instead of several passes over the
    /// activations). Inference only: the batch norm no longer exists to train.
    fn fold_batch_norm(&mut self) {
        if self.bn.is_none() {
            return;
        }
        let folded = self.folded();
        let device = self.conv.weight.device();
        let tensor = |values: Vec<f32>, shape: Vec<usize>| TensorData::new(values, shape);
        self.conv.weight = Param::from_tensor(Tensor::from_data(
            tensor(folded.weight, folded.shape.to_vec()),
            &device,
        ));
        self.conv.bias = Some(Param::from_tensor(Tensor::from_data(
            tensor(folded.bias, vec![folded.shape[0]]),
            &device,
        )));
        self.bn = None;
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(x);
        let x = match &self.bn {
            Some(bn) => bn.forward(x),
            None => x,
        };
        if self.relu6 {
            relu6(x)
        } else {
            x
        }
    }
}

/// One inverted-residual (MBConv without squeeze-excitation) block.
#[derive(Module, Debug)]
pub struct InvertedResidual {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

impl InvertedResidual {
    fn fold_batch_norms(&mut self) {
        if let Some(expand) = &mut self.expand {
            expand.fold_batch_norm();
        }
        self.depthwise.fold_batch_norm();
        self.project.fold_batch_norm();
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let mut x = input.clone();
        if let Some(expand) = &self.expand {
            x = expand.forward(x);
        }
        let x = self.project.forward(self.depthwise.forward(x));
        if self.residual {
            x + input
        } else {
            x
        }
    }
}

/// A convolution with its batch norm folded in (inference only). Padding is TensorFlow "SAME"
/// for every layer of these backbones; the ONNX export turns it into explicit pads.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldedConv {
    /// Kernel `[out, in / groups, k, k]`, row-major, scaled by the batch norm.
    pub weight: Vec<f32>,
    /// Shape of `weight`.
    pub shape: [usize; 4],
    /// One bias per output channel (the batch norm's shift).
    pub bias: Vec<f32>,
    /// Stride, the same along both axes.
    pub stride: usize,
    /// 1 for a full convolution, the channel count for a depthwise one.
    pub groups: usize,
    /// Whether a ReLU6 follows.
    pub relu6: bool,
}

impl FoldedConv {
    /// Kernel side (the kernels are square).
    pub fn kernel(&self) -> usize {
        self.shape[2]
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.shape[0]
    }
}

/// One inverted-residual block of a [`FoldedBackbone`].
#[derive(Debug, Clone, PartialEq)]
pub struct FoldedBlock {
    /// The 1×1 expansion (absent when the expand ratio is 1).
    pub expand: Option<FoldedConv>,
    /// The k×k depthwise conv (carries the block's stride).
    pub depthwise: FoldedConv,
    /// The linear 1×1 projection (no ReLU6).
    pub project: FoldedConv,
    /// Whether the block input is added to its output.
    pub residual: bool,
}

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
        let spec = kind.spec();
        let stem = ConvBn::new([3, STEM_CHANNELS], 3, 2, 1, true, device);
        let mut blocks = Vec::new();
        let mut in_channels = STEM_CHANNELS;
        for stage in spec.stages {
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
        let x = self.head.forward(x);
        x.mean_dims(&[2, 3]).flatten(1, 3)
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
        self.head.forward(x).mean_dims(&[2, 3]).flatten(1, 3)
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

/// Loads the shipped ImageNet backbone of `kind`, with a fine-tuned tail (safetensors bytes of a
/// folded [`BackboneTail`] of `tail.0` blocks) in place of the original one when given.
pub fn load_backbone(
    kind: BackboneKind,
    tail: Option<(usize, &[u8])>,
    device: &Device,
) -> Result<Backbone, BackendError> {
    let backbone = BackboneWeights::load(kind, crate::weights::imagenet_weights(kind), device)?;
    let Some((blocks, bytes)) = tail else {
        return Ok(backbone);
    };
    if blocks == 0 || blocks > backbone.block_count() {
        return Err(BackendError::Artifact(format!(
            "a tail of {blocks} blocks does not fit {kind}"
        )));
    }
    let mut fine_tuned = backbone.tail(blocks).fold_batch_norms();
    crate::snapshot::load(&mut fine_tuned, bytes, "backbone tail")?;
    Ok(backbone.with_tail(fine_tuned))
}

/// Key remapping from a weight file's names to this module's paths, generated from the block table.
fn remapper(kind: BackboneKind, with_classifier: bool) -> Result<KeyRemapper, BackendError> {
    let spec = kind.spec();
    let names = spec.naming;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut conv_bn = |(conv, bn): (String, String), target: String| {
        pairs.push((conv, format!("{target}.conv")));
        pairs.push((bn, format!("{target}.bn")));
    };
    conv_bn(names.stem(), "backbone.stem".into());
    conv_bn(names.head(), "backbone.head".into());
    let mut index = 0;
    for stage in spec.stages {
        for _ in 0..stage.repeats {
            let has_expand = stage.expand != 1;
            for (part, field) in ["expand", "depthwise", "project"].iter().enumerate() {
                if part == 0 && !has_expand {
                    continue;
                }
                conv_bn(
                    names.block(index, part, has_expand),
                    format!("backbone.blocks.{index}.{field}"),
                );
            }
            index += 1;
        }
    }
    if with_classifier {
        pairs.push((names.classifier(), "classifier".into()));
    }
    let patterns = pairs
        .into_iter()
        .map(|(from, to)| (format!("^{}\\.", regex_escape(&from)), format!("{to}.")));
    KeyRemapper::from_pattern_iter(patterns).map_err(|e| BackendError::Weights(e.to_string()))
}

fn regex_escape(name: &str) -> String {
    name.replace('.', "\\.")
}

/// The weight file's own ImageNet classifier (`Linear` 1280 → 1000/1001): applied to any plugin's
/// features, it proves the port against the reference tables.
#[derive(Module, Debug)]
pub struct ImagenetClassifier {
    classifier: Linear,
}

impl ImagenetClassifier {
    /// Loads the classifier of `kind`'s weight file (the backbone tensors in it are ignored).
    pub fn load(kind: BackboneKind, weights: &[u8], device: &Device) -> Result<Self, BackendError> {
        let mut model = Self {
            classifier: LinearConfig::new(FEATURE_DIM, kind.imagenet_classes()).init(device),
        };
        load_weights(&mut model, kind, weights, true)?;
        Ok(model)
    }

    /// ImageNet class probabilities for backbone features.
    pub fn classify(&self, features: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let device = self.classifier.weight.device();
        let logits = self
            .classifier
            .forward(crate::head::features_tensor(features, &device));
        rows(burn::tensor::activation::softmax(logits, 1))
    }
}

/// A backbone wrapped so its paths match the `backbone.` prefix the remapper emits.
#[derive(Module, Debug)]
pub struct BackboneWeights {
    pub backbone: Backbone,
}

impl BackboneWeights {
    /// Loads the shipped ImageNet weights of `kind` (safetensors bytes, torchvision-style names).
    pub fn load(
        kind: BackboneKind,
        weights: &[u8],
        device: &Device,
    ) -> Result<Backbone, BackendError> {
        let mut wrapped = Self {
            backbone: Backbone::new(kind, device),
        };
        load_weights(&mut wrapped, kind, weights, false)?;
        Ok(wrapped.backbone)
    }
}

fn load_weights<M: ModuleSnapshot>(
    module: &mut M,
    kind: BackboneKind,
    weights: &[u8],
    with_classifier: bool,
) -> Result<(), BackendError> {
    let mut store = SafetensorsStore::from_bytes(Some(weights.to_vec()))
        .with_from_adapter(PyTorchToBurnAdapter)
        .remap(remapper(kind, with_classifier)?)
        // The weight files carry the ImageNet classifier we may not load; unused keys are fine,
        // but every tensor of the module must be found (checked below).
        .allow_partial(true);
    let result = module
        .load_from(&mut store)
        .map_err(|e| BackendError::Weights(e.to_string()))?;
    if !result.missing.is_empty() {
        return Err(BackendError::Weights(format!(
            "{kind}: {} tensors missing from the weight file, e.g. {:?}",
            result.missing.len(),
            result.missing.iter().take(3).collect::<Vec<_>>()
        )));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::weights::imagenet_weights;

    /// Folding must not change what the network computes (shipped weights: real batch-norm
    /// statistics, depthwise and asymmetric stride-2 layers), and folding twice is a no-op.
    #[test]
    fn folding_batch_norms_keeps_the_features() {
        let device = Device::flex();
        for kind in BackboneKind::ALL {
            let backbone = BackboneWeights::load(kind, imagenet_weights(kind), &device).unwrap();
            let folded = backbone.clone().fold_batch_norms();
            assert_eq!(folded.folded(), backbone.folded(), "{kind}");
            let input =
                Tensor::<4>::random([2, 3, 224, 224], Distribution::Uniform(-1.0, 1.0), &device);
            let expected = backbone.forward(input.clone());
            let actual = folded.clone().fold_batch_norms().forward(input);
            let difference: f32 = (expected - actual).abs().max().into_scalar();
            assert!(difference < 1e-4, "{kind}: max difference {difference}");
        }
    }
}
