//! Writes a shipped backbone as ONNX, e.g. to inspect it or to quantise it offline:
//!
//! ```text
//! cargo run -p sprig-backends --example export_onnx -- mobilenet_v2 /tmp/mobilenet_v2.onnx [--int8] [--every-block | --texture]
//! ```
//!
//! `--int8` writes the QDQ form on the backbone's QAT grid (MobileNetV2 only), as
//! `openvino.precision = "int8"` serves it; `--every-block` the features of
//! `training.pooling = "every_block"`, `--texture` those of `"every_block_texture"`.

use burn::tensor::Device;
use sprig_backends::network::{imagenet_weights, int8_grid, BackboneWeights};
use sprig_backends::onnx_export::export;
use sprig_backends::{BackboneKind, Pooling};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(kind), Some(path)) = (args.next(), args.next()) else {
        return Err(
            "usage: export_onnx <mobilenet_v2|efficientnet_lite0> <out.onnx> [--int8]".into(),
        );
    };
    let kind = BackboneKind::parse(&kind).ok_or_else(|| format!("unknown backbone {kind}"))?;
    let (mut grid, mut pooling) = (None, Pooling::Final);
    for option in args {
        match option.as_str() {
            "--int8" => grid = Some(int8_grid(kind).ok_or(format!("{kind} has no int8 grid"))?),
            "--every-block" => pooling = Pooling::EveryBlock,
            "--texture" => pooling = Pooling::EveryBlockTexture,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let backbone = BackboneWeights::load(kind, imagenet_weights(kind), &Device::flex())?;
    std::fs::write(&path, export(&backbone, pooling, grid))?;
    println!("wrote {kind} to {path}");
    Ok(())
}
