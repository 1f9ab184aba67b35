//! The shipped ImageNet weights, embedded so the binary works from any directory.
//! Provenance and licenses: `models/README.md`.

use super::kind::BackboneKind;

static MOBILENET_V2: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/mobilenet_v2/mobilenet_v2_1.0_224_imagenet.safetensors"
));
static EFFICIENTNET_LITE0: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/efficientnet_lite0/efficientnet_lite0_imagenet.safetensors"
));

/// safetensors bytes of the ImageNet weights for `kind` (torchvision-style names).
pub fn imagenet_weights(kind: BackboneKind) -> &'static [u8] {
    match kind {
        BackboneKind::MobilenetV2 => MOBILENET_V2,
        BackboneKind::EfficientnetLite0 => EFFICIENTNET_LITE0,
    }
}
