"""INT8 variants for the ONNX Runtime plugin, after int8_check.py: static QDQ quantisation with
different calibration (min-max / 99.99th percentile, 64 / 200 images) and different layers kept in
f32 (the stem and last 1x1 convolutions; every depthwise convolution; everything but Conv). For
each: single-threaded batch-1 latency (3 alternating rounds, median of 20 runs), held-out accuracy
of a linear head trained on that model's own features, agreement with f32, and the mean relative
feature error.

    cargo run -p sprig-backends --example export_onnx -- mobilenet_v2 /tmp/mobilenet_v2.onnx
    python int8_variants.py /tmp/mobilenet_v2.onnx /path/to/datasets/beans   # + scikit-learn, onnx, sympy

Split as in int8_check.py: every third image of beans/train is held out (300), the rest (600)
trains the head; calibration images come from the training part only.
"""
import statistics, sys, time

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from int8_common import calibration_reader, held_out_predictions, prepare, split

MODEL, BEANS = sys.argv[1], sys.argv[2]
fit, held_out = split(BEANS)




base = MODEL[: -len(".onnx")]
quant_pre_process(MODEL, f"{base}.pre.onnx")
graph = onnx.load(MODEL).graph
depthwise = [n.name for n in graph.node
             if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)]
first_last = ["conv0", "conv95"]  # the stem convolution and the last 1x1 (320 -> 1280)
MINMAX, PERCENTILE = CalibrationMethod.MinMax, CalibrationMethod.Percentile
variants = {
    "A minmax64": dict(count=64, method=MINMAX, exclude=[]),
    "B minmax64 -first/last": dict(count=64, method=MINMAX, exclude=first_last),
    "C pct200": dict(count=200, method=PERCENTILE, exclude=[]),
    "D pct200 -first/last": dict(count=200, method=PERCENTILE, exclude=first_last),
    "E minmax200 -first/last": dict(count=200, method=MINMAX, exclude=first_last),
    "F minmax200 -depthwise": dict(count=200, method=MINMAX, exclude=depthwise),
    "G minmax200 conv-only": dict(count=200, method=MINMAX, exclude=[], ops=["Conv"]),
    "H minmax200 conv-only -dw": dict(count=200, method=MINMAX, exclude=depthwise, ops=["Conv"]),
}
paths = {"f32": MODEL}
for name, variant in variants.items():
    paths[name] = f"{base}.{name.split()[0]}.onnx"
    quantize_static(f"{base}.pre.onnx", paths[name], calibration_reader(fit, variant["count"]),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True,
                    calibrate_method=variant["method"], nodes_to_exclude=variant["exclude"],
                    op_types_to_quantize=variant.get("ops"),
                    extra_options={"CalibPercentile": 99.99} if variant["method"] == PERCENTILE else {})


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


models = {name: session(path) for name, path in paths.items()}
x1 = prepare(held_out[0][0])[None]
speed = {}
for _ in range(3):  # alternating rounds
    for name, sess in models.items():
        sess.run(None, {"input": x1})
        runs = []
        for _ in range(20):
            start = time.perf_counter()
            sess.run(None, {"input": x1})
            runs.append(time.perf_counter() - start)
        speed.setdefault(name, []).append(statistics.median(runs) * 1000)

predictions, features = {}, {}
for name, sess in models.items():
    predictions[name], y, features[name] = held_out_predictions(sess, fit, held_out)
    error = np.abs(features[name] - features["f32"]).mean() / np.abs(features["f32"]).mean()
    print(f"{name:26s} 1-thread batch 1: {' / '.join(f'{t:.2f}' for t in speed[name])} ms | "
          f"held-out accuracy {(predictions[name] == y).mean():.4f} | "
          f"agreement with f32 {(predictions[name] == predictions['f32']).mean():.4f} | "
          f"mean feature error {error:.4f}", flush=True)
