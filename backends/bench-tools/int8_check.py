"""INT8 levers for the ONNX Runtime plugin: speed of dynamic and static (QDQ) quantisation of the
exported backbone against f32, and held-out accuracy of a linear head on each model's features.

    cargo run -p sprig-backends --example export_onnx -- mobilenet_v2 /tmp/mobilenet_v2.onnx
    python int8_check.py /tmp/mobilenet_v2.onnx /path/to/datasets/beans   # + scikit-learn, sympy

Split: every third image of beans/train is held out (300), the rest (600) trains the head; 64
calibration images come from the training part only.
"""
import statistics, sys, time

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_dynamic, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from int8_common import held_out_predictions, prepare, split

MODEL, BEANS = sys.argv[1], sys.argv[2]
base = MODEL[: -len(".onnx")]
fit, held_out = split(BEANS)


class Calibration(CalibrationDataReader):
    def __init__(self):
        self.items = iter([{"input": prepare(f)[None]} for f, _ in fit[::9][:64]])

    def get_next(self):
        return next(self.items, None)


quant_pre_process(MODEL, f"{base}.pre.onnx")
quantize_dynamic(f"{base}.pre.onnx", f"{base}.dynamic.onnx", weight_type=QuantType.QUInt8)
quantize_static(f"{base}.pre.onnx", f"{base}.qdq.onnx", Calibration(), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


models = {name: session(path) for name, path in
          [("f32", MODEL), ("int8 dynamic", f"{base}.dynamic.onnx"), ("int8 static", f"{base}.qdq.onnx")]}
x1 = prepare(held_out[0][0])[None]
x16 = np.stack([prepare(f) for f, _ in held_out[:16]])
speed = {}
for _ in range(3):  # alternating rounds
    for name, sess in models.items():
        for x in (x1, x16):
            sess.run(None, {"input": x})
            runs = []
            for _ in range(10 if len(x) == 1 else 3):
                start = time.perf_counter()
                sess.run(None, {"input": x})
                runs.append(time.perf_counter() - start)
            speed.setdefault((name, len(x)), []).append(statistics.median(runs) * 1000)


predictions = {}
for name, sess in models.items():
    predictions[name], y, _ = held_out_predictions(sess, fit, held_out)
    rounds = lambda b: " / ".join(f"{t:.1f}" for t in speed[(name, b)])
    print(f"{name:13s} batch 1: {rounds(1)} ms | batch 16: {rounds(16)} ms | "
          f"held-out accuracy {(predictions[name] == y).mean():.4f}")
for name in ("int8 dynamic", "int8 static"):
    print(f"{name}: prediction agreement with f32 {(predictions[name] == predictions['f32']).mean():.4f}")
