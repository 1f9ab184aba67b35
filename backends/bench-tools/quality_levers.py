"""Accuracy levers for bean-leaf classification with a frozen mobile backbone + linear head (issue 19:
is >= 0.96 cross-validated accuracy reachable with a mobile backbone and a retrain of a few CPU minutes?).

    python quality_levers.py OUT_DIR CACHE_DIR BEANS_TRAIN_DIR MOBILENET_V2.onnx EFFICIENTNET_LITE0.onnx
        [--rows R1,R2,...] [--tune-c R1,R3,...] [--threads 2]

--rows picks rows of ROWS below (default: all); --tune-c adds a second line for the named rows with C
chosen by inner CV (see below). Rows R1-R5 are the issue's levers; rows labelled [extra] were added while
exploring (R7-R11 were designed after seeing earlier rows' CV numbers, so their best is optimistic).

The two .onnx files come from `target/debug/examples/export_onnx mobilenet_v2|efficientnet_lite0 OUT.onnx`
(input "input" f32 [batch,3,224,224], (pixel - zp)/128 with zp 128 / 127; output "features" [batch,1280]).
For sides other than 224 the input's spatial dims are rewritten to symbolic (the graphs end in
GlobalAveragePool and their explicit SAME paddings are the same for any side divisible by 32).

What it measures, per row (lever):
  * accuracy: all 900 photos of beans/train; StratifiedKFold(5, shuffle=True, random_state=seed) for
    seeds 0, 1, 2 -> mean and sample std (ddof=1) of the 15 fold accuracies, and the mean of the 15 fold
    macro-F1s; head = StandardScaler + LogisticRegression(max_iter=3000, C=0.1) on the (frozen) features.
    Rows named in --tune-c are also scored with C picked from {0.03, 0.1, 0.3} by an inner
    StratifiedKFold(3, shuffle=True, random_state=0) on each outer training fold only.
  * cost: feature-extraction time per image = median over full batches of (session.run time / 16),
    ONNX Runtime CPUExecutionProvider, intra_op_num_threads=2, batch 16 (preprocessing not included);
    a row that needs several forward passes (views, backbones) reports the sum of their medians.
Preprocessing (int8_common.prepare generalised): the centred square of side short*224/256, bilinear
resize (PIL box) to S x S, (p - zp)/128. Views: "c" centre crop; "f" centre crop mirrored; "tl", "tr",
"bl", "br" the same-size crop at a corner of the centred short-side square ("tlf"... mirrored); "full"
the whole photo resized to S x S (no crop).
TTA rows average the per-view feature vectors of an image (for training and test images alike).
Feature kinds (one forward pass each; see tap_session): "gap" the graph's own output (global average
pool of the final 1280-channel map); "gmp" global max pool of that map; "mid" global average pool of the
last block output of every stage with >= 32 channels; "blocks" of every block output; "acts" of every
ReLU6 output before the final one. Parts of a row are concatenated, then StandardScaler'd by the head.
Features are cached in CACHE_DIR/feat.<backbone>.<side>.<view>.npy (+ .ms.json with the timing), so each
backbone/side/view is extracted once. Everything printed is appended to OUT_DIR/results.txt.
[2026-12-06, second sitting] --seeds 3,4,5,6,7 scores rows on other CV splits than the ones rows were
chosen on (default 0,1,2). Kind "cov64": second-order pooling of the 64-channel stage's output (14 x 14
positions at 224): the upper triangle of sum_p x_p x_p^T / P, signed square root, L2-normalised (2080
values); its graph is the plain one plus that output (its cache files have their own timing). A part
(backbone, side, kinds, "log") is log1p(10 x) per value before the head (for non-negative ReLU6 means).
Rows with {"late": True} give each part its own head (StandardScaler + LogisticRegression C=0.1) and
answer the class with the largest sum of the heads' log-probabilities (late fusion).
[2026-12-06, third sitting] rows R14*: act_columns covers EfficientNet-Lite0 too ("adw" of either backbone
is sprig's every-block pooling of it), to ask which parts of R13e the 0.96 needs.
"""
import glob
import json
import os
import platform
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import sklearn
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from int8_common import CLASSES, results_log  # noqa: E402

OUT, CACHE, BEANS, MNV2, EFFL0 = sys.argv[1:6]


def opt(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


THREADS = int(opt("--threads", "2"))
BACKBONES = {"mnv2": (MNV2, 128.0), "effl0": (EFFL0, 127.0)}  # onnx path, zero point
os.makedirs(CACHE, exist_ok=True)
say = results_log(OUT)


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
say(f"\n===== quality_levers.py {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.gmtime())} =====")
say("command: " + " ".join([sys.executable] + sys.argv))
say(f"python {platform.python_version()}, onnxruntime {ort.__version__}, scikit-learn {sklearn.__version__}, "
    f"numpy {np.__version__}, onnx {onnx.__version__}; CPU: {cpu} ({os.cpu_count()} logical CPUs visible), "
    f"load average at start {os.getloadavg()[0]:.2f}")

items = [(f, c) for c in range(3) for f in sorted(glob.glob(f"{BEANS}/{CLASSES[c]}/*.jpg"))]
y = np.array([c for _, c in items])
say(f"{len(y)} photos from {BEANS}, per class {np.bincount(y).tolist()}")


# ---------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------
def prepare(path, side, zp, view):
    """One view of a photo as a [3, side, side] array; a view ending in "f" is mirrored."""
    mirror = view.endswith("f")
    view = (view[:-1] or "c") if mirror else view
    image = Image.open(path).convert("RGB")
    w, h = image.size
    if view == "full":
        box = (0, 0, w, h) if w == h else ((w - min(w, h)) / 2, (h - min(w, h)) / 2,
                                           (w + min(w, h)) / 2, (h + min(w, h)) / 2)
    else:
        s = min(w, h) * 224 / 256
        x0, y0 = (w - s) / 2, (h - s) / 2  # centre
        if view in ("tl", "tr", "bl", "br"):  # corner crops inside the centred short-side square
            q = min(w, h)
            qx, qy = (w - q) / 2, (h - q) / 2
            x0 = qx if view[1] == "l" else qx + q - s
            y0 = qy if view[0] == "t" else qy + q - s
        box = (x0, y0, x0 + s, y0 + s)
    image = image.resize((side, side), Image.BILINEAR, box=box)
    a = ((np.asarray(image, dtype=np.float32) - zp) / 128.0).transpose(2, 0, 1)
    if mirror:
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a)


_sessions = {}


def open_session(m, side):
    """An ONNX Runtime session of model m, its input's spatial dims made symbolic for sides other than 224."""
    if side != 224:
        assert side % 32 == 0
        dims = m.graph.input[0].type.tensor_type.shape.dim
        dims[2].ClearField("dim_value"); dims[2].dim_param = "height"
        dims[3].ClearField("dim_value"); dims[3].dim_param = "width"
    o = ort.SessionOptions()
    o.intra_op_num_threads = THREADS
    o.inter_op_num_threads = 1
    return ort.InferenceSession(m.SerializeToString(), o, providers=["CPUExecutionProvider"])


def session(backbone, side):
    key = (backbone, side)
    if key not in _sessions:
        _sessions[key] = open_session(onnx.load(BACKBONES[backbone][0]), side)
    return _sessions[key]


def feats(backbone, side, view):
    """(features [900, 1280], ms per image) of one backbone / side / view, cached."""
    path = os.path.join(CACHE, f"feat.{backbone}.{side}.{view}.npy")
    if os.path.exists(path) and os.path.exists(path + ".ms.json"):
        return np.load(path), json.load(open(path + ".ms.json"))["ms_per_image"]
    sess, zp = session(backbone, side), BACKBONES[backbone][1]
    for _ in range(2):  # warm-up
        sess.run(None, {"input": np.stack([prepare(f, side, zp, view) for f, _ in items[:16]])})
    rows, per_batch = [], []
    start = time.time()
    for i in range(0, len(items), 16):
        x = np.stack([prepare(f, side, zp, view) for f, _ in items[i:i + 16]])
        t = time.perf_counter()
        rows.append(sess.run(None, {"input": x})[0])
        if len(x) == 16:
            per_batch.append((time.perf_counter() - t) * 1000 / 16)
    out = np.concatenate(rows)
    ms = float(np.median(per_batch))
    np.save(path, out)
    json.dump({"ms_per_image": ms, "batches": per_batch, "threads": THREADS}, open(path + ".ms.json", "w"))
    say(f"  extracted {backbone} @{side} view {view}: {time.time() - start:.0f} s, {ms:.2f} ms/image "
        f"(median of {len(per_batch)} batches of 16; p10 {np.percentile(per_batch, 10):.2f}, "
        f"p90 {np.percentile(per_batch, 90):.2f}), load average {os.getloadavg()[0]:.2f}")
    return out, ms


STAGE_MIN_CHANNELS = 32  # "mid" taps: the last block output of every stage with >= 32 channels


EXT_KINDS = ("blocks", "acts")  # produced by the extended tapped graph (its own cache files and timing)
MOM_KINDS = ("actsq", "actmax")  # [extra, 2026-12-06] second moments and max pools of the same ReLU6 outputs


def tap_session(backbone, side, extended=False, moments=False):
    """The backbone with two extra outputs: "gmp" = GlobalMaxPool of the final 1280-channel map (the tensor
    the graph's GlobalAveragePool reads) and "mid" = GlobalAveragePool of each stage's last block output
    (an Add, or the projection Conv of a block without a residual), concatenated. extended=True instead
    adds "blocks" = GAP of every block output and "acts" = GAP of every ReLU6 (Clip) output except the
    final 1280-channel one (expansion and depthwise activations), each concatenated."""
    key = (backbone, side, "taps-mom" if moments else "taps-ext" if extended else "taps")
    if key in _sessions:
        return _sessions[key]
    m = onnx.shape_inference.infer_shapes(onnx.load(BACKBONES[backbone][0]))
    g = m.graph
    shape = {v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim] for v in g.value_info}
    users = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n.op_type)
    last, blocks = {}, []  # channels -> last block output with that many channels; every block output
    for n in g.node:
        o = n.output[0]
        if n.op_type == "Add" or (n.op_type == "Conv" and not {"Clip", "Add"} & set(users.get(o, []))):
            last[shape[o][1]] = o
            blocks.append(o)
    taps = [last[c] for c in sorted(last) if c >= STAGE_MIN_CHANNELS]
    final = next(n.input[0] for n in g.node if n.op_type == "GlobalAveragePool")
    acts = [n.output[0] for n in g.node if n.op_type == "Clip" and n.output[0] != final]
    new = []

    def pooled(name, tensors):
        for k, t in enumerate(tensors):
            new.extend([onnx.helper.make_node("GlobalAveragePool", [t], [f"{name}{k}4d"]),
                        onnx.helper.make_node("Flatten", [f"{name}{k}4d"], [f"{name}{k}"], axis=1)])
        new.append(onnx.helper.make_node("Concat", [f"{name}{k}" for k in range(len(tensors))], [name], axis=1))
        g.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))

    if moments:  # "actsq" = GAP of x*x (with "acts" gives each channel's std), "actmax" = GlobalMaxPool
        for k, t in enumerate(acts):
            new.append(onnx.helper.make_node("Mul", [t, t], [f"sq{k}"]))
        pooled("actsq", [f"sq{k}" for k in range(len(acts))])
        for k, t in enumerate(acts):
            new.extend([onnx.helper.make_node("GlobalMaxPool", [t], [f"actmax{k}4d"]),
                        onnx.helper.make_node("Flatten", [f"actmax{k}4d"], [f"actmax{k}"], axis=1)])
        new.append(onnx.helper.make_node("Concat", [f"actmax{k}" for k in range(len(acts))], ["actmax"], axis=1))
        g.output.append(onnx.helper.make_tensor_value_info("actmax", onnx.TensorProto.FLOAT, None))
    elif extended:
        pooled("blocks", blocks)
        pooled("acts", acts)
    else:
        new += [onnx.helper.make_node("GlobalMaxPool", [final], ["gmp4d"]),
                onnx.helper.make_node("Flatten", ["gmp4d"], ["gmp"], axis=1)]
        g.output.append(onnx.helper.make_tensor_value_info("gmp", onnx.TensorProto.FLOAT, None))
        pooled("mid", taps)
    g.node.extend(new)
    del g.value_info[:]
    sess = open_session(m, side)
    if moments:
        say(f"  {backbone} moment taps: actsq = GAP of x*x and actmax = GlobalMaxPool of {len(acts)} ReLU6 outputs")
    elif extended:
        say(f"  {backbone} extended taps: blocks = GAP of {len(blocks)} block outputs ({sum(shape[t][1] for t in blocks)}), "
            f"acts = GAP of {len(acts)} ReLU6 outputs ({sum(shape[t][1] for t in acts)})")
    else:
        say(f"  {backbone} taps: gmp of {final} (1280), mid = GAP of " + ", ".join(f"{t} ({shape[t][1]})" for t in taps)
            + f" = {sum(shape[t][1] for t in taps)}")
    _sessions[key] = sess
    return sess


def feats_tap(backbone, side, view, kind):
    """(features, ms per image of the tapped graph) for kind "gmp", "mid", "blocks" or "acts", cached."""
    extended = kind in EXT_KINDS
    moments = kind in MOM_KINDS
    outs = MOM_KINDS if moments else EXT_KINDS if extended else ("gmp", "mid")
    paths = {k: os.path.join(CACHE, f"feat.{backbone}.{side}.{view}.{k}.npy") for k in outs}
    timing = paths[outs[-1]] + ".ms.json"
    if all(os.path.exists(p) for p in paths.values()) and os.path.exists(timing):
        return np.load(paths[kind]), json.load(open(timing))["ms_per_image"]
    sess, zp = tap_session(backbone, side, extended, moments), BACKBONES[backbone][1]
    names = ["features", *outs]
    for _ in range(2):
        sess.run(names, {"input": np.stack([prepare(f, side, zp, view) for f, _ in items[:16]])})
    rows, per_batch = [], []
    start = time.time()
    for i in range(0, len(items), 16):
        x = np.stack([prepare(f, side, zp, view) for f, _ in items[i:i + 16]])
        t = time.perf_counter()
        rows.append(sess.run(names, {"input": x}))
        if len(x) == 16:
            per_batch.append((time.perf_counter() - t) * 1000 / 16)
    gap = np.concatenate([r[0] for r in rows])
    plain = os.path.join(CACHE, f"feat.{backbone}.{side}.{view}.npy")
    if os.path.exists(plain):  # the tapped graph must give the same "features" output
        say(f"  check: tapped graph features vs plain graph, max abs diff {np.abs(gap - np.load(plain)).max():.2e}")
    for j, k in enumerate(outs, 1):
        np.save(paths[k], np.concatenate([r[j] for r in rows]))
    ms = float(np.median(per_batch))
    json.dump({"ms_per_image": ms, "batches": per_batch, "threads": THREADS}, open(timing, "w"))
    say(f"  extracted {backbone} @{side} view {view} with taps (gap+{'+'.join(outs)} in one pass): {time.time() - start:.0f} s, "
        f"{ms:.2f} ms/image (median of {len(per_batch)} batches of 16), load average {os.getloadavg()[0]:.2f}")
    return np.load(paths[kind]), ms


def feats_cov(backbone, side, view, channels=64):
    """(second-order pooled features, ms per image) of the last block output with `channels` channels:
    upper triangle of the channel covariance (uncentred) over positions, signed sqrt, L2 norm; cached."""
    path = os.path.join(CACHE, f"feat.{backbone}.{side}.{view}.cov{channels}.npy")
    if os.path.exists(path) and os.path.exists(path + ".ms.json"):
        return np.load(path), json.load(open(path + ".ms.json"))["ms_per_image"]
    m = onnx.shape_inference.infer_shapes(onnx.load(BACKBONES[backbone][0]))
    g = m.graph
    shape = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in g.value_info}
    users = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n.op_type)
    tap = [n.output[0] for n in g.node if shape.get(n.output[0], [0, 0])[1] == channels
           and (n.op_type == "Add" or (n.op_type == "Conv" and not {"Clip", "Add"} & set(users.get(n.output[0], []))))][-1]
    del g.value_info[:]
    g.output.append(onnx.helper.make_tensor_value_info(tap, onnx.TensorProto.FLOAT, None))
    sess = open_session(m, side)
    zp, upper = BACKBONES[backbone][1], np.triu_indices(channels)
    rows, per_batch = [], []
    start = time.time()
    for i in range(0, len(items), 16):
        x = np.stack([prepare(f, side, zp, view) for f, _ in items[i:i + 16]])
        t = time.perf_counter()
        maps = sess.run([tap], {"input": x})[0]
        if len(x) == 16 and i > 0:  # the first batch warms up
            per_batch.append((time.perf_counter() - t) * 1000 / 16)
        maps = maps.reshape(len(x), channels, -1)
        cov = np.einsum("bcp,bdp->bcd", maps, maps)[:, upper[0], upper[1]] / maps.shape[2]
        cov = np.sign(cov) * np.sqrt(np.abs(cov))
        rows.append((cov / np.linalg.norm(cov, axis=1, keepdims=True)).astype(np.float32))
    out, ms = np.concatenate(rows), float(np.median(per_batch))
    np.save(path, out)
    json.dump({"ms_per_image": ms, "batches": per_batch, "threads": THREADS, "tap": tap}, open(path + ".ms.json", "w"))
    say(f"  extracted {backbone} @{side} view {view} cov{channels} of {tap}: {time.time() - start:.0f} s, "
        f"{ms:.2f} ms/image (median of {len(per_batch)} batches of 16; covariance in numpy not timed)")
    return out, ms


def act_columns(backbone, kind):
    """Columns of the "acts" features that belong to depthwise ("adw") or expansion ("aexp") ReLU6
    outputs (the stem's count as neither), from the block table of either backbone."""
    stages = {"mnv2": [(1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1)],
              "effl0": [(1, 16, 1), (6, 24, 2), (6, 40, 2), (6, 80, 3), (6, 112, 3), (6, 192, 4), (6, 320, 1)]}[backbone]
    cols, at, width = [], 32, 32
    for expand, channels, repeats in stages:
        for _ in range(repeats):
            hidden = width * expand
            if expand != 1:
                if kind == "aexp":
                    cols.extend(range(at, at + hidden))
                at += hidden
            if kind == "adw":
                cols.extend(range(at, at + hidden))
            at += hidden
            width = channels
    return np.array(cols)


BUILD_PASSES = [0]  # forward passes per image of the last build()


def build(parts, views, split=False):
    """Concatenate parts, each the mean over `views`. A part is (backbone, side) for the graph's own
    output (global average pool, "gap") or (backbone, side, "gap+gmp+mid"...) for pooled taps; the
    tapped graph yields all three in one forward pass, so such a part is charged its timing once. Parts
    of one backbone and side (late-fusion rows) share a forward pass: it is charged once, at the most
    expensive of their graphs."""
    blocks, ms, per_part, passes = [], 0.0, [], {}

    def charge(backbone, side, v, t):
        passes[(backbone, side, v)] = max(passes.get((backbone, side, v), 0.0), t)

    for part in parts:
        backbone, side = part[:2]
        kinds = part[2].split("+") if len(part) > 2 else ["gap"]
        first = len(blocks)
        for v in views:
            if kinds == ["cov64"]:
                charge(backbone, side, v, feats_cov(backbone, side, v)[1])
            elif kinds == ["gap"]:
                charge(backbone, side, v, feats(backbone, side, v)[1])
            else:  # the most expensive graph the part needs (the extended tapped graph includes nothing else)
                charge(backbone, side, v, max(feats_tap(backbone, side, v, "acts" if set(kinds) & set(EXT_KINDS + ("astd", "adw", "aexp")) else "mid")[1],
                          feats_tap(backbone, side, v, "mid")[1] if {"gmp", "mid"} & set(kinds) else 0.0))
        if set(kinds) & set(MOM_KINDS + ("astd",)):
            ms += np.mean([feats_tap(backbone, side, v, "actsq")[1] for v in views])  # extra pass, charged apart
        for k in kinds:
            if k in ("adw", "aexp"):  # [extra] only the depthwise / only the expansion ReLU6 outputs
                cols = act_columns(backbone, k)
                get = lambda v, cols=cols: feats_tap(backbone, side, v, "acts")[0][:, cols]
            elif k == "astd":  # per-channel standard deviation of every ReLU6 output
                get = (lambda v: np.sqrt(np.maximum(feats_tap(backbone, side, v, "actsq")[0]
                                                    - feats_tap(backbone, side, v, "acts")[0] ** 2, 0)))
            elif k == "gap":
                get = lambda v: feats(backbone, side, v)[0]
            elif k == "cov64":
                get = lambda v: feats_cov(backbone, side, v)[0]
            else:
                get = lambda v, k=k: feats_tap(backbone, side, v, k)[0]
            blocks.append(np.mean([get(v) for v in views], axis=0))
        part_x = np.concatenate(blocks[first:], axis=1)
        per_part.append(np.log1p(10 * part_x) if part[3:] == ("log",) else part_x)
    ms += sum(passes.values())
    BUILD_PASSES[0] = len(passes)
    if split:
        return per_part, ms
    return np.concatenate(per_part, axis=1), ms


# ---------------------------------------------------------------------------------------------
# heads
# ---------------------------------------------------------------------------------------------
def head(c):
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=c))


CS = (0.03, 0.1, 0.3)


def inner_c(x, yy):
    inner = StratifiedKFold(3, shuffle=True, random_state=0)
    score = {c: np.mean([accuracy_score(yy[te], head(c).fit(x[tr], yy[tr]).predict(x[te]))
                         for tr, te in inner.split(yy, yy)]) for c in CS}
    return max(CS, key=lambda c: (score[c], -abs(np.log(c / 0.1))))  # ties -> closest to 0.1


def svc_head(c=None):  # [extra] RBF SVM, sklearn defaults (C=1, gamma="scale"); not tuned
    from sklearn.svm import SVC
    return make_pipeline(StandardScaler(), SVC())


SEEDS = [int(s) for s in opt("--seeds", "0,1,2").split(",")]
# [2026-12-06, third sitting] --train-fraction F keeps a stratified F of each training fold (seeded by the
# split's seed), as sprig's cross-validation trains on ~0.8 of its folds (the rest is its validation split)
TRAIN_FRACTION = float(opt("--train-fraction", "1"))


def kept(tr, seed):
    if TRAIN_FRACTION >= 1:
        return tr
    keep, _ = train_test_split(tr, train_size=TRAIN_FRACTION, stratify=y[tr], random_state=seed)
    return np.sort(keep)


def cross_validate(x, c=0.1, tune=False, train_aug=None, make_head=None, late=None):
    """15 (accuracy, macro-F1, C) tuples. train_aug: list of extra per-view feature arrays whose rows
    are added to the training folds as extra samples (test images still use x). late: a list of per-part
    feature arrays, each given its own head; the answer maximises the sum of their log-probabilities."""
    out = []
    for seed in SEEDS:
        for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(y, y):
            tr = kept(tr, seed)
            if late is not None:
                p = sum(head(c).fit(part[tr], y[tr]).predict_log_proba(part[te]) for part in late).argmax(1)
                out.append((accuracy_score(y[te], p), f1_score(y[te], p, average="macro"), c))
                continue
            xtr, ytr = x[tr], y[tr]
            if train_aug is not None:
                xtr = np.concatenate([a[tr] for a in train_aug])
                ytr = np.concatenate([y[tr]] * len(train_aug))
            cc = inner_c(xtr, ytr) if tune else c
            p = (make_head or head)(cc).fit(xtr, ytr).predict(x[te])
            out.append((accuracy_score(y[te], p), f1_score(y[te], p, average="macro"), cc))
    return out


# row id -> (label, parts, views, extra)
ROWS = {
    "R1": ("mobilenet_v2 @224 (baseline)", [("mnv2", 224)], ["c"], {}),
    "R2": ("efficientnet_lite0 @224", [("effl0", 224)], ["c"], {}),
    "R3": ("ensemble mnv2+effl0 concat (2560-d) @224", [("mnv2", 224), ("effl0", 224)], ["c"], {}),
    "R4a": ("mobilenet_v2 @224 + flip TTA (mean of 2 views)", [("mnv2", 224)], ["c", "f"], {}),
    "R4b": ("ensemble @224 + flip TTA", [("mnv2", 224), ("effl0", 224)], ["c", "f"], {}),
    "R5a": ("mobilenet_v2 @256 (crop upsampled)", [("mnv2", 256)], ["c"], {}),
    "R5b": ("mobilenet_v2 @288 (crop upsampled)", [("mnv2", 288)], ["c"], {}),
    "R5c256": ("ensemble @256", [("mnv2", 256), ("effl0", 256)], ["c"], {}),
    "R5c288": ("ensemble @288", [("mnv2", 288), ("effl0", 288)], ["c"], {}),
    "R5d": ("efficientnet_lite0 @256 (crop upsampled)", [("effl0", 256)], ["c"], {}),
    "R5e": ("efficientnet_lite0 @288 (crop upsampled)", [("effl0", 288)], ["c"], {}),
    "R5f": ("ensemble @288 + flip TTA", [("mnv2", 288), ("effl0", 288)], ["c", "f"], {}),
    "R6a": ("[extra] mobilenet_v2 @224 5-crop TTA (centre + 4 corners)", [("mnv2", 224)],
            ["c", "tl", "tr", "bl", "br"], {}),
    "R6b": ("[extra] mobilenet_v2 @224 flip as train-time aug (2x samples), flip TTA at test", [("mnv2", 224)],
            ["c", "f"], {"train_aug": True}),
    "R6c": ("[extra] mobilenet_v2 @256 whole photo, no crop", [("mnv2", 256)], ["full"], {}),
    "R6e": ("[extra] mobilenet_v2 @224 whole photo, no crop", [("mnv2", 224)], ["full"], {}),
    "R7a": ("[extra] mobilenet_v2 @224 avg-pool + max-pool of final map (2560-d)", [("mnv2", 224, "gap+gmp")],
            ["c"], {}),
    "R7b": ("[extra] mobilenet_v2 @224 avg-pool + pooled stage outputs (mid)", [("mnv2", 224, "gap+mid")],
            ["c"], {}),
    "R7c": ("[extra] mobilenet_v2 @224 gap+gmp+mid", [("mnv2", 224, "gap+gmp+mid")], ["c"], {}),
    "R7d": ("[extra] ensemble @224 gap+gmp+mid", [("mnv2", 224, "gap+gmp+mid"), ("effl0", 224, "gap+gmp+mid")],
            ["c"], {}),
    "R7e": ("[extra] mobilenet_v2 @224 gap+gmp+mid + flip TTA", [("mnv2", 224, "gap+gmp+mid")], ["c", "f"], {}),
    "R7f": ("[extra] ensemble @224 gap+gmp+mid + flip TTA",
            [("mnv2", 224, "gap+gmp+mid"), ("effl0", 224, "gap+gmp+mid")], ["c", "f"], {}),
    "R8a": ("[extra] mobilenet_v2 @224 gap+mid + flip TTA", [("mnv2", 224, "gap+mid")], ["c", "f"], {}),
    "R8b": ("[extra] ensemble @224 gap+mid", [("mnv2", 224, "gap+mid"), ("effl0", 224, "gap+mid")], ["c"], {}),
    "R8c": ("[extra] ensemble @224 gap+mid + flip TTA", [("mnv2", 224, "gap+mid"), ("effl0", 224, "gap+mid")],
            ["c", "f"], {}),
    "R8d": ("[extra] efficientnet_lite0 @288 gap+mid", [("effl0", 288, "gap+mid")], ["c"], {}),
    "R8e": ("[extra] ensemble mnv2@224 gap+mid + effl0@288 gap+mid", [("mnv2", 224, "gap+mid"),
            ("effl0", 288, "gap+mid")], ["c"], {}),
    "R8f": ("[extra] R8e + flip TTA", [("mnv2", 224, "gap+mid"), ("effl0", 288, "gap+mid")], ["c", "f"], {}),
    "R8g": ("[extra] mobilenet_v2 @224 gap+mid, RBF-SVC head", [("mnv2", 224, "gap+mid")], ["c"], {"svc": True}),
    "R8h": ("[extra] ensemble @224 gap (R3 features), RBF-SVC head", [("mnv2", 224), ("effl0", 224)], ["c"],
            {"svc": True}),
    "R8i": ("[extra] ensemble @224 gap+mid, RBF-SVC head", [("mnv2", 224, "gap+mid"), ("effl0", 224, "gap+mid")],
            ["c"], {"svc": True}),
    "R9a": ("[extra] efficientnet_lite0 @320 (crop upsampled)", [("effl0", 320)], ["c"], {}),
    "R9b": ("[extra] efficientnet_lite0 @352 (crop upsampled)", [("effl0", 352)], ["c"], {}),
    "R9c": ("[extra] efficientnet_lite0 @320 gap+mid", [("effl0", 320, "gap+mid")], ["c"], {}),
    "R9d": ("[extra] efficientnet_lite0 @352 gap+mid", [("effl0", 352, "gap+mid")], ["c"], {}),
    "R9e": ("[extra] mobilenet_v2 @288 gap+mid", [("mnv2", 288, "gap+mid")], ["c"], {}),
    "R10a": ("[extra] mobilenet_v2 @224 gap+blocks (every block output pooled)", [("mnv2", 224, "gap+blocks")],
             ["c"], {}),
    "R10b": ("[extra] mobilenet_v2 @224 gap+acts (every ReLU6 output pooled)", [("mnv2", 224, "gap+acts")],
             ["c"], {}),
    "R10c": ("[extra] efficientnet_lite0 @288 gap+blocks", [("effl0", 288, "gap+blocks")], ["c"], {}),
    "R10d": ("[extra] efficientnet_lite0 @288 gap+acts", [("effl0", 288, "gap+acts")], ["c"], {}),
    "R11a": ("[extra] mobilenet_v2 @224 gap+acts + flip TTA", [("mnv2", 224, "gap+acts")], ["c", "f"], {}),
    "R11b": ("[extra] ensemble mnv2@224 gap+acts + effl0@288 gap+blocks",
             [("mnv2", 224, "gap+acts"), ("effl0", 288, "gap+blocks")], ["c"], {}),
    "R11c": ("[extra] R11b + flip TTA", [("mnv2", 224, "gap+acts"), ("effl0", 288, "gap+blocks")], ["c", "f"], {}),
    "R11d": ("[extra] ensemble mnv2@224 gap+acts + effl0@288 gap+acts",
             [("mnv2", 224, "gap+acts"), ("effl0", 288, "gap+acts")], ["c"], {}),
    "R11e": ("[extra] efficientnet_lite0 @288 gap+blocks + flip TTA", [("effl0", 288, "gap+blocks")], ["c", "f"], {}),
    # [extra, 2026-12-06] toward 0.96 with one MobileNetV2 pass: other poolings of the ReLU6 outputs, sides
    "R12a": ("[extra] mobilenet_v2 @224 gap+acts+astd (mean and std of every ReLU6 output)",
             [("mnv2", 224, "gap+acts+astd")], ["c"], {}),
    "R12b": ("[extra] mobilenet_v2 @224 gap+acts+actmax", [("mnv2", 224, "gap+acts+actmax")], ["c"], {}),
    "R12c": ("[extra] mobilenet_v2 @224 gap+astd", [("mnv2", 224, "gap+astd")], ["c"], {}),
    "R12d": ("[extra] mobilenet_v2 @256 gap+acts", [("mnv2", 256, "gap+acts")], ["c"], {}),
    "R12e": ("[extra] mobilenet_v2 @224 whole photo gap+acts", [("mnv2", 224, "gap+acts")], ["full"], {}),
    "R12f": ("[extra] mobilenet_v2 @224 gap+acts, flip as train-time aug + flip TTA", [("mnv2", 224, "gap+acts")],
             ["c", "f"], {"train_aug": True}),
    "R12g": ("[extra] mobilenet_v2 @288 gap+acts", [("mnv2", 288, "gap+acts")], ["c"], {}),
    "R12h": ("[extra] mobilenet_v2 @224 gap+adw (depthwise ReLU6 outputs only)", [("mnv2", 224, "gap+adw")],
             ["c"], {}),
    "R12i": ("[extra] mobilenet_v2 @224 gap+aexp (expansion ReLU6 outputs only)", [("mnv2", 224, "gap+aexp")],
             ["c"], {}),
    # [extra, 2026-12-06 second sitting] log-scaled means, second-order pooling, heads fused late
    "R13a": ("[extra] mobilenet_v2 @224 gap+adw, log1p(10x)", [("mnv2", 224, "gap+adw", "log")], ["c"], {}),
    "R13b": ("[extra] mobilenet_v2 @224 cov64 (second-order pool of the 64-ch stage)", [("mnv2", 224, "cov64")],
             ["c"], {}),
    "R13c": ("[extra] late fusion: R13a | R13b (one pass)", [("mnv2", 224, "gap+adw", "log"), ("mnv2", 224, "cov64")],
             ["c"], {"late": True}),
    "R13d": ("[extra] late fusion: mnv2@224 gap+adw | effl0@288 gap+blocks",
             [("mnv2", 224, "gap+adw"), ("effl0", 288, "gap+blocks")], ["c"], {"late": True}),
    "R13e": ("[extra] late fusion: R13a | effl0@288 gap+blocks | R13b",
             [("mnv2", 224, "gap+adw", "log"), ("effl0", 288, "gap+blocks"), ("mnv2", 224, "cov64")], ["c"],
             {"late": True}),
    "R13f": ("[extra] R13e + flip TTA", [("mnv2", 224, "gap+adw", "log"), ("effl0", 288, "gap+blocks"),
             ("mnv2", 224, "cov64")], ["c", "f"], {"late": True}),
    "R13g": ("[extra] R13e's features in one head (concatenated, jointly trained)",
             [("mnv2", 224, "gap+adw", "log"), ("effl0", 288, "gap+blocks"), ("mnv2", 224, "cov64")], ["c"], {}),
    "R13h": ("[extra] R13c's features in one head", [("mnv2", 224, "gap+adw", "log"), ("mnv2", 224, "cov64")],
             ["c"], {}),
    # [extra, 2026-12-06 third sitting] what sprig's existing every-block pooling of both backbones at 224
    # reaches when fused late (no 288 pass, no new pooling)
    "R14a": ("[extra] late fusion: mnv2@224 gap+adw | effl0@224 gap+adw",
             [("mnv2", 224, "gap+adw"), ("effl0", 224, "gap+adw")], ["c"], {"late": True}),
    "R14b": ("[extra] late fusion: R13a | effl0@224 gap+adw log",
             [("mnv2", 224, "gap+adw", "log"), ("effl0", 224, "gap+adw", "log")], ["c"], {"late": True}),
    "R14c": ("[extra] late fusion: R13a | effl0@224 gap+adw log | R13b",
             [("mnv2", 224, "gap+adw", "log"), ("effl0", 224, "gap+adw", "log"), ("mnv2", 224, "cov64")], ["c"],
             {"late": True}),
    "R14d": ("[extra] effl0@224 gap+adw alone", [("effl0", 224, "gap+adw")], ["c"], {}),
    "R14e": ("[extra] late fusion: mnv2@224 gap+adw | effl0@288 gap+adw",
             [("mnv2", 224, "gap+adw"), ("effl0", 288, "gap+adw")], ["c"], {"late": True}),
    "R14f": ("[extra] late fusion: mnv2@288 gap+adw log | mnv2@288 cov64 (one pass at 288)",
             [("mnv2", 288, "gap+adw", "log"), ("mnv2", 288, "cov64")], ["c"], {"late": True}),
    "R14g": ("[extra] late fusion: mnv2@256 gap+adw log | mnv2@256 cov64 (one pass at 256)",
             [("mnv2", 256, "gap+adw", "log"), ("mnv2", 256, "cov64")], ["c"], {"late": True}),
    "R14h": ("[extra] late fusion: mnv2@224 gap+adw | R13b (R13c without the log scaling)",
             [("mnv2", 224, "gap+adw"), ("mnv2", 224, "cov64")], ["c"], {"late": True}),
    "R14i": ("[extra] late fusion: mnv2@224 gap+adw | effl0@288 gap+adw | R13b (sprig's every-block of both)",
             [("mnv2", 224, "gap+adw"), ("effl0", 288, "gap+adw"), ("mnv2", 224, "cov64")], ["c"], {"late": True}),
    "R14j": ("[extra] R13e without the log scaling",
             [("mnv2", 224, "gap+adw"), ("effl0", 288, "gap+blocks"), ("mnv2", 224, "cov64")], ["c"], {"late": True}),
    "R6d": ("[extra] ensemble @224 5-crop + flip TTA (10 views)", [("mnv2", 224), ("effl0", 224)],
            ["c", "f", "tl", "tr", "bl", "br", "tlf", "trf", "blf", "brf"], {}),
}
ROW_ORDER = opt("--rows", ",".join(ROWS)).split(",")
TUNE = set(filter(None, opt("--tune-c", "").split(",")))

say(f"rows: {ROW_ORDER}; tune-C rows: {sorted(TUNE) or 'none'}; head StandardScaler + LogisticRegression"
    f"(max_iter=3000, C=0.1 unless tuned); 5-fold stratified CV x seeds {SEEDS} ({5 * len(SEEDS)} folds)"
    f"{f'; training folds cut to {TRAIN_FRACTION}' if TRAIN_FRACTION < 1 else ''}")
results = []
for rid in ROW_ORDER:
    label, parts, views, extra = ROWS[rid]
    x, ms = build(parts, views)
    fwd = BUILD_PASSES[0]
    aug = None
    if extra.get("train_aug"):  # each view a separate training sample; test rows are the view mean
        aug = [build(parts, [v])[0] for v in views]
    for tune in ([False, True] if rid in TUNE else [False]):
        t = time.time()
        late = build(parts, views, split=True)[0] if extra.get("late") else None
        r = cross_validate(x, tune=tune, train_aug=aug, make_head=svc_head if extra.get("svc") else None, late=late)
        acc = np.array([a for a, _, _ in r])
        f1 = np.mean([f for _, f, _ in r])
        cs = [c for _, _, c in r]
        ctext = "late fusion, C=0.1 each" if late else "RBF-SVC C=1 gamma=scale" if extra.get("svc") else "C=0.1" if not tune else "C inner-CV " + ",".join(f"{c:g}x{cs.count(c)}" for c in CS if cs.count(c))
        row = (rid, label, ctext, acc.mean(), acc.std(ddof=1), f1, ms, x.shape[1], fwd)
        results.append(row)
        say(f"{rid:7s} {label:70s} {ctext:28s} acc {acc.mean():.4f} ± {acc.std(ddof=1):.4f} "
            f"(min {acc.min():.4f} max {acc.max():.4f}) macro-F1 {f1:.4f}  {ms:6.2f} ms/img "
            f"({fwd} fwd, {x.shape[1]}-d)  [{time.time() - t:.0f} s CV]")

say(f"\nSummary (accuracy = mean ± sample std of {5 * len(SEEDS)} fold accuracies; ms/img = ORT CPU 2 threads batch 16, "
    "median per batch / 16, summed over forward passes)")
say(f"{'row':7s} {'lever':70s} {'head':28s} {'CV acc':>16s} {'macro-F1':>8s} {'ms/img':>7s} {'fwd':>3s}")
for rid, label, ctext, m, s, f1, ms, d, n in results:
    say(f"{rid:7s} {label:70s} {ctext:28s} {m:.4f} ± {s:.4f} {f1:8.4f} {ms:7.2f} {n:3d}")
say(f"done {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.gmtime())}")
