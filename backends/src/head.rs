//! The original project's classifier head on top of the backbone features (1280 wide, or wider
//! with every-block pooling):
//! BatchNorm → Dense 256 ReLU → Dropout 0.5 → Dense 128 ReLU → Dropout 0.3 → Dense N (→ softmax).

use burn::module::Module;
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

impl ClassifierHead {
    /// A head reading `inputs` features.
    pub fn new(classes: usize, inputs: usize, device: &Device) -> Self {
        Self {
            // Keras' BatchNormalization defaults (momentum 0.99 → burn's 0.01, eps 1e-3).
            norm: BatchNormConfig::new(inputs)
                .with_epsilon(1e-3)
                .with_momentum(0.01)
                .init(device),
            dense1: LinearConfig::new(inputs, 256).init(device),
            dropout1: DropoutConfig::new(0.5).init(),
            dense2: LinearConfig::new(256, 128).init(device),
            dropout2: DropoutConfig::new(0.3).init(),
            output: LinearConfig::new(128, classes).init(device),
        }
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

    /// Serialises the head's weights (safetensors bytes).
    pub fn to_bytes(&self) -> Result<Vec<u8>, BackendError> {
        snapshot::to_bytes(self)
    }

    /// Restores a head for `classes` classes reading `inputs` features from
    /// [`ClassifierHead::to_bytes`] output.
    pub fn from_bytes(
        bytes: &[u8],
        classes: usize,
        inputs: usize,
        device: &Device,
    ) -> Result<Self, BackendError> {
        let mut head = Self::new(classes, inputs, device);
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
        fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
            tensor.into_data().try_into_vec().expect("f32 parameters")
        }
        let layer = |linear: &Linear, relu: bool| {
            let [inputs, outputs] = linear.weight.dims();
            DenseLayer {
                weight: values(linear.weight.val()),
                inputs,
                outputs,
                bias: linear
                    .bias
                    .as_ref()
                    .map_or_else(|| vec![0.0; outputs], |b| values(b.val())),
                relu,
            }
        };
        let mut first = layer(&self.dense1, true);
        let gamma = values(self.norm.gamma.val());
        let beta = values(self.norm.beta.val());
        let mean = values(self.norm.running_mean.value());
        let var = values(self.norm.running_var.value());
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
        let mut head = ClassifierHead::new(3, FEATURE_DIM, &device);
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
}
