"""Compute-only comparison with the Python peer: the peer's model.onnx with the peer's session
settings vs sprig's exported backbone with the peer's and with the plugin's settings, at batch 1
and 16, plus the peer's Pillow preprocessing per image. Each variant runs in its own process
(a spinning ONNX Runtime pool would otherwise steal CPU from the next session), alternating,
for several rounds; prints the median of the per-round medians.

    cargo run -p sprig-backends --example export_onnx -- mobilenet_v2 /tmp/mobilenet_v2.onnx
    python peer_compare.py /tmp/mobilenet_v2.onnx [rounds]     # venv with onnxruntime, pillow

Paths assume the shared baselines folder beside the workspace (../shared/baselines).
"""
import glob, io, json, os, statistics, subprocess, sys, time

import numpy as np

BASELINES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared/baselines")
PEER = os.path.join(BASELINES, "peer_onnxruntime/model.onnx")
# label -> (model, intra-op threads, spinning or None for ONNX Runtime's default, input layout)
VARIANTS = {
    "peer model, peer settings (intra 0, spinning)": ("peer", 0, None, "nhwc"),
    "sprig graph, peer settings": ("ours", 0, None, "nchw"),
    "sprig graph, plugin settings (intra 2, no spinning)": ("ours", 2, "0", "nchw"),
}


def pillow_preprocess(data):  # the peer's preprocess_image
    from PIL import Image
    image = Image.open(io.BytesIO(data))
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.expand_dims(np.asarray(image.resize((224, 224)), dtype=np.float32) / 255.0, 0)


def measure(label, ours):
    """One process: median ms per batch size for one variant (or the preprocessing)."""
    if label == "preprocess":
        files = [open(f, "rb").read() for f in sorted(glob.glob(os.path.join(BASELINES, "bench/images/*.jpg")))]
        runs = []
        for _ in range(5):
            for data in files:
                start = time.perf_counter()
                pillow_preprocess(data)
                runs.append(time.perf_counter() - start)
        return {"0": statistics.median(runs) * 1000}
    import onnxruntime as ort
    model, intra, spinning, layout = VARIANTS[label]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra
    if spinning is not None:
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    session = ort.InferenceSession(PEER if model == "peer" else ours, options,
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    result = {}
    for batch, count in ((1, 30), (16, 5)):
        shape = (batch, 224, 224, 3) if layout == "nhwc" else (batch, 3, 224, 224)
        x = {name: np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)}
        session.run(None, x)
        runs = []
        for _ in range(count):
            start = time.perf_counter()
            session.run(None, x)
            runs.append(time.perf_counter() - start)
        result[str(batch)] = statistics.median(runs) * 1000
    return result


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2], sys.argv[3])))
        sys.exit()
    ours, rounds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 3
    medians = {}
    for _ in range(rounds):
        for label in [*VARIANTS, "preprocess"]:
            out = subprocess.run([sys.executable, __file__, "--one", label, ours],
                                 check=True, capture_output=True, text=True).stdout
            for batch, ms in json.loads(out).items():
                medians.setdefault((label, batch), []).append(ms)
    for (label, batch), values in medians.items():
        what = "per image" if batch == "0" else f"batch {batch:>2}"
        rounds_text = " / ".join(f"{v:.1f}" for v in values)
        print(f"{label:52s} {what:9s} {statistics.median(values):7.2f} ms  ({rounds_text})")
