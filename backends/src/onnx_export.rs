//! Writes a loaded [`Backbone`] as an ONNX model, so inference engines such as ONNX Runtime can
//! run the very weights the burn plugins use.
//!
//! The graph is what [`Backbone::forward`] computes, with every batch norm folded into its
//! convolution: `Conv` (explicit TensorFlow-SAME pads for a 224×224 input, folded bias),
//! `Clip(0, 6)` for ReLU6, `Add` for residuals, then `GlobalAveragePool` + `Flatten`. Input
//! `input`: `[batch, 3, 224, 224]` float32, already normalised by [`Backbone::normalize`]'s rule;
//! output `features`: `[batch, 1280]`, or with [`Pooling::EveryBlock`] the concatenation
//! [`Backbone::forward_pooled`] computes (each block's depthwise output through its own
//! `GlobalAveragePool`; with [`Pooling::EveryBlockTexture`] the texture block's output through
//! `MatMul` with its transpose, `Gather` of the upper triangle, signed square root and
//! `ReduceL2`). The batch dimension is dynamic.
//!
//! With an [`Int8Grid`] (MobileNetV2's QAT grid) the same graph is written in QDQ form, which
//! runtimes such as OpenVINO run in int8 kernels: `QuantizeLinear` → `DequantizeLinear` (uint8, per
//! tensor) on the input and after every convolution (+ Clip) and residual `Add`; weights as int8
//! per output channel and biases as int32, each behind a `DequantizeLinear` (axis 0).
//!
//! The protobuf is written by hand (a few dozen lines) rather than through generated bindings:
//! the model needs five message types and no parsing.

use crate::head::DenseLayer;
use crate::network::{
    quantize_bias, quantize_weights, ActivationGrid, Backbone, BackboneKind, FoldedConv, Int8Grid,
    Pooling, INPUT_SCALE,
};
use crate::preprocess::{PreparedImage, INPUT_SIZE};

/// Name of the graph input (normalised NCHW float32 pixels).
pub const INPUT_NAME: &str = "input";
/// Name of the graph output (pooled features).
pub const OUTPUT_NAME: &str = "features";
/// Operator set the graph is written against (`Clip` takes min/max as inputs since 13).
pub const OPSET_VERSION: i64 = 13;
/// ONNX IR version 7 is the first to carry opset 13; older runtimes accept it too.
const IR_VERSION: i64 = 7;
/// `TensorProto.DataType.FLOAT`.
const FLOAT: i64 = 1;
/// `TensorProto.DataType.UINT8`, `INT8`, `INT32`.
const UINT8: i64 = 2;
const INT8: i64 = 3;
const INT32: i64 = 6;
const INT64: i64 = 7;
/// `AttributeProto.AttributeType.INTS`.
const ATTRIBUTE_INTS: i64 = 7;
/// `AttributeProto.AttributeType.INT`.
const ATTRIBUTE_INT: i64 = 2;
/// Names of the shared scalar initializers ReLU6's `Clip` nodes take as bounds.
const CLIP_MIN: &str = "relu6_min";
const CLIP_MAX: &str = "relu6_max";

/// The ONNX model (serialised `ModelProto`) of `backbone`'s features under `pooling`, in QDQ form
/// on `grid` if given.
pub fn export(backbone: &Backbone, pooling: Pooling, grid: Option<&Int8Grid>) -> Vec<u8> {
    let mut graph = GraphWriter {
        grid,
        ..GraphWriter::default()
    };
    let (_, width) = graph.backbone(backbone, pooling, INPUT_NAME, OUTPUT_NAME);
    graph.into_model(
        "sprig_backbone",
        &[3, INPUT_SIZE, INPUT_SIZE],
        (OUTPUT_NAME, width),
        &[],
    )
}

/// Name of a whole classifier's output (class probabilities).
pub const PROBABILITIES_NAME: &str = "probabilities";

/// A whole classifier as one float32 ONNX model: `backbone` (features under `pooling`), then the
/// `head` layers (`Gemm`, ReLU), logits divided by `temperature`, `Softmax` → `probabilities`
/// `[batch, classes]`. With `test_time_flip` the batch runs twice, as given and mirrored left to
/// right (`Slice` backwards along the width, `Concat`), and each image's two logit rows are
/// averaged (`Reshape` to `[2, batch, classes]`, `ReduceMean`) before the temperature: the
/// geometric mean of the two answers, as the served model gives it. `metadata` goes into the
/// model's `metadata_props`.
pub fn export_classifier(
    backbone: &Backbone,
    pooling: Pooling,
    head: &[DenseLayer],
    test_time_flip: bool,
    temperature: f32,
    metadata: &[(&str, &str)],
) -> Vec<u8> {
    let mut graph = GraphWriter::default();
    let input = match test_time_flip {
        true => graph.with_mirrored(INPUT_NAME),
        false => INPUT_NAME.to_string(),
    };
    let (mut x, _) = graph.backbone(backbone, pooling, &input, "pooled_features");
    for (index, layer) in head.iter().enumerate() {
        let (weight, bias) = (format!("dense{index}_weight"), format!("dense{index}_bias"));
        let dims = [layer.inputs as i64, layer.outputs as i64];
        graph.initializer(&weight, &dims, &layer.weight);
        graph.initializer(&bias, &[layer.outputs as i64], &layer.bias);
        x = graph.node("Gemm", &[&x, &weight, &bias], Vec::new());
        if layer.relu {
            x = graph.node("Relu", &[&x], Vec::new());
        }
    }
    let classes = head.last().map_or(0, |layer| layer.outputs);
    if test_time_flip {
        graph.tensor(
            "views_by_image",
            &[3],
            INT64,
            int64(&[2, -1, classes as i64]),
        );
        let views = graph.node("Reshape", &[&x, "views_by_image"], Vec::new());
        x = graph.node(
            "ReduceMean",
            &[&views],
            vec![ints_attribute("axes", &[0]), int_attribute("keepdims", 0)],
        );
    }
    graph.initializer("temperature", &[], &[temperature]);
    let scaled = graph.node("Div", &[&x, "temperature"], Vec::new());
    graph.output_node(
        "Softmax",
        &[&scaled],
        vec![int_attribute("axis", 1)],
        PROBABILITIES_NAME,
    );
    graph.into_model(
        "sprig_classifier",
        &[3, INPUT_SIZE, INPUT_SIZE],
        (PROBABILITIES_NAME, classes),
        metadata,
    )
}

impl GraphWriter<'_> {
    /// `input`'s batch followed by the same images mirrored left to right (NCHW: the last axis
    /// read backwards), as one batch twice as long.
    fn with_mirrored(&mut self, input: &str) -> String {
        self.tensor("mirror_starts", &[1], INT64, int64(&[-1]));
        self.tensor("mirror_ends", &[1], INT64, int64(&[i64::MIN]));
        self.tensor("mirror_axes", &[1], INT64, int64(&[3]));
        self.tensor("mirror_steps", &[1], INT64, int64(&[-1]));
        let mirrored = self.node(
            "Slice",
            &[
                input,
                "mirror_starts",
                "mirror_ends",
                "mirror_axes",
                "mirror_steps",
            ],
            Vec::new(),
        );
        self.node(
            "Concat",
            &[input, &mirrored],
            vec![int_attribute("axis", 0)],
        )
    }

    /// The backbone's nodes from `input` to the features under `pooling`, named `output`;
    /// returns that name and the features' width.
    fn backbone(
        &mut self,
        backbone: &Backbone,
        pooling: Pooling,
        input: &str,
        output: &str,
    ) -> (String, usize) {
        let folded = backbone.folded();
        let grid = self.grid;
        self.clip_bounds();

        let mut x = Activation {
            name: input.to_string(),
            size: INPUT_SIZE,
            scale: 1.0,
        };
        if let Some(grid) = grid {
            x = self.quantize(x, grid.input);
        }
        x = self.conv(&x, &folded.stem);
        // The depthwise outputs EveryBlock pools (as the QDQ form's int8 layers consume them).
        let mut taps = Vec::with_capacity(folded.blocks.len());
        let mut texture = None;
        for (index, block) in folded.blocks.iter().enumerate() {
            let input = x.clone();
            if let Some(expand) = &block.expand {
                x = self.conv(&x, expand);
            }
            x = self.conv(&x, &block.depthwise);
            taps.push((x.name.clone(), block.depthwise.out_channels()));
            x = self.conv(&x, &block.project);
            if block.residual {
                x.name = self.node("Add", &[&x.name, &input.name], Vec::new());
                if let Some(grid) = grid {
                    x = self.quantize(x, grid.adds[self.adds]);
                }
                self.adds += 1;
            }
            if index == backbone.texture_block() {
                texture = Some((x.clone(), block.project.out_channels()));
            }
        }
        x = self.conv(&x, &folded.head);
        let mut width = folded.head.out_channels();
        match pooling {
            Pooling::Final => {
                self.pooled(&x.name, Some(output));
            }
            Pooling::EveryBlock | Pooling::EveryBlockTexture => {
                let mut parts = vec![self.pooled(&x.name, None)];
                for (tap, channels) in &taps {
                    parts.push(self.pooled(tap, None));
                    width += channels;
                }
                if pooling == Pooling::EveryBlockTexture {
                    let (map, channels) = texture.expect("the texture block exists");
                    parts.push(self.second_order(&map, channels));
                    width += channels * (channels + 1) / 2;
                }
                let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
                let axis = vec![int_attribute("axis", 1)];
                self.output_node("Concat", &parts, axis, output);
            }
        }
        (output.to_string(), width)
    }

    /// `x` `[batch, channels, h, w]` → its second-order pool `[batch, channels·(channels+1)/2]`
    /// as `layers::second_order` computes it: channel products averaged over positions (MatMul
    /// with the transpose), the upper triangle (Gather), signed square root, unit length.
    fn second_order(&mut self, x: &Activation, channels: usize) -> String {
        let positions = x.size * x.size;
        let (by_channel, flat, upper) = (
            format!("{}_by_channel", x.name),
            format!("{}_products_flat", x.name),
            format!("{}_upper", x.name),
        );
        let c = channels as i64;
        self.tensor(&by_channel, &[3], INT64, int64(&[0, c, -1]));
        self.tensor(&flat, &[2], INT64, int64(&[0, c * c]));
        let indices: Vec<i64> = (0..c)
            .flat_map(|i| (i..c).map(move |j| i * c + j))
            .collect();
        self.tensor(&upper, &[indices.len() as i64], INT64, int64(&indices));
        let divisor = format!("{}_positions", x.name);
        self.initializer(&divisor, &[], &[positions as f32]);
        let smallest = format!("{}_smallest_length", x.name);
        self.initializer(&smallest, &[], &[1e-12]);

        let rows = self.node("Reshape", &[&x.name, &by_channel], Vec::new());
        let columns = self.node(
            "Transpose",
            &[&rows],
            vec![ints_attribute("perm", &[0, 2, 1])],
        );
        let products = self.node("MatMul", &[&rows, &columns], Vec::new());
        let products = self.node("Div", &[&products, &divisor], Vec::new());
        let products = self.node("Reshape", &[&products, &flat], Vec::new());
        let products = self.node(
            "Gather",
            &[&products, &upper],
            vec![int_attribute("axis", 1)],
        );
        let sign = self.node("Sign", &[&products], Vec::new());
        let magnitude = self.node("Abs", &[&products], Vec::new());
        let magnitude = self.node("Sqrt", &[&magnitude], Vec::new());
        let signed = self.node("Mul", &[&sign, &magnitude], Vec::new());
        let keep = vec![ints_attribute("axes", &[1]), int_attribute("keepdims", 1)];
        let length = self.node("ReduceL2", &[&signed], keep);
        let length = self.node("Max", &[&length, &smallest], Vec::new());
        self.node("Div", &[&signed, &length], Vec::new())
    }

    /// `x` `[batch, channels, h, w]` → its channel means `[batch, channels]`, named `output` if
    /// given.
    fn pooled(&mut self, x: &str, output: Option<&str>) -> String {
        let pooled = self.node("GlobalAveragePool", &[x], Vec::new());
        let axis = vec![int_attribute("axis", 1)];
        match output {
            Some(output) => {
                self.output_node("Flatten", &[&pooled], axis, output);
                output.to_string()
            }
            None => self.node("Flatten", &[&pooled], axis),
        }
    }
}

/// A one-node model, `features = Clip(input, 0, 6)` on `[batch, 3]`, that a runtime loads in
/// microseconds: proves a library works without exporting a whole backbone.
pub fn self_test_model() -> Vec<u8> {
    let mut graph = GraphWriter::default();
    graph.clip_bounds();
    graph.output_node(
        "Clip",
        &[INPUT_NAME, CLIP_MIN, CLIP_MAX],
        Vec::new(),
        OUTPUT_NAME,
    );
    graph.into_model("sprig_self_test", &[3], (OUTPUT_NAME, 3), &[])
}

/// The graph input for `images`: HWC bytes → NCHW float32 `(pixel - zero_point) / INPUT_SCALE`,
/// the rule [`Backbone::normalize`] applies to burn tensors.
pub fn input_tensor(kind: BackboneKind, images: &[PreparedImage]) -> Vec<f32> {
    let zero_point = kind.input_zero_point();
    let plane = INPUT_SIZE * INPUT_SIZE;
    let mut values = vec![0.0; images.len() * 3 * plane];
    for (image, chw) in images.iter().zip(values.chunks_exact_mut(3 * plane)) {
        for (position, rgb) in image.pixels().chunks_exact(3).enumerate() {
            for (channel, &byte) in rgb.iter().enumerate() {
                chw[channel * plane + position] = (f32::from(byte) - zero_point) / INPUT_SCALE;
            }
        }
    }
    values
}

/// TensorFlow "SAME" padding `(before, after)` along one axis: the output has `ceil(size /
/// stride)` positions and an odd total pad puts the extra row/column at the end.
pub fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// A tensor flowing through the graph: its name, its (square) spatial size and, in a QDQ graph,
/// the scale of the uint8 grid it was last quantised on.
#[derive(Clone)]
struct Activation {
    name: String,
    size: usize,
    scale: f32,
}

/// Accumulates nodes and initializers with generated, unique tensor names.
#[derive(Default)]
struct GraphWriter<'a> {
    graph: Proto,
    /// Write the QDQ form on this grid.
    grid: Option<&'a Int8Grid>,
    /// Convolutions written (names their weights, indexes the grid).
    convs: usize,
    /// Residual additions written (indexes the grid).
    adds: usize,
    /// Nodes written (names their outputs).
    nodes: usize,
}

impl GraphWriter<'_> {
    /// Conv with the folded weights (+ Clip for ReLU6) on `x`.
    fn conv(&mut self, x: &Activation, layer: &FoldedConv) -> Activation {
        let index = self.convs;
        self.convs += 1;
        let mut weight = format!("conv{index}_weight");
        let mut bias = format!("conv{index}_bias");
        let dims = layer.shape.map(|d| d as i64);
        let channels = [layer.out_channels() as i64];
        let conv_grid = self.grid.map(|grid| &grid.convs[index]);
        if let Some(conv_grid) = conv_grid {
            let weights = quantize_weights(layer, conv_grid.weight_scale);
            let raw: Vec<u8> = weights.values.iter().map(|&v| v as u8).collect();
            weight = self.dequantized(&weight, &dims, (INT8, raw, 1), &weights.scales);
            let (values, scales) = quantize_bias(&layer.bias, x.scale, &weights.scales);
            let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            bias = self.dequantized(&bias, &channels, (INT32, raw, 4), &scales);
        } else {
            self.initializer(&weight, &dims, &layer.weight);
            self.initializer(&bias, &channels, &layer.bias);
        }

        let (kernel, stride) = (layer.kernel(), layer.stride);
        let (before, after) = same_padding(x.size, kernel, stride);
        let (before, after) = (before as i64, after as i64);
        let attributes = vec![
            ints_attribute("kernel_shape", &[kernel as i64; 2]),
            ints_attribute("strides", &[stride as i64; 2]),
            // ONNX order: [top, left, bottom, right]; the input is square so both axes agree.
            ints_attribute("pads", &[before, before, after, after]),
            int_attribute("group", layer.groups as i64),
        ];
        let mut name = self.node("Conv", &[&x.name, &weight, &bias], attributes);
        if layer.relu6 {
            name = self.node("Clip", &[&name, CLIP_MIN, CLIP_MAX], Vec::new());
        }
        let output = Activation {
            name,
            size: x.size.div_ceil(stride),
            scale: 1.0,
        };
        match conv_grid {
            Some(conv_grid) => self.quantize(output, conv_grid.output),
            None => output,
        }
    }

    /// `x` through `QuantizeLinear` → `DequantizeLinear` on `grid` (uint8, per tensor).
    fn quantize(&mut self, x: Activation, grid: ActivationGrid) -> Activation {
        let scale = format!("{}_scale", x.name);
        let zero_point = format!("{}_zero_point", x.name);
        self.initializer(&scale, &[], &[grid.scale]);
        self.tensor(&zero_point, &[], UINT8, vec![grid.zero_point]);
        let quantized = self.node(
            "QuantizeLinear",
            &[&x.name, &scale, &zero_point],
            Vec::new(),
        );
        let name = self.node(
            "DequantizeLinear",
            &[&quantized, &scale, &zero_point],
            Vec::new(),
        );
        Activation {
            name,
            scale: grid.scale,
            ..x
        }
    }

    /// Initializer `name` holding integers (`(data type, little-endian bytes, bytes per value)`)
    /// with one scale per output channel, and the `DequantizeLinear` (axis 0) that turns it back
    /// into floats; returns the float tensor's name.
    fn dequantized(
        &mut self,
        name: &str,
        dims: &[i64],
        (data_type, raw, width): (i64, Vec<u8>, usize),
        scales: &[f32],
    ) -> String {
        let (quantized, scale, zero_point) = (
            format!("{name}_quantized"),
            format!("{name}_scale"),
            format!("{name}_zero_point"),
        );
        let channels = [scales.len() as i64];
        self.tensor(&quantized, dims, data_type, raw);
        self.initializer(&scale, &channels, scales);
        self.tensor(
            &zero_point,
            &channels,
            data_type,
            vec![0; scales.len() * width],
        );
        self.node(
            "DequantizeLinear",
            &[&quantized, &scale, &zero_point],
            vec![int_attribute("axis", 0)],
        )
    }

    /// Adds a node whose single output gets a fresh name, which is returned.
    fn node(&mut self, op: &str, inputs: &[&str], attributes: Vec<Proto>) -> String {
        let output = format!("{}{}", op.to_lowercase(), self.nodes);
        self.output_node(op, inputs, attributes, &output);
        output
    }

    fn output_node(&mut self, op: &str, inputs: &[&str], attributes: Vec<Proto>, output: &str) {
        let mut node = Proto::default();
        for input in inputs {
            node.string(1, input);
        }
        node.string(2, output);
        node.string(3, output);
        node.string(4, op);
        for attribute in &attributes {
            node.message(5, attribute);
        }
        self.graph.message(1, &node);
        self.nodes += 1;
    }

    fn initializer(&mut self, name: &str, dims: &[i64], values: &[f32]) {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, FLOAT, raw);
    }

    /// An initializer of `data_type` from its little-endian bytes.
    fn tensor(&mut self, name: &str, dims: &[i64], data_type: i64, raw: Vec<u8>) {
        let mut tensor = Proto::default();
        for &dim in dims {
            tensor.int(1, dim);
        }
        tensor.int(2, data_type);
        tensor.string(8, name);
        tensor.field_bytes(9, &raw);
        self.graph.message(5, &tensor);
    }

    /// The scalar initializers every ReLU6 `Clip` reads its bounds from.
    fn clip_bounds(&mut self) {
        self.initializer(CLIP_MIN, &[], &[0.0]);
        self.initializer(CLIP_MAX, &[], &[6.0]);
    }

    /// Wraps the graph in a `ModelProto` with input `[batch, input_dims..]`, output
    /// `[batch, width]` and `metadata` as `metadata_props`.
    fn into_model(
        self,
        name: &str,
        input_dims: &[usize],
        (output, width): (&str, usize),
        metadata: &[(&str, &str)],
    ) -> Vec<u8> {
        let mut graph = self.graph;
        graph.string(2, name);
        graph.message(11, &value_info(INPUT_NAME, input_dims));
        graph.message(12, &value_info(output, &[width]));
        let mut opset = Proto::default();
        opset.string(1, "");
        opset.int(2, OPSET_VERSION);
        let mut model = Proto::default();
        model.int(1, IR_VERSION);
        model.string(2, "sprig");
        model.string(3, env!("CARGO_PKG_VERSION"));
        model.message(7, &graph);
        model.message(8, &opset);
        for (key, value) in metadata {
            let mut entry = Proto::default();
            entry.string(1, key);
            entry.string(2, value);
            model.message(14, &entry);
        }
        model.bytes
    }
}

/// Little-endian bytes of an INT64 tensor's values.
fn int64(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn int_attribute(name: &str, value: i64) -> Proto {
    let mut attribute = Proto::default();
    attribute.string(1, name);
    attribute.int(3, value);
    attribute.int(20, ATTRIBUTE_INT);
    attribute
}

fn ints_attribute(name: &str, values: &[i64]) -> Proto {
    let mut attribute = Proto::default();
    attribute.string(1, name);
    for &value in values {
        attribute.int(8, value);
    }
    attribute.int(20, ATTRIBUTE_INTS);
    attribute
}

/// `ValueInfoProto` of a float tensor `[batch, dims...]` with a symbolic batch dimension.
fn value_info(name: &str, dims: &[usize]) -> Proto {
    let mut shape = Proto::default();
    let mut batch = Proto::default();
    batch.string(2, "batch");
    shape.message(1, &batch);
    for &dim in dims {
        let mut fixed = Proto::default();
        fixed.int(1, dim as i64);
        shape.message(1, &fixed);
    }
    let mut tensor_type = Proto::default();
    tensor_type.int(1, FLOAT);
    tensor_type.message(2, &shape);
    let mut type_proto = Proto::default();
    type_proto.message(1, &tensor_type);
    let mut info = Proto::default();
    info.string(1, name);
    info.message(2, &type_proto);
    info
}

/// A protobuf message being written: fields appended in order (proto2, repeated scalars unpacked).
#[derive(Default)]
struct Proto {
    bytes: Vec<u8>,
}

impl Proto {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    fn key(&mut self, field: u32, wire_type: u64) {
        self.varint((u64::from(field) << 3) | wire_type);
    }

    /// A varint field (int32/int64/enum); negative values would take ten bytes, none occur here.
    fn int(&mut self, field: u32, value: i64) {
        self.key(field, 0);
        self.varint(value as u64);
    }

    fn field_bytes(&mut self, field: u32, value: &[u8]) {
        self.key(field, 2);
        self.varint(value.len() as u64);
        self.bytes.extend_from_slice(value);
    }

    fn string(&mut self, field: u32, value: &str) {
        self.field_bytes(field, value.as_bytes());
    }

    fn message(&mut self, field: u32, value: &Proto) {
        self.field_bytes(field, &value.bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use burn::tensor::Device;

    use super::*;
    use crate::network::FeatureSpec;

    /// One decoded protobuf field: a varint or a length-delimited payload (the only wire types
    /// the exporter writes).
    enum Field<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
    }

    fn varint(bytes: &mut &[u8]) -> u64 {
        let mut value = 0;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first().expect("truncated varint");
            *bytes = rest;
            value |= u64::from(byte & 0x7F) << shift;
            if byte < 0x80 {
                break;
            }
        }
        value
    }

    fn parse(mut bytes: &[u8]) -> Vec<(u32, Field<'_>)> {
        let mut fields = Vec::new();
        while !bytes.is_empty() {
            let key = varint(&mut bytes);
            let field = match key & 7 {
                0 => Field::Varint(varint(&mut bytes)),
                2 => {
                    let length = varint(&mut bytes) as usize;
                    let (payload, rest) = bytes.split_at(length);
                    bytes = rest;
                    Field::Bytes(payload)
                }
                other => panic!("unexpected wire type {other}"),
            };
            fields.push(((key >> 3) as u32, field));
        }
        fields
    }

    fn messages(bytes: &[u8], number: u32) -> Vec<&[u8]> {
        parse(bytes)
            .into_iter()
            .filter_map(|(n, f)| match f {
                Field::Bytes(b) if n == number => Some(b),
                _ => None,
            })
            .collect()
    }

    fn strings(bytes: &[u8], number: u32) -> Vec<&str> {
        messages(bytes, number)
            .into_iter()
            .map(|b| std::str::from_utf8(b).unwrap())
            .collect()
    }

    fn ints(bytes: &[u8], number: u32) -> Vec<i64> {
        parse(bytes)
            .into_iter()
            .filter_map(|(n, f)| match f {
                Field::Varint(v) if n == number => Some(v as i64),
                _ => None,
            })
            .collect()
    }

    fn attribute<'a>(node: &'a [u8], name: &str) -> &'a [u8] {
        messages(node, 5)
            .into_iter()
            .find(|a| strings(a, 1) == [name])
            .unwrap_or_else(|| panic!("attribute {name}"))
    }

    #[test]
    fn same_padding_matches_tensorflow() {
        assert_eq!(same_padding(224, 3, 2), (0, 1));
        assert_eq!(same_padding(112, 3, 1), (1, 1));
        assert_eq!(same_padding(56, 5, 2), (1, 2));
        assert_eq!(same_padding(14, 5, 1), (2, 2));
        assert_eq!(same_padding(7, 1, 1), (0, 0));
    }

    /// The exported graph of each backbone: opset, node counts per operator (convs, ReLU6 clips,
    /// residual adds), the stem's asymmetric pads, initializer shapes, the dynamic batch input,
    /// and every node reading only tensors defined before it.
    #[test]
    fn exported_graphs_have_the_backbone_structure() {
        for (kind, convs, clips, adds) in [
            (BackboneKind::MobilenetV2, 52, 35, 10),
            (BackboneKind::EfficientnetLite0, 49, 33, 9),
        ] {
            let model = export(&Backbone::new(kind, &Device::flex()), Pooling::Final, None);
            assert_eq!(ints(&model, 1), [IR_VERSION]);
            let opsets = messages(&model, 8);
            assert_eq!(ints(opsets[0], 2), [OPSET_VERSION]);
            let graph = messages(&model, 7)[0];

            let nodes = messages(graph, 1);
            let count = |op: &str| nodes.iter().filter(|n| strings(n, 4) == [op]).count();
            assert_eq!(
                [count("Conv"), count("Clip"), count("Add")],
                [convs, clips, adds],
                "{kind}"
            );
            assert_eq!(nodes.len(), convs + clips + adds + 2, "{kind}");

            let stem = nodes[0];
            assert_eq!(strings(stem, 1), [INPUT_NAME, "conv0_weight", "conv0_bias"]);
            assert_eq!(ints(attribute(stem, "pads"), 8), [0, 0, 1, 1]);
            assert_eq!(ints(attribute(stem, "strides"), 8), [2, 2]);
            assert_eq!(ints(attribute(stem, "group"), 3), [1]);
            let last = nodes[nodes.len() - 1];
            assert_eq!(strings(last, 4), ["Flatten"]);
            assert_eq!(strings(last, 2), [OUTPUT_NAME]);

            let initializers = messages(graph, 5);
            assert_eq!(initializers.len(), 2 * convs + 2, "{kind}");
            let stem_weight = initializers
                .iter()
                .find(|t| strings(t, 8) == ["conv0_weight"])
                .unwrap();
            assert_eq!(ints(stem_weight, 1), [32, 3, 3, 3]);
            assert_eq!(messages(stem_weight, 9)[0].len(), 32 * 27 * 4);

            let input = messages(graph, 11)[0];
            assert_eq!(strings(input, 1), [INPUT_NAME]);
            let tensor_type = messages(messages(input, 2)[0], 1)[0];
            let dims = messages(messages(tensor_type, 2)[0], 1);
            assert_eq!(strings(dims[0], 2), ["batch"]);
            let fixed: Vec<i64> = dims[1..].iter().flat_map(|d| ints(d, 1)).collect();
            assert_eq!(fixed, [3, 224, 224]);

            let mut defined: HashSet<&str> = initializers
                .iter()
                .map(|t| strings(t, 8)[0])
                .chain([INPUT_NAME])
                .collect();
            for node in &nodes {
                for input in strings(node, 1) {
                    assert!(
                        defined.contains(input),
                        "{kind}: {input} read before defined"
                    );
                }
                assert!(
                    defined.insert(strings(node, 2)[0]),
                    "{kind}: output redefined"
                );
            }
        }
    }

    /// Every-block pooling: one `GlobalAveragePool` per block's depthwise output and one for the
    /// final map (first), all concatenated into the output, declared as wide as
    /// `FeatureSpec::dim` says.
    #[test]
    fn every_block_graphs_pool_each_depthwise_output_into_the_output() {
        for (kind, pooled) in [
            (BackboneKind::MobilenetV2, 18),
            (BackboneKind::EfficientnetLite0, 17),
        ] {
            let model = export(
                &Backbone::new(kind, &Device::flex()),
                Pooling::EveryBlock,
                None,
            );
            let graph = messages(&model, 7)[0];
            let nodes = messages(graph, 1);
            let count = |op: &str| nodes.iter().filter(|n| strings(n, 4) == [op]).count();
            assert_eq!([count("GlobalAveragePool"), count("Flatten")], [pooled; 2]);
            let last = nodes[nodes.len() - 1];
            assert_eq!(strings(last, 4), ["Concat"]);
            assert_eq!(strings(last, 2), [OUTPUT_NAME]);
            assert_eq!(strings(last, 1).len(), pooled);
            let output = messages(graph, 12)[0];
            let tensor_type = messages(messages(output, 2)[0], 1)[0];
            let dims = messages(messages(tensor_type, 2)[0], 1);
            let width = FeatureSpec::new(kind, Pooling::EveryBlock).dim();
            assert_eq!(ints(dims[1], 1), [width as i64], "{kind}");
        }
    }

    /// Texture pooling adds one second-order pool (MatMul of the texture block's output with its
    /// transpose) after the every-block means, and the output is as wide as `FeatureSpec::dim`.
    #[test]
    fn texture_graphs_add_one_second_order_pool() {
        for kind in BackboneKind::ALL {
            let spec = FeatureSpec::new(kind, Pooling::EveryBlockTexture);
            let model = export(&Backbone::new(kind, &Device::flex()), spec.pooling, None);
            let graph = messages(&model, 7)[0];
            let nodes = messages(graph, 1);
            let count = |op: &str| nodes.iter().filter(|n| strings(n, 4) == [op]).count();
            assert_eq!(
                [count("MatMul"), count("Gather"), count("ReduceL2")],
                [1; 3]
            );
            let last = nodes[nodes.len() - 1];
            assert_eq!(strings(last, 4), ["Concat"]);
            let means = FeatureSpec::new(kind, Pooling::EveryBlock);
            let pooled = if kind == BackboneKind::MobilenetV2 {
                18
            } else {
                17
            };
            assert_eq!(strings(last, 1).len(), pooled + 1);
            let output = messages(graph, 12)[0];
            let tensor_type = messages(messages(output, 2)[0], 1)[0];
            let dims = messages(messages(tensor_type, 2)[0], 1);
            assert_eq!(ints(dims[1], 1), [spec.dim() as i64], "{kind}");
            let channels = kind.texture_channels();
            assert_eq!(spec.dim(), means.dim() + channels * (channels + 1) / 2);
        }
    }

    /// The QDQ form on MobileNetV2's grid: a Q → DQ pair on the input and after each of the 52
    /// convolutions and 10 additions, every convolution reading dequantised int8 weights (per
    /// channel, axis 0) and int32 biases, and no float weights left; activations uint8.
    #[test]
    fn int8_graph_quantizes_every_convolution_and_activation() {
        let kind = BackboneKind::MobilenetV2;
        let grid = crate::network::int8_grid(kind).unwrap();
        let model = export(
            &Backbone::new(kind, &Device::flex()),
            Pooling::Final,
            Some(grid),
        );
        let graph = messages(&model, 7)[0];
        let nodes = messages(graph, 1);
        let count = |op: &str| nodes.iter().filter(|n| strings(n, 4) == [op]).count();
        assert_eq!(count("QuantizeLinear"), 1 + 52 + 10);
        assert_eq!(count("DequantizeLinear"), 1 + 52 + 10 + 2 * 52);
        assert_eq!([count("Conv"), count("Clip"), count("Add")], [52, 35, 10]);
        let initializers = messages(graph, 5);
        let data_type = |name: &str| {
            let tensor = initializers.iter().find(|t| strings(t, 8) == [name]);
            ints(tensor.unwrap_or_else(|| panic!("{name}")), 2)[0]
        };
        let producer = |tensor: &str| {
            nodes
                .iter()
                .find(|n| strings(n, 2) == [tensor])
                .unwrap_or_else(|| panic!("{tensor} has no producer"))
        };
        for conv in nodes.iter().filter(|n| strings(n, 4) == ["Conv"]) {
            let inputs = strings(conv, 1);
            for (input, integers) in inputs[1..].iter().zip([INT8, INT32]) {
                let dequantize = producer(input);
                assert_eq!(strings(dequantize, 4), ["DequantizeLinear"]);
                assert_eq!(ints(attribute(dequantize, "axis"), 3), [0]);
                assert_eq!(data_type(strings(dequantize, 1)[0]), integers);
            }
            assert_eq!(strings(producer(inputs[0]), 4), ["DequantizeLinear"]);
        }
        for quantize in nodes.iter().filter(|n| strings(n, 4) == ["QuantizeLinear"]) {
            assert_eq!(data_type(strings(quantize, 1)[2]), UINT8);
        }
        let floats = initializers.iter().filter(|t| ints(t, 2) == [FLOAT]);
        assert!(floats.clone().all(|t| messages(t, 9)[0].len() <= 4 * 1280));
        assert_eq!(floats.count(), 2 + 63 + 2 * 52);
    }

    #[test]
    fn self_test_model_is_one_clip() {
        let model = self_test_model();
        let graph = messages(&model, 7)[0];
        let nodes = messages(graph, 1);
        assert_eq!(nodes.len(), 1);
        assert_eq!(strings(nodes[0], 1), [INPUT_NAME, CLIP_MIN, CLIP_MAX]);
        assert_eq!(strings(nodes[0], 2), [OUTPUT_NAME]);
    }

    /// The plain-Rust input layout agrees with the burn normalisation it mirrors.
    #[test]
    fn input_tensor_matches_burn_normalize() {
        let device = Device::flex();
        let pixels: Vec<u8> = (0..INPUT_SIZE * INPUT_SIZE * 3)
            .map(|i| (i * 7) as u8)
            .collect();
        let images = [PreparedImage::from_pixels(pixels).unwrap()];
        for kind in BackboneKind::ALL {
            let backbone = Backbone::new(kind, &device);
            let expected: Vec<f32> = backbone
                .normalize(crate::network::pixels_tensor(&images, &device))
                .into_data()
                .try_into_vec()
                .unwrap();
            assert_eq!(input_tensor(kind, &images), expected, "{kind}");
        }
    }
}
