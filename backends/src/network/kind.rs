//! Which backbones ship, their block tables and the widths they share.

use serde::{Deserialize, Serialize};

/// Width of the final map both backbones pool: the whole feature vector with
/// [`Pooling::Final`], its first part (the *embedding* novelty and drift measure) otherwise.
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

/// Which activations a backbone's feature vector averages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The final 1280-channel map (the original project's features).
    #[default]
    Final,
    /// The final map, then each block's depthwise output (after its ReLU6) in execution order,
    /// each averaged per channel: the earlier blocks' textures and colours tell leaf spots apart
    /// better than the ImageNet-specific end alone (cross-validated with a linear head: 0.945
    /// against 0.897; every ReLU6 output, expansions included, 0.944 at twice the width;
    /// the README's *Training*).
    EveryBlock,
    /// Every block's means, then a second-order (texture) pool of the fourth stage's output
    /// (MobileNetV2: 64 channels at 14 × 14): the upper triangle of the channel products
    /// averaged over positions, signed square root, unit length. The head reads the two groups
    /// with one sub-head each, their logits summed (late fusion: each must fit alone, which a
    /// jointly trained head does not ask). Cross-validated with linear heads 0.955 against
    /// every-block's 0.945 (the README's *Training*).
    EveryBlockTexture,
}

impl Pooling {
    pub const ALL: [Pooling; 3] = [
        Pooling::Final,
        Pooling::EveryBlock,
        Pooling::EveryBlockTexture,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pooling::Final => "final",
            Pooling::EveryBlock => "every_block",
            Pooling::EveryBlockTexture => "every_block_texture",
        }
    }

    /// True when the block's depthwise outputs are averaged into the features.
    pub fn pools_blocks(self) -> bool {
        self != Pooling::Final
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|pooling| pooling.name() == name)
    }
}

/// The part of a feature vector that novelty and drift measure, the same under every pooling:
/// the final map's means, which come first.
pub fn embedding(features: &[f32]) -> &[f32] {
    &features[..FEATURE_DIM.min(features.len())]
}

/// What a feature extractor computes: a backbone's features under a pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeatureSpec {
    pub backbone: BackboneKind,
    pub pooling: Pooling,
}

impl FeatureSpec {
    pub fn new(backbone: BackboneKind, pooling: Pooling) -> Self {
        Self { backbone, pooling }
    }

    /// The original features of `backbone` (the final map averaged).
    pub fn final_map(backbone: BackboneKind) -> Self {
        Self::new(backbone, Pooling::Final)
    }

    /// Width of the feature vector.
    pub fn dim(self) -> usize {
        self.head_groups().iter().sum()
    }

    /// Widths of the feature groups, in order, that the head reads with one sub-head each.
    pub fn head_groups(self) -> Vec<usize> {
        let means = FEATURE_DIM + self.backbone.depthwise_channels();
        match self.pooling {
            Pooling::Final => vec![FEATURE_DIM],
            Pooling::EveryBlock => vec![means],
            Pooling::EveryBlockTexture => {
                let channels = self.backbone.texture_channels();
                vec![means, channels * (channels + 1) / 2]
            }
        }
    }

    /// A stable name, the key features are cached under: the backbone's name for the final
    /// map (as before pooling was a choice), `{backbone}+{pooling}` otherwise.
    pub fn cache_name(self) -> String {
        match self.pooling {
            Pooling::Final => self.backbone.name().to_string(),
            pooling => format!("{}+{}", self.backbone.name(), pooling.name()),
        }
    }
}

impl std::fmt::Display for FeatureSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} pooling)", self.backbone, self.pooling.name())
    }
}

impl std::fmt::Display for BackboneKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The stage whose output the texture pool reads (14 × 14 at 224, the last before the stride-1
/// wide stages; the study's `cov64`).
const TEXTURE_STAGE: usize = 3;

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
    /// Channels of the blocks' depthwise outputs, summed.
    pub fn depthwise_channels(self) -> usize {
        let mut total = 0;
        let mut in_channels = STEM_CHANNELS;
        for stage in self.stages() {
            for _ in 0..stage.repeats {
                total += in_channels * stage.expand;
                in_channels = stage.channels;
            }
        }
        total
    }

    /// Index of the block whose output the texture pool reads: the last of the fourth stage.
    pub fn texture_block(self) -> usize {
        self.stages()[..=TEXTURE_STAGE]
            .iter()
            .map(|stage| stage.repeats)
            .sum::<usize>()
            - 1
    }

    /// Channels of the texture block's output.
    pub fn texture_channels(self) -> usize {
        self.stages()[TEXTURE_STAGE].channels
    }

    /// The block table of this backbone.
    pub(super) fn stages(self) -> &'static [Stage] {
        match self {
            BackboneKind::MobilenetV2 => MOBILENET_V2_STAGES,
            BackboneKind::EfficientnetLite0 => EFFICIENTNET_LITE0_STAGES,
        }
    }
}
