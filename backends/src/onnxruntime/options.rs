//! How the `onnxruntime` plugin runs a model: config always parses these, with or without the
//! plugin compiled in.

use serde::{Deserialize, Serialize};

/// How the `onnxruntime` plugin runs a model (config section `[onnxruntime]`); ignored by the
/// other plugins. 0 means one per available core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnnxRuntimeOptions {
    /// Single-threaded sessions per loaded model (runs side by side; the server starts a worker
    /// per session).
    pub sessions: usize,
    /// Intra-op threads of one more session, lent only while no other run is in progress, so a
    /// lone request gets every core; 1 = no such session.
    pub intra_threads: usize,
}
