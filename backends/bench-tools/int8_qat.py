"""INT8 with the QAT ranges: sprig's MobileNetV2 weights come from Google's quantisation-aware-trained
uint8 TFLite model, and weights/mobilenet_v2_imagenet/tflite_layers.json holds every op's output
scale / zero point. This script writes QDQ models that use exactly those activation grids (instead
of post-hoc calibration), runs them on OpenVINO (real INT8 kernels; checked in the compiled model's
runtime graph) and ONNX Runtime, and compares them with f32, OpenVINO bf16 and plain
`quantize_static` PTQ.

    python int8_qat.py MODEL.onnx BEANS_DIR LAYERS_JSON OUT_DIR [--no-speed] [--fresh] [--rounds N] [--seconds S]
        [--speed-only V4,V4f,...] [--profile]

Accuracy: as bf16_check.py: all 900 photos of beans/train, 3-fold stratified CV repeated with five
shuffles (4,500 held-out predictions per model), a logistic-regression head on each model's own
features, plus "head transfer" (head trained on f32 features, scored on the variant's features).
f32 reference = ONNX Runtime f32, as in bf16_check.py.
Speed: OpenVINO, batch 1, INFERENCE_NUM_THREADS=1, NUM_STREAMS=1, one infer request; alternating
rounds of >= S seconds per model; medians and spread.
Everything printed also goes to OUT_DIR/results.txt.
"""
import glob
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort
import openvino as ov
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from int8_common import CLASSES, calibration_reader, prepare, results_log, split  # noqa: E402

MODEL, BEANS, LAYERS, OUT = sys.argv[1:5]
SPEED = "--no-speed" not in sys.argv
# --speed-only V4,V5,...: no accuracy; time f32, bf16 and these variants only
ONLY = sys.argv[sys.argv.index("--speed-only") + 1].split(",") if "--speed-only" in sys.argv else None
ACCURACY = ONLY is None
PROFILE = "--profile" in sys.argv
ROUNDS = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
SECONDS = float(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 5.0
say = results_log(OUT)


say(f"\n===== int8_qat.py {time.strftime('%Y-%m-%d %H:%M:%S %Z')} argv={sys.argv[1:]} =====")
say(f"onnxruntime {ort.__version__}, openvino {ov.get_version()}, onnx {onnx.__version__}")

# ---------------------------------------------------------------------------------------------
# 1. Map the exported graph onto the TFLite ops and check the weights sit on the TFLite grid.
# ---------------------------------------------------------------------------------------------
base = onnx.load(MODEL)
graph = base.graph
inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
tfl = json.load(open(LAYERS))
tfl_convs = [l for l in tfl["layers"] if l["op"] in ("CONV_2D", "DEPTHWISE_CONV_2D") and l["conv"] != "classifier.1"]
tfl_adds = [l for l in tfl["layers"] if l["op"] == "ADD"]
convs = [n for n in graph.node if n.op_type == "Conv"]
adds = [n for n in graph.node if n.op_type == "Add"]
assert len(convs) == len(tfl_convs) == 52 and len(adds) == len(tfl_adds) == 10
consumers = {}
for n in graph.node:
    for i in n.input:
        consumers.setdefault(i, []).append(n)

act = {"input": (tfl["input"]["scale"], tfl["input"]["zero_point"])}  # tensor -> (scale, zp) of the QAT grid
conv_out = {}  # conv name -> tensor carrying its (activated) output
for n, l in zip(adds, tfl_adds):
    act[n.output[0]] = (l["out_scale"], l["out_zero_point"])
worst = 0.0
for n, l in zip(convs, tfl_convs):
    w = inits[n.input[1]]
    assert list(w.shape) == l["weight_shape_torch"], (n.name, w.shape, l["conv"])
    s, zp = l["weight_scale"][0], l["weight_zero_point"][0]
    q = w / s + zp
    worst = max(worst, float(np.abs(q - np.round(q)).max()))
    lo, hi = np.round(q).min(), np.round(q).max()
    assert l["weight_q_minmax"][0] <= lo and hi <= l["weight_q_minmax"][1]
    b = inits[n.input[2]]
    bq = b / l["bias_scale"][0]
    worst_b = float(np.abs(bq - np.round(bq)).max())
    assert worst_b < 1e-2, (n.name, worst_b)
    nxt = consumers[n.output[0]]
    groups = [a.i for a in n.attribute if a.name == "group"][0]
    assert (groups > 1) == (l["op"] == "DEPTHWISE_CONV_2D"), n.name
    if l["activation"] == "RELU6":
        assert len(nxt) == 1 and nxt[0].op_type == "Clip", n.name
        out = nxt[0].output[0]
    else:
        assert l["activation"] == "NONE"
        out = n.output[0]
    conv_out[n.name] = out
    act[out] = (l["out_scale"], l["out_zero_point"])
    # the input scale TFLite used is bias_scale / weight_scale: check it against the producer's grid
    in_scale = l["bias_scale"][0] / s
    producer_scale = act[n.input[0]][0] if n.input[0] in act else None
    assert producer_scale is not None and abs(in_scale / producer_scale - 1) < 1e-4, (n.name, in_scale, producer_scale)
# every Add's inputs must already be on a QAT grid (they are project outputs or earlier adds)
for n in adds:
    assert all(i in act for i in n.input), n.name
say(f"mapping: 52 Conv + 10 Add nodes <-> TFLite ops by order; shapes, depthwise-ness, activation, "
    f"input scale (bias_scale/weight_scale == producer's output scale) all match; weights on the TFLite "
    f"per-tensor uint8 grid to within {worst:.2e} steps; {len(act)} activation tensors get a QAT grid")

first, last = convs[0].name, convs[-1].name  # stem conv, last 1x1 (320 -> 1280)


# ---------------------------------------------------------------------------------------------
# 2. QDQ model writer
# ---------------------------------------------------------------------------------------------
exact_stats = [0, 0]


def qdq_model(path, weights="pc", acts=True, float_convs=(), skip_acts=(), bias_int32=True, grid=None):
    """weights: 'pc' per-channel symmetric int8 (scale max|w|/127), 'tfl' exact TFLite per-tensor uint8
    (scale, zero point) grid, None = float weights. acts: put Q/DQ (uint8, QAT scale/zp) on every
    activation tensor in `act` except `skip_acts`. float_convs: convs left entirely in float."""
    act_grid = grid or act  # tensor -> (scale, zero point) of its uint8 grid
    m = onnx.ModelProto()
    m.CopyFrom(base)
    g = m.graph
    new_inits, new_nodes = [], []
    rename = {}  # tensor -> its dequantized copy

    def scalar(name, value, dtype):
        new_inits.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    if acts:
        for t, (s, zp) in act_grid.items():
            if t in skip_acts:
                continue
            sn, zn = scalar(f"{t}_qs", s, np.float32), scalar(f"{t}_qz", zp, np.uint8)
            new_nodes.append((t, [helper.make_node("QuantizeLinear", [t, sn, zn], [f"{t}_q"], name=f"{t}_Q"),
                                  helper.make_node("DequantizeLinear", [f"{t}_q", sn, zn], [f"{t}_dq"], name=f"{t}_DQ")]))
            rename[t] = f"{t}_dq"
    wrename = {}
    if weights:
        for n, l in zip(convs, tfl_convs):
            if n.name in float_convs:
                continue
            wname, bname = n.input[1], n.input[2]
            w, b = inits[wname], inits[bname]
            in_t = n.input[0]
            in_quant = acts and in_t in act_grid and in_t not in skip_acts
            if weights == "pc":
                peak = np.abs(w).reshape(w.shape[0], -1).max(1)
                s = np.where(peak > 0, peak, 127.0) / 127.0  # an all-zero channel gets scale 1
                q = np.clip(np.round(w / s[:, None, None, None]), -127, 127).astype(np.int8)
                new_inits += [numpy_helper.from_array(q, f"{wname}_q"),
                              numpy_helper.from_array(s.astype(np.float32), f"{wname}_s"),
                              numpy_helper.from_array(np.zeros(w.shape[0], np.int8), f"{wname}_z")]
                node = helper.make_node("DequantizeLinear", [f"{wname}_q", f"{wname}_s", f"{wname}_z"],
                                        [f"{wname}_dq"], name=f"{wname}_DQ", axis=0)
                ws = s
            elif weights in ("exact", "exact-fine"):
                # the TFLite grid as per-channel symmetric int8: v = q - zp is an integer; a channel whose
                # v fits in [-128, 127] keeps scale s and is exact (99.65% of channels); the others get
                # scale k*s (k = 2, aligned, 'exact') or the finest symmetric scale ('exact-fine')
                st = l["weight_scale"][0]
                v = np.round(w.astype(np.float64) / st).reshape(w.shape[0], -1)
                need = np.maximum(-v.min(1) / 128, v.max(1) / 127)
                k = np.where(need <= 1, 1.0, np.ceil(need) if weights == "exact" else need)
                s = st * k
                q = np.clip(np.round(v / k[:, None]), -128, 127).astype(np.int8).reshape(w.shape)
                new_inits += [numpy_helper.from_array(q, f"{wname}_q"),
                              numpy_helper.from_array(s.astype(np.float32), f"{wname}_s"),
                              numpy_helper.from_array(np.zeros(w.shape[0], np.int8), f"{wname}_z")]
                node = helper.make_node("DequantizeLinear", [f"{wname}_q", f"{wname}_s", f"{wname}_z"],
                                        [f"{wname}_dq"], name=f"{wname}_DQ", axis=0)
                ws = s.astype(np.float32)
                exact_stats[0] += int((k == 1).sum())
                exact_stats[1] += len(k)
            else:  # exact TFLite grid
                s, zp = l["weight_scale"][0], l["weight_zero_point"][0]
                q = np.clip(np.round(w / s + zp), 0, 255).astype(np.uint8)
                new_inits += [numpy_helper.from_array(q, f"{wname}_q"),
                              numpy_helper.from_array(np.array(s, np.float32), f"{wname}_s"),
                              numpy_helper.from_array(np.array(zp, np.uint8), f"{wname}_z")]
                node = helper.make_node("DequantizeLinear", [f"{wname}_q", f"{wname}_s", f"{wname}_z"],
                                        [f"{wname}_dq"], name=f"{wname}_DQ")
                ws = np.full(w.shape[0], s)
            new_nodes.append((None, [node]))
            wrename[(n.name, 1)] = f"{wname}_dq"
            if bias_int32 and in_quant:
                bs = (act_grid[in_t][0] * ws).astype(np.float32)
                bq = np.round(b.astype(np.float64) / bs)
                assert np.abs(bq).max() < 2**31 - 1, (n.name, np.abs(bq).max())
                bq = bq.astype(np.int32)
                new_inits += [numpy_helper.from_array(bq, f"{bname}_q"),
                              numpy_helper.from_array(bs, f"{bname}_s"),
                              numpy_helper.from_array(np.zeros(len(bq), np.int32), f"{bname}_z")]
                new_nodes.append((None, [helper.make_node("DequantizeLinear", [f"{bname}_q", f"{bname}_s", f"{bname}_z"],
                                                          [f"{bname}_dq"], name=f"{bname}_DQ", axis=0)]))
                wrename[(n.name, 2)] = f"{bname}_dq"
    # rewire consumers, then splice Q/DQ pairs right after their producers
    for n in g.node:
        for k, i in enumerate(n.input):
            if (n.name, k) in wrename:
                n.input[k] = wrename[(n.name, k)]
            elif i in rename:
                n.input[k] = rename[i]
    produced_after = {}
    head = []
    for t, nodes in new_nodes:
        if t is None or t == "input":
            head += nodes
        else:
            produced_after[t] = nodes
    ordered = list(head)
    for n in g.node:
        ordered.append(n)
        for o in n.output:
            ordered += produced_after.get(o, [])
    del g.node[:]
    g.node.extend(ordered)
    g.initializer.extend(new_inits)
    # drop the float weights that are no longer used
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return path


paths = {}
P = lambda name: os.path.join(OUT, f"mnv2.{name}.onnx")  # noqa: E731
paths["V1a qat-act u8 + w pc-i8"] = qdq_model(P("v1a"), weights="pc")
paths["V1b qat-act u8 + w tflite-u8"] = qdq_model(P("v1b"), weights="tfl")
paths["V2a V1a, stem+last f32"] = qdq_model(P("v2a"), weights="pc", float_convs=(first, last),
                                             skip_acts=("input", conv_out[last]))
paths["V2b V1b, stem+last f32"] = qdq_model(P("v2b"), weights="tfl", float_convs=(first, last),
                                             skip_acts=("input", conv_out[last]))
exact_stats[:] = [0, 0]
paths["V4 qat-act u8 + w tflite-grid i8 pc"] = qdq_model(P("v4"), weights="exact")
say(f"V4: {exact_stats[0]} of {exact_stats[1]} output channels hold the TFLite weights exactly as int8 (scale = TFLite "
    f"scale); the rest use twice the scale")
paths["V4f qat-act u8 + w tflite-grid i8 pc (fine)"] = qdq_model(P("v4f"), weights="exact-fine")
paths["V5 V4, stem+last f32"] = qdq_model(P("v5"), weights="exact", float_convs=(first, last),
                                          skip_acts=("input", conv_out[last]))
# diagnostics (fake-quant only): which half of the recipe costs accuracy
diag = {"D1 w pc-i8 only": qdq_model(P("d1"), weights="pc", acts=False),
        "D2 w tflite-u8 only": qdq_model(P("d2"), weights="tfl", acts=False),
        "D3 qat-act only": qdq_model(P("d3"), weights=None),
        "D4 w tflite-grid i8 pc only": qdq_model(P("d4"), weights="exact", acts=False)}

# ---- variant 3: plain post-training quantize_static (per-channel, min-max on 200 training images)
from onnxruntime.quantization import (CalibrationMethod, QuantFormat,  # noqa: E402
                                      QuantType, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: E402

fit, _ = split(BEANS)




if not os.path.exists(P("v3")):
    quant_pre_process(MODEL, P("pre"))
    quantize_static(P("pre"), P("v3"), calibration_reader(fit, 200), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    calibrate_method=CalibrationMethod.MinMax)
paths["V3 ptq quantize_static"] = P("v3")


def calibrated_grid(count):
    """Min-max uint8 grids of the same 63 tensors, measured on `count` training images (as V3)."""
    m = onnx.ModelProto()
    m.CopyFrom(base)
    for t in act:
        if t != "input":
            m.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    lo = {t: 0.0 for t in act}
    hi = {t: 0.0 for t in act}
    reader = calibration_reader(fit, count)
    while (feed := reader.get_next()) is not None:
        vals = dict(zip(names, sess.run(None, feed)))
        vals["input"] = feed["input"]
        for t in act:
            lo[t], hi[t] = min(lo[t], float(vals[t].min())), max(hi[t], float(vals[t].max()))
    out = {}
    for t in act:
        s = (hi[t] - lo[t]) / 255
        out[t] = (s, int(np.clip(np.round(-lo[t] / s), 0, 255)))
    return out


cal = calibrated_grid(200)
ratio = np.array([cal[t][0] / act[t][0] for t in act])
say(f"calibrated (min-max, 200 images) vs QAT activation scales: ratio median {np.median(ratio):.2f}, "
    f"min {ratio.min():.2f}, max {ratio.max():.2f}")
paths["V6 minmax-cal act u8 + w tflite-grid i8 pc (fine)"] = qdq_model(P("v6"), weights="exact-fine", grid=cal)
say("models written to " + OUT)

# ---------------------------------------------------------------------------------------------
# 3. Runners
# ---------------------------------------------------------------------------------------------
core = ov.Core()


def ov_compile(path, precision, threads, batch=1):
    model = core.read_model(path)
    model.reshape({"input": [batch, 3, 224, 224]})
    return core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision, "NUM_STREAMS": 1,
                                             "INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": False,
                                             "PERFORMANCE_HINT": "LATENCY"})


def ov_exec_summary(compiled):
    """How the compiled model runs its convolutions: counts of (layerType, runtimePrecision)."""
    rows = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str)
        prec = info["runtimePrecision"].astype(str) if "runtimePrecision" in info else "?"
        if kind in ("Convolution", "FullyConnected", "Eltwise", "Subgraph", "Pooling", "FakeQuantize",
                    "Reorder", "Quantize", "Deconvolution", "MatMul"):
            rows[(kind, prec)] = rows.get((kind, prec), 0) + 1
    return ", ".join(f"{k}:{p} x{c}" for (k, p), c in sorted(rows.items()))


def ort_session(path, threads=2, optimize=True):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    if not optimize:
        o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


items = [(f, c) for c in range(3) for f in sorted(glob.glob(f"{BEANS}/train/{CLASSES[c]}/*.jpg"))]
y = np.array([c for _, c in items])
cache_x = os.path.join(OUT, "inputs.npy")
if os.path.exists(cache_x):
    X = np.load(cache_x, mmap_mode="r")
else:
    X = np.stack([prepare(f) for f, _ in items]).astype(np.float32)
    np.save(cache_x, X)
say(f"{len(y)} photos, classes {np.bincount(y).tolist()}")


def feats(key, run):
    path = os.path.join(OUT, f"feat.{key.replace(' ', '_').replace('/', '_').replace(',', '')}.npy")
    if os.path.exists(path) and "--fresh" not in sys.argv:  # models are rewritten deterministically
        return np.load(path)
    t = time.time()
    out = np.concatenate([run(np.ascontiguousarray(X[i:i + 1])) for i in range(len(X))])
    np.save(path, out)
    say(f"  features {key}: {time.time() - t:.0f} s")
    return out


def ort_run(sess):
    return lambda x: sess.run(None, {"input": x})[0]


def ov_run(compiled):
    req = compiled.create_infer_request()
    return lambda x: req.infer({0: x})[0].copy()


if ACCURACY:
    F = {}
    F["f32 (onnxruntime)"] = feats("f32_ort", ort_run(ort_session(MODEL)))
    F["f32 (openvino)"] = feats("f32_ov", ov_run(ov_compile(MODEL, "f32", 2)))
    F["bf16 (openvino)"] = feats("bf16_ov", ov_run(ov_compile(MODEL, "bf16", 2)))
    say("OpenVINO exec graph:")
    say(f"  f32 : {ov_exec_summary(ov_compile(MODEL, 'f32', 1))}")
    say(f"  bf16: {ov_exec_summary(ov_compile(MODEL, 'bf16', 1))}")
    for name, path in paths.items():
        for prec in ("f32", "bf16"):
            c = ov_compile(path, prec, 2)
            say(f"  {name} [hint {prec}]: {ov_exec_summary(c)}")
            F[f"{name} | openvino hint {prec}"] = feats(f"{name}_ov_{prec}", ov_run(c))
        F[f"{name} | onnxruntime int8"] = feats(f"{name}_ort", ort_run(ort_session(path)))
        if not name.startswith("V3"):
            F[f"{name} | fake-quant (ORT, no fusion)"] = feats(f"{name}_fq", ort_run(ort_session(path, optimize=False)))
    for name, path in diag.items():
        F[f"{name} | fake-quant (ORT, no fusion)"] = feats(f"{name}_fq", ort_run(ort_session(path, optimize=False)))


    # ---------------------------------------------------------------------------------------------
    # 4. Accuracy: bf16_check.py's protocol
    # ---------------------------------------------------------------------------------------------
    def head():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))


    ref = F["f32 (onnxruntime)"]
    ref_pred = {}
    folds = [(seed, list(StratifiedKFold(3, shuffle=True, random_state=seed).split(y, y))) for seed in range(5)]
    for seed, fl in folds:
        for k, (tr, te) in enumerate(fl):
            h = head().fit(ref[tr], y[tr])
            ref_pred[(seed, k)] = (h, h.predict(ref[te]))
    N = 5 * len(y)
    say("\nAccuracy (4,500 held-out predictions each; own = head trained on this model's features; "
        "transfer = head trained on f32 (ORT) features, scored on this model's features)")
    say(f"{'model':58s} {'own acc':>8s} {'right':>6s} {'agree':>7s} {'transfer':>9s} {'t-right':>7s} {'t-agree':>7s} {'feat err':>8s}")
    summary = {}
    for name, f in F.items():
        right = agree = t_right = t_agree = 0
        for seed, fl in folds:
            for k, (tr, te) in enumerate(fl):
                h_ref, p_ref = ref_pred[(seed, k)]
                p = head().fit(f[tr], y[tr]).predict(f[te]) if f is not ref else p_ref
                pt = h_ref.predict(f[te])
                right += int((p == y[te]).sum())
                agree += int((p == p_ref).sum())
                t_right += int((pt == y[te]).sum())
                t_agree += int((pt == p_ref).sum())
        err = float(np.abs(f - ref).mean() / np.abs(ref).mean())
        summary[name] = (right / N, right, agree / N, t_right / N, err)
        say(f"{name:58s} {right / N:8.2%} {right:6d} {agree / N:7.2%} {t_right / N:9.2%} {t_right:7d} {t_agree / N:7.2%} {err:8.2%}")

# ---------------------------------------------------------------------------------------------
# 5. Speed: OpenVINO, 1 thread, batch 1, one infer request, alternating rounds
# ---------------------------------------------------------------------------------------------
if SPEED:
    x1 = np.ascontiguousarray(X[:1])
    timed = {"f32": (MODEL, "f32"), "bf16": (MODEL, "bf16")}
    for name, path in paths.items():
        if ONLY is not None and name.split()[0] not in ONLY:
            continue
        timed[f"{name} [hint f32]"] = (path, "f32")
        if name.split()[0] in ("V2a", "V4", "V4f", "V5"):
            timed[f"{name} [hint bf16]"] = (path, "bf16")
    reqs = {}
    for name, (path, prec) in timed.items():
        r = ov_compile(path, prec, 1).create_infer_request()
        for _ in range(20):
            r.infer({0: x1})
        reqs[name] = r
    rates = {name: [] for name in timed}
    say(f"\nSpeed: OpenVINO CPU, 1 thread, batch 1, {ROUNDS} alternating rounds of >= {SECONDS:.0f} s per model "
        f"(started {time.strftime('%H:%M:%S')}, load average {os.getloadavg()[0]:.2f})")
    for rnd in range(ROUNDS):
        order = list(timed) if rnd % 2 == 0 else list(reversed(timed))
        for name in order:
            r = reqs[name]
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < SECONDS:
                r.infer({0: x1})
                n += 1
            rates[name].append(n / (time.perf_counter() - start))
        say(f"  round {rnd + 1} done {time.strftime('%H:%M:%S')}, load average {os.getloadavg()[0]:.2f}")
    say(f"{'model':48s} {'median img/s':>12s} {'ms':>6s}   rounds (img/s)")
    for name in timed:
        med = float(np.median(rates[name]))
        say(f"{name:48s} {med:12.1f} {1000 / med:6.2f}   " + " / ".join(f"{v:.1f}" for v in rates[name]))
    # ONNX Runtime int8 single-threaded, one short round, for reference
    say("ONNX Runtime, 1 thread, batch 1 (one round):")
    for name, path in [("f32", MODEL)] + [(k, v) for k, v in paths.items() if ONLY is None or k.split()[0] in ONLY]:
        s = ort_session(path, threads=1)
        for _ in range(10):
            s.run(None, {"input": x1})
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < SECONDS:
            s.run(None, {"input": x1})
            n += 1
        say(f"  {name:46s} {n / (time.perf_counter() - start):8.1f} img/s")
if PROFILE:  # per-layer time by kernel (OpenVINO PERF_COUNT), 1 thread, batch 1, mean of 200 runs
    import collections
    x1 = np.ascontiguousarray(X[:1])
    say("\nOpenVINO per-kernel time (us per image, 1 thread, batch 1, PERF_COUNT, mean of 200 runs):")
    for name, path, prec in [("f32", MODEL, "f32"), ("bf16", MODEL, "bf16")] + [
            (k, v, "f32") for k, v in paths.items() if ONLY is None or k.split()[0] in ONLY]:
        model = core.read_model(path)
        model.reshape({"input": [1, 3, 224, 224]})
        c = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": prec, "NUM_STREAMS": 1,
                                              "INFERENCE_NUM_THREADS": 1, "PERF_COUNT": True,
                                              "ENABLE_CPU_PINNING": False})
        r = c.create_infer_request()
        for _ in range(50):
            r.infer({0: x1})
        tot = collections.Counter()
        for _ in range(200):
            r.infer({0: x1})
            for p in r.profiling_info:
                tot[f"{p.node_type}/{p.exec_type}"] += p.real_time.total_seconds() * 1e6 / 200
        say(f"  {name} [hint {prec}]: total {sum(tot.values()):.0f}: "
            + ", ".join(f"{k} {v:.0f}" for k, v in tot.most_common(6) if v >= 1))
say(f"done {time.strftime('%Y-%m-%d %H:%M:%S')}")
