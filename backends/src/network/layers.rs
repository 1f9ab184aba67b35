//! The layers of the backbones: convolution + batch norm, inverted-residual blocks, and their
//! folded (batch norm merged into the convolution) plain-data form.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu6;
use burn::tensor::{Device, Int, Tensor, TensorData};

/// Batch-norm epsilon of the TensorFlow originals (torchvision's default 1e-5 is wrong here).
const BN_EPSILON: f64 = 1e-3;

/// Convolution followed by batch norm and an optional ReLU6.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
    /// `None` once folded into `conv` for inference ([`super::Backbone::fold_batch_norms`]).
    bn: Option<BatchNorm>,
    relu6: bool,
}

impl ConvBn {
    pub(super) fn new(
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
    pub(super) fn folded(&self) -> FoldedConv {
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
    pub(super) fn fold_batch_norm(&mut self) {
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

    pub(super) fn forward(&self, x: Tensor<4>) -> Tensor<4> {
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
    pub(super) expand: Option<ConvBn>,
    pub(super) depthwise: ConvBn,
    pub(super) project: ConvBn,
    pub(super) residual: bool,
}

impl InvertedResidual {
    pub(super) fn fold_batch_norms(&mut self) {
        if let Some(expand) = &mut self.expand {
            expand.fold_batch_norm();
        }
        self.depthwise.fold_batch_norm();
        self.project.fold_batch_norm();
    }

    pub(super) fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_tapped(input, None)
    }

    /// [`Self::forward`], appending the depthwise output (after its ReLU6) to `taps` when given.
    pub(super) fn forward_tapped(
        &self,
        input: Tensor<4>,
        taps: Option<&mut Vec<Tensor<4>>>,
    ) -> Tensor<4> {
        let mut x = input.clone();
        if let Some(expand) = &self.expand {
            x = expand.forward(x);
        }
        let x = self.depthwise.forward(x);
        if let Some(taps) = taps {
            taps.push(x.clone());
        }
        let x = self.project.forward(x);
        if self.residual {
            x + input
        } else {
            x
        }
    }
}

/// `[batch, channels, h, w]` → `[batch, channels · (channels + 1) / 2]`: second-order pooling.
/// The upper triangle (row by row) of `Σ_p x_p x_pᵀ / P` over the `P = h·w` positions, signed
/// square root (the products grow like squares), scaled to unit length per image.
pub fn second_order(x: Tensor<4>) -> Tensor<2> {
    let [batch, channels, h, w] = x.dims();
    let positions = h * w;
    let device = x.device();
    let x = x.reshape([batch, channels, positions]);
    let products = x
        .clone()
        .matmul(x.swap_dims(1, 2))
        .div_scalar(positions as f32)
        .reshape([batch, channels * channels]);
    let upper: Vec<i64> = (0..channels)
        .flat_map(|i| (i..channels).map(move |j| (i * channels + j) as i64))
        .collect();
    let count = upper.len();
    let upper = products.select(
        1,
        Tensor::<1, Int>::from_data(TensorData::new(upper, [count]), &device),
    );
    let signed = upper.clone().sign() * upper.abs().sqrt();
    let length = signed
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    signed / length
}

/// `[batch, channels, h, w]` → `[batch, channels]`: global average pooling.
pub(super) fn channel_means(x: Tensor<4>) -> Tensor<2> {
    x.mean_dims(&[2, 3]).flatten(1, 3)
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

/// One inverted-residual block of a [`super::FoldedBackbone`].
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The texture pool is the normalised, signed-square-rooted upper triangle of the channel
    /// products averaged over positions, computed here directly in f64.
    #[test]
    fn second_order_pooling_matches_its_definition() {
        let (channels, side) = (3, 2);
        let values: Vec<f32> = (0..2 * channels * side * side)
            .map(|i| ((i * 5) % 7) as f32 - 3.0)
            .collect();
        let device = Device::flex();
        let x = Tensor::<4>::from_data(
            TensorData::new(values.clone(), [2, channels, side, side]),
            &device,
        );
        let pooled: Vec<f32> = second_order(x).into_data().try_into_vec().unwrap();
        assert_eq!(pooled.len(), 2 * 6);
        for (image, ours) in values.chunks(channels * side * side).zip(pooled.chunks(6)) {
            let plane = |c: usize| &image[c * side * side..(c + 1) * side * side];
            let mut expected = Vec::new();
            for i in 0..channels {
                for j in i..channels {
                    let product: f64 = plane(i)
                        .iter()
                        .zip(plane(j))
                        .map(|(a, b)| f64::from(*a) * f64::from(*b))
                        .sum::<f64>()
                        / (side * side) as f64;
                    expected.push(product.signum() * product.abs().sqrt());
                }
            }
            let length = expected.iter().map(|v| v * v).sum::<f64>().sqrt();
            for (o, e) in ours.iter().zip(&expected) {
                assert!(
                    (f64::from(*o) - e / length).abs() < 1e-6,
                    "{ours:?} vs {expected:?}"
                );
            }
        }
    }
}
