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
//! blocks' share of the evidence, on one grid, before the ReLU. With texture pooling the
//! texture block's positions add their first-order share of the logit (see `grad_cam`).

use std::io::Cursor;

use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use image::{ImageFormat, RgbImage};

use crate::artifact::ModelArtifact;
use crate::error::{guarded, BackendError};
use crate::head::DenseLayer;
use crate::network::{load_backbone, pixels_tensor, second_order, Backbone, Pooling};
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
        let pooled = self.backbone.pooled_maps(input, self.pooling);
        // (values, channels, side) of each averaged map, the final map first.
        let maps: Vec<Map> = pooled.means.into_iter().map(Map::new).collect();
        let texture = pooled.texture.map(Map::new);
        let side = maps[0].side;
        let means = channel_means(&maps);
        let (gradient, texture_gradient) = self.logit_gradient(&means, texture.as_ref(), class);
        let mut cam = vec![0.0f32; side * side];
        let mut weights = gradient.as_slice();
        for map in &maps {
            let (own, rest) = weights.split_at(map.channels);
            weights = rest;
            // Evidence is the mean over the cell's positions (the final map: one position,
            // plain Grad-CAM).
            let share = 1.0 / (map.side * map.side) as f32;
            for (weight, plane) in own.iter().zip(map.planes()) {
                for (position, a) in plane.iter().enumerate() {
                    cam[map.cell(position, side)] += weight * a * share;
                }
            }
        }
        // The texture pool is a mean of per-position products x_p x_pᵀ, so the logit's first-order
        // share of position p is ½ Σ_k x_k(p) ∂y/∂x_k(p) (the gradient counts each product twice).
        // The pool is scale-free (unit length), so these shares sum to zero: the texture moves
        // evidence between positions, towards those whose texture speaks for the class.
        if let (Some(map), Some(gradient)) = (&texture, texture_gradient) {
            let evidence = texture_evidence(map, &gradient, side);
            cam.iter_mut().zip(evidence).for_each(|(c, e)| *c += e);
        }
        let peak = cam.iter().copied().fold(0.0f32, f32::max);
        let map = cam
            .iter()
            .map(|&v| if peak > 0.0 { v.max(0.0) / peak } else { 0.0 })
            .collect();
        Explanation { class, side, map }
    }

    /// `∂ logit[class] / ∂ means` and, with a texture map, `∂ logit[class] / ∂ map`, by burn's
    /// autodiff through the texture pool and the head's dense layers.
    fn logit_gradient(
        &self,
        means: &[f32],
        texture: Option<&Map>,
        class: usize,
    ) -> (Vec<f32>, Option<Vec<f32>>) {
        let device = self.device.clone().autodiff();
        let input =
            Tensor::<2>::from_data(TensorData::new(means.to_vec(), [1, means.len()]), &device)
                .require_grad();
        let texture_input = texture.map(|map| {
            let shape = [1, map.channels, map.side, map.side];
            Tensor::<4>::from_data(TensorData::new(map.values.clone(), shape), &device)
                .require_grad()
        });
        let mut x = match &texture_input {
            Some(map) => Tensor::cat(vec![input.clone(), second_order(map.clone())], 1),
            None => input.clone(),
        };
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
        let gradient =
            |tensor: Tensor<2>| values(tensor.grad(&gradients).expect("part of the logit"));
        let texture_gradient = texture_input.map(|map| {
            values(
                map.grad(&gradients)
                    .expect("the texture takes part in the logit"),
            )
        });
        (gradient(input), texture_gradient)
    }
}

/// The maps' channel means, in order: the features the head reads first.
fn channel_means(maps: &[Map]) -> Vec<f32> {
    maps.iter()
        .flat_map(|map| {
            let area = (map.side * map.side) as f32;
            map.planes().map(move |a| a.iter().sum::<f32>() / area)
        })
        .collect()
}

/// Per cell of a `grid × grid` map, the texture map's positions' first-order shares of the logit,
/// `½ Σ_k x_k(p) ∂y/∂x_k(p)`, from the map and the logit's gradient with respect to it.
fn texture_evidence(map: &Map, gradient: &[f32], grid: usize) -> Vec<f32> {
    let mut cells = vec![0.0f32; grid * grid];
    for (plane, grads) in map.planes().zip(gradient.chunks_exact(map.side * map.side)) {
        for (position, (a, g)) in plane.iter().zip(grads).enumerate() {
            cells[map.cell(position, grid)] += 0.5 * a * g;
        }
    }
    cells
}

/// One pooled map of a single image: `channels` planes of `side × side` values.
struct Map {
    values: Vec<f32>,
    channels: usize,
    side: usize,
}

impl Map {
    fn new(tensor: Tensor<4>) -> Self {
        let [_, channels, side, _] = tensor.dims();
        Self {
            values: values(tensor),
            channels,
            side,
        }
    }

    fn planes(&self) -> std::slice::ChunksExact<'_, f32> {
        self.values.chunks_exact(self.side * self.side)
    }

    /// The cell of a `grid × grid` map that `position` of this map falls in (the maps' sides,
    /// 112 down to 7, are multiples of the final map's 7).
    fn cell(&self, position: usize, grid: usize) -> usize {
        let per_cell = self.side / grid;
        (position / self.side / per_cell) * grid + position % self.side / per_cell
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::untrained_head;
    use crate::network::{BackboneKind, FeatureSpec};

    /// With texture pooling the texture block's positions get evidence, and it sums to zero
    /// over the positions (the pool is scale-free: ½ Σ_p x·∂y/∂x = Σ C·∂y/∂C = 0); a gradient
    /// taken or weighted wrongly breaks the sum.
    #[test]
    fn texture_evidence_is_nonzero_and_sums_to_zero() {
        let spec = FeatureSpec::new(BackboneKind::MobilenetV2, Pooling::EveryBlockTexture);
        let device = Device::flex();
        let artifact = ModelArtifact {
            backbone: spec.backbone,
            pooling: spec.pooling,
            classes: vec!["a".into(), "b".into(), "c".into()],
            head: untrained_head(3, &spec.head_groups(), &device),
            tail: None,
            test_time: Default::default(),
        };
        let explainer = Explainer::new(&artifact).unwrap();
        let pixels = (0..INPUT_SIZE * INPUT_SIZE * 3)
            .map(|i| (i as u8).wrapping_mul(7) ^ (i / 900) as u8)
            .collect();
        let image = PreparedImage::from_pixels(pixels).unwrap();
        let input = explainer
            .backbone
            .normalize(pixels_tensor(std::slice::from_ref(&image), &device));
        let pooled = explainer.backbone.pooled_maps(input, spec.pooling);
        let maps: Vec<Map> = pooled.means.into_iter().map(Map::new).collect();
        let texture = Map::new(pooled.texture.unwrap());
        assert_eq!((texture.channels, texture.side), (64, 14));
        let means = channel_means(&maps);
        let (_, gradient) = explainer.logit_gradient(&means, Some(&texture), 1);
        let evidence = texture_evidence(&texture, &gradient.unwrap(), 7);
        let magnitude: f32 = evidence.iter().map(|e| e.abs()).sum();
        let sum: f32 = evidence.iter().sum();
        assert!(magnitude > 0.0, "no texture evidence");
        // Measured 2026-12-06: sum 1.2e-9 against magnitude 5.1e-4 (float32 sums); the
        // gradient alone, without the activations, sums to all of its magnitude.
        assert!(
            sum.abs() < 1e-3 * magnitude,
            "sum {sum} of magnitude {magnitude}"
        );
        eprintln!("texture evidence: sum {sum:e}, magnitude {magnitude:e}");
        let explanation = explainer.explain(&image, 1).unwrap();
        assert_eq!(explanation.side, 7);
    }
}
