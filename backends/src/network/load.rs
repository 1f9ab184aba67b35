//! Loading the shipped ImageNet weights (torchvision-style safetensors names) into the backbone
//! through burn's store, with a fine-tuned tail in place of the original one when given.

use burn::module::Module;
use burn::store::{KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::Device;

use super::backbone::Backbone;
use super::kind::BackboneKind;
use super::weights::imagenet_weights;
use crate::error::BackendError;

/// Where a layer of our module lives in a weight file's own naming scheme.
/// Each method returns the source prefix (conv weight at `{prefix}conv`, BN at `{prefix}bn`).
trait WeightNames: Sync {
    fn stem(&self) -> (String, String);
    fn head(&self) -> (String, String);
    /// `part` is 0 = expand, 1 = depthwise, 2 = project; `has_expand` tells the block's layout.
    fn block(&self, index: usize, part: usize, has_expand: bool) -> (String, String);
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
}

/// The naming scheme of `kind`'s weight file.
fn naming(kind: BackboneKind) -> &'static dyn WeightNames {
    match kind {
        BackboneKind::MobilenetV2 => &TorchvisionMobilenetNames,
        BackboneKind::EfficientnetLite0 => &EfficientnetNames,
    }
}

/// Loads the shipped ImageNet backbone of `kind`, with a fine-tuned tail (safetensors bytes of a
/// folded [`BackboneTail`] of `tail.0` blocks) in place of the original one when given.
pub fn load_backbone(
    kind: BackboneKind,
    tail: Option<(usize, &[u8])>,
    device: &Device,
) -> Result<Backbone, BackendError> {
    let backbone = BackboneWeights::load(kind, imagenet_weights(kind), device)?;
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
fn remapper(kind: BackboneKind) -> Result<KeyRemapper, BackendError> {
    let names = naming(kind);
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut conv_bn = |(conv, bn): (String, String), target: String| {
        pairs.push((conv, format!("{target}.conv")));
        pairs.push((bn, format!("{target}.bn")));
    };
    conv_bn(names.stem(), "backbone.stem".into());
    conv_bn(names.head(), "backbone.head".into());
    let mut index = 0;
    for stage in kind.stages() {
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
    let patterns = pairs
        .into_iter()
        .map(|(from, to)| (format!("^{}\\.", regex_escape(&from)), format!("{to}.")));
    KeyRemapper::from_pattern_iter(patterns).map_err(|e| BackendError::Weights(e.to_string()))
}

fn regex_escape(name: &str) -> String {
    name.replace('.', "\\.")
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
        load_weights(&mut wrapped, kind, weights)?;
        Ok(wrapped.backbone)
    }
}

fn load_weights<M: ModuleSnapshot>(
    module: &mut M,
    kind: BackboneKind,
    weights: &[u8],
) -> Result<(), BackendError> {
    let mut store = SafetensorsStore::from_bytes(Some(weights.to_vec()))
        .with_from_adapter(PyTorchToBurnAdapter)
        .remap(remapper(kind)?)
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

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, Tensor};

    use super::*;

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
