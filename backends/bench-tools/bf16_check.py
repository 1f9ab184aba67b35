"""Does OpenVINO's bfloat16 backbone classify the beans photos as ONNX Runtime's float32 one does?

All 900 photos of datasets/beans/train, 3-fold stratified cross-validation repeated with five
shuffles (4,500 held-out predictions per model), a logistic-regression head on each model's own
features, and heads crossed between precisions (trained on one, scored on the other's features:
a model version trained on one backend and served on the other). Also prints the speed of one
single-threaded run and of two side by side.

    python bf16_check.py MODEL.onnx BEANS_DIR
"""
import glob
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
import openvino as ov
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from int8_common import CLASSES, features

MODEL, BEANS = sys.argv[1], sys.argv[2]


class OpenVino:
    """An OpenVINO compiled model with ONNX Runtime's `run` signature."""

    def __init__(self, precision, streams=1, threads=2):
        self.model = ov.Core().compile_model(MODEL, "CPU", {
            "INFERENCE_PRECISION_HINT": precision, "NUM_STREAMS": streams,
            "INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": False})

    def run(self, _outputs, feeds):
        return [self.model(feeds["input"])[0]]


def head():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))


def accuracy():
    items = [(f, c) for c in range(3) for f in sorted(glob.glob(f"{BEANS}/train/{CLASSES[c]}/*.jpg"))]
    f32, y = features(ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"]), items)
    bf16, _ = features(OpenVino("bf16"), items)
    error = np.abs(bf16 - f32).mean() / np.abs(f32).mean()
    print(f"{len(y)} photos; mean feature difference bf16 vs f32: {error:.1%}")
    totals = {}
    for seed in range(5):
        correct = dict.fromkeys(["f32 -> f32", "bf16 -> bf16", "f32 -> bf16", "bf16 -> f32"], 0)
        agree = 0
        for fit, held in StratifiedKFold(3, shuffle=True, random_state=seed).split(y, y):
            on_f32, on_bf16 = head().fit(f32[fit], y[fit]), head().fit(bf16[fit], y[fit])
            runs = {"f32 -> f32": on_f32.predict(f32[held]), "bf16 -> bf16": on_bf16.predict(bf16[held]),
                    "f32 -> bf16": on_f32.predict(bf16[held]), "bf16 -> f32": on_bf16.predict(f32[held])}
            for name, predicted in runs.items():
                correct[name] += int((predicted == y[held]).sum())
            agree += int((runs["f32 -> f32"] == runs["bf16 -> bf16"]).sum())
        print(f"shuffle {seed}: " + ", ".join(f"{k} {v}/{len(y)}" for k, v in correct.items())
              + f"; f32 and bf16 agree on {agree}")
        for name, value in correct.items():
            totals[name] = totals.get(name, 0) + value
    print("all shuffles (head trained on -> features scored): "
          + ", ".join(f"{k} {v / (5 * len(y)):.2%}" for k, v in totals.items()))


def speed():
    x = (np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32) * 2 - 1)

    def single_threaded_runs():
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        return {"onnxruntime f32": lambda: [ort.InferenceSession(MODEL, options, providers=["CPUExecutionProvider"])
                                            for _ in range(2)],
                "openvino f32": lambda: OpenVino("f32", 2, 2), "openvino bf16": lambda: OpenVino("bf16", 2, 2)}

    for name, make in single_threaded_runs().items():
        made = make()
        runners = made if isinstance(made, list) else [made.model.create_infer_request() for _ in range(2)]
        run = (lambda r: r.run(None, {"input": x})) if isinstance(made, list) else (lambda r: r.infer({0: x}))
        for r in runners:
            run(r)
        alone = []
        for _ in range(100):
            start = time.perf_counter()
            run(runners[0])
            alone.append(time.perf_counter() - start)
        start = time.perf_counter()
        threads = [threading.Thread(target=lambda r=r: [run(r) for _ in range(200)]) for r in runners]
        [t.start() for t in threads]
        [t.join() for t in threads]
        rate = 400 / (time.perf_counter() - start)
        print(f"{name}: one run alone median {np.median(alone) * 1000:.2f} ms; two side by side {rate:.0f} img/s")


if __name__ == "__main__":
    accuracy()
    speed()
