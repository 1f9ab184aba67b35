//! The INT8 grid of the QAT MobileNetV2: sprig's MobileNetV2 weights are Google's
//! quantisation-aware-trained uint8 TFLite model dequantised, and that model's own grid (weight
//! scales, each activation's uint8 scale and zero point) is what lets INT8 keep float32's accuracy
//! (`backends/BENCHMARKS.md`, "INT8 that keeps accuracy"). Post-hoc grids (per-channel max|w|/127
//! weights) lost 1–2 points. EfficientNet-Lite0 was trained in float and has no such grid.
//!
//! `models/mobilenet_v2/int8_grid.json` (made by `make_int8_grid.py` beside it) lists the grids in
//! the order the exporter writes the graph.

use std::sync::OnceLock;

use serde::Deserialize;

use super::kind::BackboneKind;
use super::layers::FoldedConv;

static MOBILENET_V2_GRID: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/mobilenet_v2/int8_grid.json"
));

/// A uint8 activation grid: `real = scale · (q − zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct ActivationGrid {
    pub scale: f32,
    pub zero_point: u8,
}

/// One convolution's grid: its weights' per-tensor scale, its (activated) output's grid.
#[derive(Debug, Clone, Deserialize)]
pub struct ConvGrid {
    /// The torchvision name of the convolution (for messages).
    pub name: String,
    pub weight_scale: f32,
    pub output: ActivationGrid,
}

/// The grids of one backbone, in graph order.
#[derive(Debug, Clone, Deserialize)]
pub struct Int8Grid {
    pub input: ActivationGrid,
    pub convs: Vec<ConvGrid>,
    /// The residual additions' outputs.
    pub adds: Vec<ActivationGrid>,
}

/// The shipped grid of `kind`, if it has one (MobileNetV2 only).
pub fn int8_grid(kind: BackboneKind) -> Option<&'static Int8Grid> {
    static GRID: OnceLock<Int8Grid> = OnceLock::new();
    match kind {
        BackboneKind::MobilenetV2 => Some(GRID.get_or_init(|| {
            serde_json::from_str(MOBILENET_V2_GRID).expect("the shipped int8_grid.json parses")
        })),
        BackboneKind::EfficientnetLite0 => None,
    }
}

/// A convolution's weights as per-output-channel symmetric int8: `w ≈ scales[c] · values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Weights {
    pub values: Vec<i8>,
    pub scales: Vec<f32>,
    /// Output channels whose scale is the QAT weight scale itself (their weights are exact when
    /// they are the shipped ones).
    pub exact_channels: usize,
}

/// `layer`'s weights on the QAT grid: each weight rounded to a multiple of `grid_scale` (the
/// shipped weights are exactly such multiples), kept per channel as int8 at `grid_scale` where
/// the channel's multiples fit in [−128, 127], else at the finest scale `grid_scale · k` that fits
/// (59 of MobileNetV2's 17 056 channels: the TFLite grid is uint8 with a zero point, and those
/// channels sit far from it).
pub fn quantize_weights(layer: &FoldedConv, grid_scale: f32) -> Int8Weights {
    let per_channel = layer.weight.len() / layer.out_channels();
    let mut values = Vec::with_capacity(layer.weight.len());
    let mut scales = Vec::with_capacity(layer.out_channels());
    let mut exact_channels = 0;
    for channel in layer.weight.chunks_exact(per_channel) {
        let steps: Vec<f64> = channel
            .iter()
            .map(|&w| (f64::from(w) / f64::from(grid_scale)).round())
            .collect();
        let (low, high) = steps
            .iter()
            .fold((0.0f64, 0.0f64), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        let need = (-low / 128.0).max(high / 127.0);
        let factor = if need <= 1.0 {
            exact_channels += 1;
            1.0
        } else {
            need
        };
        values.extend(
            steps
                .iter()
                .map(|s| (s / factor).round().clamp(-128.0, 127.0) as i8),
        );
        scales.push((f64::from(grid_scale) * factor) as f32);
    }
    Int8Weights {
        values,
        scales,
        exact_channels,
    }
}

/// A bias as int32 on the grid the convolution's accumulator has: input scale × weight scale.
pub fn quantize_bias(
    bias: &[f32],
    input_scale: f32,
    weight_scales: &[f32],
) -> (Vec<i32>, Vec<f32>) {
    let scales: Vec<f32> = weight_scales.iter().map(|s| input_scale * s).collect();
    let values = bias
        .iter()
        .zip(&scales)
        .map(|(&b, &s)| (f64::from(b) / f64::from(s)).round() as i32)
        .collect();
    (values, scales)
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::super::load::BackboneWeights;
    use super::super::weights::imagenet_weights;
    use super::*;

    /// The shipped ImageNet weights' convolutions, batch norms folded, in graph order.
    fn convs(kind: BackboneKind) -> Vec<FoldedConv> {
        let backbone = BackboneWeights::load(kind, imagenet_weights(kind), &Device::flex());
        let folded = backbone.unwrap().folded();
        let mut convs = vec![folded.stem];
        for block in folded.blocks {
            convs.extend(block.expand);
            convs.push(block.depthwise);
            convs.push(block.project);
        }
        convs.push(folded.head);
        convs
    }

    /// The grid lines up with the exported graph (52 convolutions, 10 additions, ReLU6 outputs on
    /// 6/255 within 1e-6: the QAT ranges end at 5.9998), and the shipped weights are on it: 16 997
    /// of 17 056 channels exact as int8, the other 59 within half a step of their coarser scale.
    #[test]
    fn shipped_weights_sit_on_the_qat_grid() {
        let grid = int8_grid(BackboneKind::MobilenetV2).unwrap();
        let layers = convs(BackboneKind::MobilenetV2);
        assert_eq!((grid.convs.len(), grid.adds.len()), (layers.len(), 10));
        assert_eq!(grid.input.scale, 1.0 / 128.0);
        assert_eq!(grid.input.zero_point, 128);
        let (mut exact, mut channels) = (0, 0);
        for (layer, conv) in layers.iter().zip(&grid.convs) {
            if layer.relu6 {
                assert!(
                    (conv.output.scale - 6.0 / 255.0).abs() < 2e-6,
                    "{}",
                    conv.name
                );
                assert_eq!(conv.output.zero_point, 0, "{}", conv.name);
            }
            let weights = quantize_weights(layer, conv.weight_scale);
            exact += weights.exact_channels;
            channels += layer.out_channels();
            let per_channel = layer.weight.len() / layer.out_channels();
            for (c, row) in layer.weight.chunks_exact(per_channel).enumerate() {
                let scale = weights.scales[c];
                for (i, &w) in row.iter().enumerate() {
                    let back = scale * f32::from(weights.values[c * per_channel + i]);
                    let exact_channel = scale == conv.weight_scale;
                    // Half a step of the coarser scale, plus float rounding of the shipped
                    // weights (which sit on the grid to within 1e-3 of a step).
                    let rounding = 1e-3 * conv.weight_scale;
                    let allowed = if exact_channel { 0.0 } else { 0.5 * scale } + rounding;
                    assert!(
                        (back - w).abs() <= allowed,
                        "{} channel {c}: {back} vs {w}, scale {scale}, grid {}",
                        conv.name,
                        conv.weight_scale
                    );
                }
            }
        }
        assert_eq!((exact, channels), (16_997, 17_056));
        assert!(int8_grid(BackboneKind::EfficientnetLite0).is_none());
    }

    #[test]
    fn bias_lands_on_the_accumulator_grid() {
        let (values, scales) = quantize_bias(&[0.5, -0.25], 0.5, &[0.01, 0.1]);
        assert_eq!(scales, [0.005, 0.05]);
        assert_eq!(values, [100, -5]);
    }
}
