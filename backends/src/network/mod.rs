//! The inverted-residual backbone family (MobileNetV2, EfficientNet-Lite0) written once,
//! driven by a block table, and loaded from torchvision-style safetensors through burn's store.
//!
//! This file only names the parts; they import each other directly, never through it.

mod backbone;
mod int8_grid;
mod kind;
mod layers;
mod load;
mod weights;

pub use backbone::{pixels_tensor, rows, Backbone, BackboneTail, FoldedBackbone};
pub use int8_grid::{
    int8_grid, quantize_bias, quantize_weights, ActivationGrid, ConvGrid, Int8Grid, Int8Weights,
};
pub use kind::{embedding, BackboneKind, FeatureSpec, Pooling, FEATURE_DIM, INPUT_SCALE};
pub use layers::{second_order, ConvBn, FoldedBlock, FoldedConv, InvertedResidual};
pub use load::{load_backbone, BackboneWeights};
pub use weights::imagenet_weights;
