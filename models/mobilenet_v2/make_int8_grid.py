"""Writes int8_grid.json: the quantisation grid of Google's QAT MobileNetV2 (the TFLite model these
weights are dequantised from), which sprig's `openvino.precision = "int8"` writes into the
exported graph as QuantizeLinear / DequantizeLinear.

    python3 make_int8_grid.py ../../../shared/weights/mobilenet_v2_imagenet/tflite_layers.json > int8_grid.json

Input: the per-op dump of mobilenet_v2_1.0_224_quant.tflite (google-coral/test_data @ 104342d,
sha256 7aad0c74…4776) made by that directory's scripts/dump_layers_tflite.py. Output, in the order
sprig's exporter writes the graph: the input grid, per convolution (52, the ImageNet classifier
left out) its per-tensor weight scale and its output's uint8 scale / zero point, per residual Add
(10) its output's scale / zero point. Standard library only; byte-identical on every run.
"""
import json
import sys

layers = json.load(open(sys.argv[1]))
convs = [l for l in layers["layers"]
         if l["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D") and l["conv"] != "classifier.1"]
adds = [l for l in layers["layers"] if l["op"] == "ADD"]
assert len(convs) == 52 and len(adds) == 10
grid = {
    "source": "mobilenet_v2_1.0_224_quant.tflite (google-coral/test_data @ "
              "104342d2d3480b3e66203073dac24f4e2dbb4c41), via tflite_layers.json",
    "input": {"scale": layers["input"]["scale"], "zero_point": layers["input"]["zero_point"]},
    "convs": [{"name": l["conv"], "weight_scale": l["weight_scale"][0],
               "output": {"scale": l["out_scale"], "zero_point": l["out_zero_point"]}} for l in convs],
    "adds": [{"scale": l["out_scale"], "zero_point": l["out_zero_point"]} for l in adds],
}
json.dump(grid, sys.stdout, indent=1)
sys.stdout.write("\n")
