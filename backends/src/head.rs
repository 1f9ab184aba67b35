//! The original project's classifier head on top of the backbone features (1280 wide, or wider
//! with every-block pooling):
//! BatchNorm → Dense 256 ReLU → Dropout 0.5 → Dense 128 ReLU → Dropout 0.3 → Dense N (→ softmax).
//!
//! Features made of several groups (texture pooling) get one such sub-head per group, trained
//! side by side on their own losses ([`GroupedHead`]), stored as sub-heads, and merged when
//! loaded into one head of the same layout whose dense layers are block-diagonal (widths 256
//! and 128 per group) and whose logits are the sub-heads' logits summed: serving, export and
//! explanations see one head.

use burn::module::{Module, Param, RunningState};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::BackendError;
use crate::network::rows;
use crate::snapshot;

#[derive(Module, Debug)]
pub struct ClassifierHead {
    norm: BatchNorm,
    dense1: Linear,
    dropout1: Dropout,
    dense2: Linear,
    dropout2: Dropout,
    output: Linear,
}

/// Hidden widths of one (sub-)head.
const HIDDEN: [usize; 2] = [256, 128];

impl ClassifierHead {
    /// A head reading feature groups of `groups` widths (one group: the original head; several:
    /// the merged layout, initialised at random, to load merged weights into).
    pub fn new(classes: usize, groups: &[usize], device: &Device) -> Self {
        let inputs = groups.iter().sum();
        let [first, second] = HIDDEN.map(|width| width * groups.len());
        Self {
            // Keras' BatchNormalization defaults (momentum 0.99 → burn's 0.01, eps 1e-3).
            norm: BatchNormConfig::new(inputs)
                .with_epsilon(1e-3)
                .with_momentum(0.01)
                .init(device),
            dense1: LinearConfig::new(inputs, first).init(device),
            dropout1: DropoutConfig::new(0.5).init(),
            dense2: LinearConfig::new(first, second).init(device),
            dropout2: DropoutConfig::new(0.3).init(),
            output: LinearConfig::new(second, classes).init(device),
        }
    }

    /// Width of the features this head reads.
    pub fn inputs(&self) -> usize {
        self.norm.gamma.dims()[0]
    }

    /// Features `[batch, inputs]` → logits `[batch, classes]`.
    pub fn forward(&self, features: Tensor<2>) -> Tensor<2> {
        let x = self.norm.forward(features);
        let x = self.dropout1.forward(relu(self.dense1.forward(x)));
        let x = self.dropout2.forward(relu(self.dense2.forward(x)));
        self.output.forward(x)
    }

    /// Sum of squared dense kernels, the L2 term Keras adds for `kernel_regularizer=l2(..)`.
    pub fn l2_penalty(&self) -> Tensor<1> {
        let square_sum = |layer: &Linear| layer.weight.val().powf_scalar(2.0).sum();
        square_sum(&self.dense1) + square_sum(&self.dense2)
    }

    pub fn classes(&self) -> usize {
        self.output.weight.dims()[1]
    }

    /// Class probabilities for feature rows.
    pub fn probabilities(&self, features: &[Vec<f32>], device: &Device) -> Vec<Vec<f32>> {
        if features.is_empty() {
            return Vec::new();
        }
        rows(softmax(self.forward(features_tensor(features, device)), 1))
    }

    /// Class probabilities of several views of each image (`views[k][i]`: view `k` of image
    /// `i`): the softmax of the mean of the views' logits — the geometric mean of their answers.
    pub fn probabilities_of_views(
        &self,
        views: &[Vec<Vec<f32>>],
        device: &Device,
    ) -> Vec<Vec<f32>> {
        if views.is_empty() || views[0].is_empty() {
            return Vec::new();
        }
        let logits = views
            .iter()
            .map(|view| self.forward(features_tensor(view, device)))
            .reduce(|sum, logits| sum + logits)
            .expect("at least one view");
        rows(softmax(logits.div_scalar(views.len() as f32), 1))
    }

    /// Serialises the head's weights (safetensors bytes).
    pub fn to_bytes(&self) -> Result<Vec<u8>, BackendError> {
        snapshot::to_bytes(self)
    }

    /// Restores a head for `classes` classes reading feature groups of `groups` widths from
    /// what training stored: [`ClassifierHead::to_bytes`] output for one group, the sub-heads'
    /// bytes (half the size of the merged form's zeros) for several.
    pub fn from_bytes(
        bytes: &[u8],
        classes: usize,
        groups: &[usize],
        device: &Device,
    ) -> Result<Self, BackendError> {
        if groups.len() > 1 {
            return Ok(GroupedHead::from_bytes(bytes, classes, groups, device)?.merged(device));
        }
        let mut head = Self::new(classes, groups, device);
        snapshot::load(&mut head, bytes, "head")?;
        Ok(head)
    }
}

/// One dense layer of a [`ClassifierHead`] at inference: `y = x · weight + bias`, `weight`
/// `[inputs, outputs]` row-major, a ReLU after it when `relu`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseLayer {
    pub weight: Vec<f32>,
    pub inputs: usize,
    pub outputs: usize,
    pub bias: Vec<f32>,
    pub relu: bool,
}

impl ClassifierHead {
    /// The head as inference runs it (dropout off): three dense layers, the batch norm folded
    /// into the first (`x' = a·x + c` per feature, so `W·x' + b = (a∘W)·x + (W·c + b)`; in f64).
    pub fn dense_layers(&self) -> Vec<DenseLayer> {
        let layer = |linear: &Linear, relu: bool| {
            let Dense {
                weight,
                inputs,
                outputs,
                bias,
            } = Dense::of(linear);
            DenseLayer {
                weight,
                inputs,
                outputs,
                bias,
                relu,
            }
        };
        let mut first = layer(&self.dense1, true);
        let gamma = tensor_values(self.norm.gamma.val());
        let beta = tensor_values(self.norm.beta.val());
        let mean = tensor_values(self.norm.running_mean.value());
        let var = tensor_values(self.norm.running_var.value());
        let mut bias: Vec<f64> = first.bias.iter().map(|&b| f64::from(b)).collect();
        for (i, row) in first.weight.chunks_mut(first.outputs).enumerate() {
            let scale = f64::from(gamma[i]) / (f64::from(var[i]) + self.norm.epsilon).sqrt();
            let shift = f64::from(beta[i]) - f64::from(mean[i]) * scale;
            for (w, b) in row.iter_mut().zip(&mut bias) {
                *b += f64::from(*w) * shift;
                *w = (f64::from(*w) * scale) as f32;
            }
        }
        first.bias = bias.into_iter().map(|b| b as f32).collect();
        vec![first, layer(&self.dense2, true), layer(&self.output, false)]
    }
}

/// Sub-heads side by side, one per feature group (in order), each reading its own slice of the
/// features; the logits are their sum. Trained on the sum of the sub-heads' own losses, each
/// sub-head is fitted as if alone (late fusion), on the same batches.
#[derive(Module, Debug)]
pub struct GroupedHead {
    heads: Vec<ClassifierHead>,
}

impl GroupedHead {
    /// Fresh sub-heads for `groups` widths.
    pub fn new(classes: usize, groups: &[usize], device: &Device) -> Self {
        Self {
            heads: groups
                .iter()
                .map(|&width| ClassifierHead::new(classes, &[width], device))
                .collect(),
        }
    }

    /// Each sub-head's logits `[batch, classes]` for features `[batch, Σ widths]`.
    pub fn group_logits(&self, features: Tensor<2>) -> Vec<Tensor<2>> {
        let mut start = 0;
        self.heads
            .iter()
            .map(|head| {
                let width = head.inputs();
                let part = features.clone().narrow(1, start, width);
                start += width;
                head.forward(part)
            })
            .collect()
    }

    pub fn l2_penalty(&self) -> Tensor<1> {
        let mut penalties = self.heads.iter().map(ClassifierHead::l2_penalty);
        let first = penalties.next().expect("at least one sub-head");
        penalties.fold(first, |sum, penalty| sum + penalty)
    }

    /// The one head computing the summed logits: batch norms side by side, dense layers
    /// block-diagonal, the output layer's rows stacked and its biases added.
    pub fn merged(&self, device: &Device) -> ClassifierHead {
        let parts: Vec<HeadValues> = self.heads.iter().map(HeadValues::of).collect();
        let groups: Vec<usize> = self.heads.iter().map(ClassifierHead::inputs).collect();
        let classes = self.heads[0].classes();
        let mut merged = ClassifierHead::new(classes, &groups, device);
        let norm = std::array::from_fn(|i| {
            parts
                .iter()
                .flat_map(|p| p.norm[i].iter().copied())
                .collect()
        });
        merged.set_norm(norm, device);
        for layer in 0..3 {
            let blocks: Vec<&Dense> = parts.iter().map(|p| &p.dense[layer]).collect();
            let dense = if layer < 2 {
                Dense::block_diagonal(&blocks)
            } else {
                Dense::stacked(&blocks)
            };
            merged.set_dense(layer, dense, device);
        }
        merged
    }

    /// Restores sub-heads for `groups` widths from their stored bytes (`snapshot::to_bytes`).
    pub fn from_bytes(
        bytes: &[u8],
        classes: usize,
        groups: &[usize],
        device: &Device,
    ) -> Result<Self, BackendError> {
        let mut heads = Self::new(classes, groups, device);
        snapshot::load(&mut heads, bytes, "head")?;
        Ok(heads)
    }
}

/// The stored bytes of a head with random weights for `groups`, in the form training stores.
#[cfg(test)]
pub(crate) fn untrained_head(classes: usize, groups: &[usize], device: &Device) -> Vec<u8> {
    match groups {
        [_] => ClassifierHead::new(classes, groups, device).to_bytes(),
        _ => snapshot::to_bytes(&GroupedHead::new(classes, groups, device)),
    }
    .expect("a head serialises")
}

/// A dense layer's values: `weight` `[inputs, outputs]` row-major.
struct Dense {
    weight: Vec<f32>,
    inputs: usize,
    outputs: usize,
    bias: Vec<f32>,
}

impl Dense {
    fn of(linear: &Linear) -> Self {
        let [inputs, outputs] = linear.weight.dims();
        Self {
            weight: tensor_values(linear.weight.val()),
            inputs,
            outputs,
            bias: linear
                .bias
                .as_ref()
                .map_or_else(|| vec![0.0; outputs], |b| tensor_values(b.val())),
        }
    }

    fn block_diagonal(blocks: &[&Dense]) -> Self {
        let inputs = blocks.iter().map(|b| b.inputs).sum();
        let outputs = blocks.iter().map(|b| b.outputs).sum();
        let mut weight = vec![0.0; inputs * outputs];
        let (mut row, mut column) = (0, 0);
        for block in blocks {
            for (i, values) in block.weight.chunks_exact(block.outputs).enumerate() {
                let at = (row + i) * outputs + column;
                weight[at..at + block.outputs].copy_from_slice(values);
            }
            row += block.inputs;
            column += block.outputs;
        }
        let bias = blocks.iter().flat_map(|b| b.bias.iter().copied()).collect();
        Self {
            weight,
            inputs,
            outputs,
            bias,
        }
    }

    fn stacked(blocks: &[&Dense]) -> Self {
        let outputs = blocks[0].outputs;
        let mut bias = vec![0.0; outputs];
        for block in blocks {
            bias.iter_mut()
                .zip(&block.bias)
                .for_each(|(sum, b)| *sum += b);
        }
        Self {
            weight: blocks
                .iter()
                .flat_map(|b| b.weight.iter().copied())
                .collect(),
            inputs: blocks.iter().map(|b| b.inputs).sum(),
            outputs,
            bias,
        }
    }
}

/// A head's parameters as values: the batch norm's gamma, beta, running mean and variance,
/// then its three dense layers.
struct HeadValues {
    norm: [Vec<f32>; 4],
    dense: [Dense; 3],
}

impl HeadValues {
    fn of(head: &ClassifierHead) -> Self {
        Self {
            norm: [
                tensor_values(head.norm.gamma.val()),
                tensor_values(head.norm.beta.val()),
                tensor_values(head.norm.running_mean.value()),
                tensor_values(head.norm.running_var.value()),
            ],
            dense: [
                Dense::of(&head.dense1),
                Dense::of(&head.dense2),
                Dense::of(&head.output),
            ],
        }
    }
}

impl ClassifierHead {
    fn set_norm(&mut self, [gamma, beta, mean, var]: [Vec<f32>; 4], device: &Device) {
        let vector = |values: Vec<f32>| {
            let length = values.len();
            Tensor::<1>::from_data(TensorData::new(values, [length]), device)
        };
        self.norm.gamma = Param::from_tensor(vector(gamma));
        self.norm.beta = Param::from_tensor(vector(beta));
        self.norm.running_mean = RunningState::new(vector(mean));
        self.norm.running_var = RunningState::new(vector(var));
    }

    fn set_dense(&mut self, layer: usize, dense: Dense, device: &Device) {
        let linear = match layer {
            0 => &mut self.dense1,
            1 => &mut self.dense2,
            _ => &mut self.output,
        };
        let outputs = dense.outputs;
        linear.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(dense.weight, [dense.inputs, outputs]),
            device,
        ));
        linear.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(dense.bias, [outputs]),
            device,
        )));
    }
}

fn tensor_values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_into_vec().expect("f32 parameters")
}

/// Feature rows (of one width) → `[rows, width]` tensor.
pub fn features_tensor(features: &[Vec<f32>], device: &Device) -> Tensor<2> {
    let width = features.first().map_or(0, Vec::len);
    let values: Vec<f32> = features.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(values, [features.len(), width]), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::FEATURE_DIM;

    /// The exported form of a head (batch norm folded into the first dense layer) computes what
    /// the head computes, with non-trivial batch-norm statistics.
    #[test]
    fn dense_layers_compute_the_head() {
        let device = Device::flex();
        let mut head = ClassifierHead::new(3, &[FEATURE_DIM], &device);
        // Training-mode passes move the running statistics away from 0 / 1.
        let shifted: Vec<Vec<f32>> = (0..8)
            .map(|row| {
                (0..FEATURE_DIM)
                    .map(|i| ((row * 31 + i * 7) % 13) as f32 * 0.3 + 0.5)
                    .collect()
            })
            .collect();
        head.norm = BatchNormConfig::new(FEATURE_DIM)
            .with_epsilon(1e-3)
            .with_momentum(0.5)
            .init(&device);
        head.norm.forward(features_tensor(&shifted, &device));
        let features = &shifted[..3];
        let expected = rows(head.forward(features_tensor(features, &device)));
        let layers = head.dense_layers();
        assert_eq!(layers.len(), 3);
        for (x, expected) in features.iter().zip(expected) {
            let mut x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
            for layer in &layers {
                let mut y: Vec<f64> = layer.bias.iter().map(|&b| f64::from(b)).collect();
                for (i, row) in layer.weight.chunks_exact(layer.outputs).enumerate() {
                    for (o, w) in row.iter().enumerate() {
                        y[o] += x[i] * f64::from(*w);
                    }
                }
                if layer.relu {
                    y.iter_mut().for_each(|v| *v = v.max(0.0));
                }
                x = y;
            }
            for (ours, theirs) in x.iter().zip(&expected) {
                assert!(
                    (ours - f64::from(*theirs)).abs() < 1e-4,
                    "{ours} vs {theirs}"
                );
            }
        }
    }

    /// The merged head computes the sum of its sub-heads' logits (with non-trivial batch-norm
    /// statistics), and so does the merged head of the sub-heads' stored bytes.
    #[test]
    fn merged_sub_heads_sum_their_logits() {
        let device = Device::flex();
        let groups = [6, 4];
        let mut heads = GroupedHead::new(3, &groups, &device);
        for (index, head) in heads.heads.iter_mut().enumerate() {
            let width = head.inputs();
            let mean = (0..width).map(|i| i as f32 * 0.1 + index as f32).collect();
            let var = (0..width).map(|i| 0.5 + i as f32 * 0.2).collect();
            let gamma = (0..width).map(|i| 1.0 + i as f32 * 0.05).collect();
            head.set_norm([gamma, vec![0.3; width], mean, var], &device);
        }
        let features: Vec<Vec<f32>> = (0..4)
            .map(|row| {
                (0..10)
                    .map(|i| ((row * 7 + i * 3) % 5) as f32 - 1.5)
                    .collect()
            })
            .collect();
        let logits =
            |head: &ClassifierHead| rows(head.forward(features_tensor(&features, &device)));
        let parts = heads.group_logits(features_tensor(&features, &device));
        let expected: Vec<Vec<f32>> = rows(parts[0].clone() + parts[1].clone());
        let merged = heads.merged(&device);
        assert_eq!(merged.inputs(), 10);
        let close = |a: &[Vec<f32>], b: &[Vec<f32>]| {
            a.iter()
                .flatten()
                .zip(b.iter().flatten())
                .all(|(x, y)| (x - y).abs() < 1e-5)
        };
        assert!(close(&logits(&merged), &expected));
        let bytes = snapshot::to_bytes(&heads).unwrap();
        let restored = ClassifierHead::from_bytes(&bytes, 3, &groups, &device).unwrap();
        assert!(close(&logits(&restored), &expected));
    }
}
