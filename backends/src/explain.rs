//! Visual explanations: Grad-CAM of a class on the backbone's last convolutional feature map,
//! computed with burn on the CPU (flex, and its autodiff for the gradient) whichever plugin
//! serves.
//!
//! The features are the global average of the last feature map `A` (`[1280, 7, 7]`), so the
//! gradient of the class logit `y` with respect to `A_k(i, j)` is the same at every position:
//! `∂y/∂f_k / 49`. Grad-CAM's channel weights (the spatial mean of that gradient) are therefore
//! `∂y/∂f_k` up to a constant, which autodiff takes through the head alone; the map is
//! `ReLU(Σ_k ∂y/∂f_k · A_k)`, scaled to a maximum of 1.
//!
//! With every-block pooling the head also reads each block's depthwise output `B` averaged the
//! same way, so the logit's gradient gives every pooled map its channel weights, and each map's
//! evidence `Σ_k ∂y/∂f_k · B_k(i, j) / (h·w)` is summed into the 7×7 cells its positions fall in
//! (the blocks' sides, 112 down to 7, are multiples of 7): the final map's Grad-CAM plus the
//! blocks' share of the evidence, on one grid, before the ReLU.

use std::io::Cursor;

use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use image::{ImageFormat, RgbImage};

use crate::artifact::ModelArtifact;
use crate::error::{guarded, BackendError};
use crate::head::DenseLayer;
use crate::network::{load_backbone, pixels_tensor, Backbone, Pooling};
use crate::preprocess::{PreparedImage, INPUT_SIZE};

/// One version's network on flex, ready to explain its answers.
pub struct Explainer {
    backbone: Backbone,
    pooling: Pooling,
    head: Vec<DenseLayer>,
    device: Device,
}

/// Where in the image the evidence for `class` lies.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub class: usize,
    /// Side of the (square) map: the feature map's, 7 for a 224×224 input.
    pub side: usize,
    /// `side × side` row-major values in [0, 1] (all 0 when nothing speaks for the class).
    pub map: Vec<f32>,
}

impl Explainer {
    /// Loads the version's backbone (with its fine-tuned tail) and head on flex.
    pub fn new(artifact: &ModelArtifact) -> Result<Self, BackendError> {
        let device = Device::flex();
        let backbone =
            load_backbone(artifact.backbone, artifact.tail_ref(), &device)?.fold_batch_norms();
        let head = artifact.load_head(&device)?;
        Ok(Self {
            backbone,
            pooling: artifact.pooling,
            head: head.dense_layers(),
            device,
        })
    }

    /// The Grad-CAM map of `class` for `image`.
    pub fn explain(
        &self,
        image: &PreparedImage,
        class: usize,
    ) -> Result<Explanation, BackendError> {
        guarded(|| self.grad_cam(image, class))
    }

    fn grad_cam(&self, image: &PreparedImage, class: usize) -> Explanation {
        let input = self
            .backbone
            .normalize(pixels_tensor(std::slice::from_ref(image), &self.device));
        // (values, channels, side) of each pooled map, the final map first.
        let maps: Vec<(Vec<f32>, usize, usize)> = self
            .backbone
            .pooled_maps(input, self.pooling)
            .into_iter()
            .map(|map| {
                let [_, channels, side, _] = map.dims();
                (values(map), channels, side)
            })
            .collect();
        let side = maps[0].2;
        let features: Vec<f32> = maps
            .iter()
            .flat_map(|(activations, _, s)| {
                activations
                    .chunks_exact(s * s)
                    .map(move |a| a.iter().sum::<f32>() / (s * s) as f32)
            })
            .collect();
        let gradient = self.logit_gradient(&features, class);
        let mut cam = vec![0.0f32; side * side];
        let mut weights = gradient.as_slice();
        for (activations, channels, s) in &maps {
            let (own, rest) = weights.split_at(*channels);
            weights = rest;
            // Positions per cell along each axis; evidence is the mean over the cell's positions
            // (the final map: one position, plain Grad-CAM).
            let per_cell = s / side;
            let share = 1.0 / (per_cell * per_cell) as f32;
            for (weight, plane) in own.iter().zip(activations.chunks_exact(s * s)) {
                for (position, a) in plane.iter().enumerate() {
                    let (y, x) = (position / s / per_cell, position % s / per_cell);
                    cam[y * side + x] += weight * a * share;
                }
            }
        }
        let peak = cam.iter().copied().fold(0.0f32, f32::max);
        let map = cam
            .iter()
            .map(|&v| if peak > 0.0 { v.max(0.0) / peak } else { 0.0 })
            .collect();
        Explanation { class, side, map }
    }

    /// `∂ logit[class] / ∂ features`, by burn's autodiff through the head's dense layers.
    fn logit_gradient(&self, features: &[f32], class: usize) -> Vec<f32> {
        let device = self.device.clone().autodiff();
        let input = Tensor::<2>::from_data(
            TensorData::new(features.to_vec(), [1, features.len()]),
            &device,
        )
        .require_grad();
        let mut x = input.clone();
        for layer in &self.head {
            let weight = Tensor::<2>::from_data(
                TensorData::new(layer.weight.clone(), [layer.inputs, layer.outputs]),
                &device,
            );
            let bias = Tensor::<2>::from_data(
                TensorData::new(layer.bias.clone(), [1, layer.outputs]),
                &device,
            );
            x = x.matmul(weight) + bias;
            if layer.relu {
                x = relu(x);
            }
        }
        let logit = x.narrow(1, class, 1).sum();
        let gradients = logit.backward();
        let gradient = input
            .grad(&gradients)
            .expect("the features take part in the logit");
        values(gradient)
    }
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_into_vec().expect("f32 tensors")
}

/// `image` (the 224×224 network input) with `explanation` laid over it: the map upsampled
/// bilinearly and coloured from blue (no evidence) to red (the most), blended half and half;
/// PNG bytes.
pub fn overlay_png(image: &PreparedImage, explanation: &Explanation) -> Vec<u8> {
    let side = explanation.side;
    let sample = |y: f32, x: f32| -> f32 {
        // Cell centres at (i + 0.5) * INPUT_SIZE / side.
        let fy = (y * side as f32 / INPUT_SIZE as f32 - 0.5).clamp(0.0, (side - 1) as f32);
        let fx = (x * side as f32 / INPUT_SIZE as f32 - 0.5).clamp(0.0, (side - 1) as f32);
        let (y0, x0) = (fy.floor() as usize, fx.floor() as usize);
        let (y1, x1) = ((y0 + 1).min(side - 1), (x0 + 1).min(side - 1));
        let (ty, tx) = (fy - y0 as f32, fx - x0 as f32);
        let at = |y: usize, x: usize| explanation.map[y * side + x];
        let top = at(y0, x0) * (1.0 - tx) + at(y0, x1) * tx;
        let bottom = at(y1, x0) * (1.0 - tx) + at(y1, x1) * tx;
        top * (1.0 - ty) + bottom * ty
    };
    let pixels = image.pixels();
    let overlay = RgbImage::from_fn(INPUT_SIZE as u32, INPUT_SIZE as u32, |x, y| {
        let heat = colour(sample(y as f32 + 0.5, x as f32 + 0.5));
        let at = (y as usize * INPUT_SIZE + x as usize) * 3;
        let blend = |c: usize| ((f32::from(pixels[at + c]) + heat[c]) / 2.0).round() as u8;
        image::Rgb([blend(0), blend(1), blend(2)])
    });
    let mut png = Vec::new();
    overlay
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .expect("an RGB image encodes as PNG");
    png
}

/// Blue → cyan → yellow → red for `t` in [0, 1].
fn colour(t: f32) -> [f32; 3] {
    let t = t.clamp(0.0, 1.0);
    let ramp = |centre: f32| (1.5 - (4.0 * t - centre).abs()).clamp(0.0, 1.0) * 255.0;
    [ramp(3.0), ramp(2.0), ramp(1.0)]
}
