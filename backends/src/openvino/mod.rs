//! OpenVINO: its options (always compiled: config parses them) and, with the `openvino`
//! feature, the plugin.

mod options;
#[cfg(feature = "openvino")]
mod plugin;

pub use options::{OpenVinoOptions, OpenVinoPrecision};
#[cfg(feature = "openvino")]
pub use plugin::OpenVinoPlugin;
