//! How the `openvino` plugin runs a model: config always parses these, with or without the
//! plugin compiled in.

use serde::{Deserialize, Serialize};

/// The number format OpenVINO computes the backbone in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpenVinoPrecision {
    /// bfloat16 where the CPU computes it natively, else float32.
    #[default]
    Auto,
    Bf16,
    F32,
    /// int8 convolutions on the QAT grid the MobileNetV2 weights were trained on (within 0.1
    /// point of float32 on the beans photos); the rest of the graph, and EfficientNet-Lite0, which
    /// has no such grid, as `auto` would compute them.
    Int8,
}

/// How a loaded model runs under OpenVINO (config section `[openvino]`); ignored by
/// the other plugins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpenVinoOptions {
    /// Single-threaded streams (and infer requests) per loaded model, runs side by side; 0: one
    /// per core.
    pub streams: usize,
    /// Threads of one more compiled copy, lent only while no other run is in progress, so a lone
    /// request gets every core; 0: every core, 1: no such copy.
    pub intra_threads: usize,
    pub precision: OpenVinoPrecision,
}
