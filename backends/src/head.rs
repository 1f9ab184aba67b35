//! The original project's classifier head on top of the 1280-d backbone features:
//! BatchNorm → Dense 256 ReLU → Dropout 0.5 → Dense 128 ReLU → Dropout 0.3 → Dense N (→ softmax).

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::BackendError;
use crate::network::{rows, FEATURE_DIM};
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
    pub fn new(classes: usize, device: &Device) -> Self {
        Self {
            // Keras' BatchNormalization defaults (momentum 0.99 → burn's 0.01, eps 1e-3).
            norm: BatchNormConfig::new(FEATURE_DIM)
                .with_epsilon(1e-3)
                .with_momentum(0.01)
                .init(device),
            dense1: LinearConfig::new(FEATURE_DIM, 256).init(device),
            dropout1: DropoutConfig::new(0.5).init(),
            dense2: LinearConfig::new(256, 128).init(device),
            dropout2: DropoutConfig::new(0.3).init(),
            output: LinearConfig::new(128, classes).init(device),
        }
    }

    /// Features `[batch, 1280]` → logits `[batch, classes]`.
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

    /// Restores a head for `classes` classes from [`ClassifierHead::to_bytes`] output.
    pub fn from_bytes(bytes: &[u8], classes: usize, device: &Device) -> Result<Self, BackendError> {
        let mut head = Self::new(classes, device);
        snapshot::load(&mut head, bytes, "head")?;
        Ok(head)
    }
}

/// Feature rows → `[rows, 1280]` tensor.
pub fn features_tensor(features: &[Vec<f32>], device: &Device) -> Tensor<2> {
    let values: Vec<f32> = features.iter().flatten().copied().collect();
    Tensor::from_data(
        TensorData::new(values, [features.len(), FEATURE_DIM]),
        device,
    )
}
