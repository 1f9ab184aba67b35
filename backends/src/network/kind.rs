//! Which backbones ship, their block tables and the widths they share.

use serde::{Deserialize, Serialize};

/// Width of the pooled feature vector both backbones produce.
pub const FEATURE_DIM: usize = 1280;

/// Divisor of the input scaling `(pixel - zero_point) / INPUT_SCALE` both originals use.
pub const INPUT_SCALE: f32 = 128.0;

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
}

impl std::fmt::Display for BackboneKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Output channels of the stem convolution.
pub(super) const STEM_CHANNELS: usize = 32;

/// The block tables: (expand ratio, kernel, first stride, output channels, repeats) per stage.
pub(super) const MOBILENET_V2_STAGES: &[Stage] = &[
    Stage::new(1, 3, 1, 16, 1),
    Stage::new(6, 3, 2, 24, 2),
    Stage::new(6, 3, 2, 32, 3),
    Stage::new(6, 3, 2, 64, 4),
    Stage::new(6, 3, 1, 96, 3),
    Stage::new(6, 3, 2, 160, 3),
    Stage::new(6, 3, 1, 320, 1),
];

pub(super) const EFFICIENTNET_LITE0_STAGES: &[Stage] = &[
    Stage::new(1, 3, 1, 16, 1),
    Stage::new(6, 3, 2, 24, 2),
    Stage::new(6, 5, 2, 40, 2),
    Stage::new(6, 3, 2, 80, 3),
    Stage::new(6, 5, 1, 112, 3),
    Stage::new(6, 5, 2, 192, 4),
    Stage::new(6, 3, 1, 320, 1),
];

/// One stage of a block table: `repeats` blocks, the first with stride `stride`.
pub(super) struct Stage {
    pub(super) expand: usize,
    pub(super) kernel: usize,
    pub(super) stride: usize,
    pub(super) channels: usize,
    pub(super) repeats: usize,
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

impl BackboneKind {
    /// The block table of this backbone.
    pub(super) fn stages(self) -> &'static [Stage] {
        match self {
            BackboneKind::MobilenetV2 => MOBILENET_V2_STAGES,
            BackboneKind::EfficientnetLite0 => EFFICIENTNET_LITE0_STAGES,
        }
    }
}
