"""Accuracy levers for bean-leaf classification with a frozen mobile backbone + linear head (issue 19:
is >= 0.96 cross-validated accuracy reachable with a mobile backbone and a retrain of a few CPU minutes?).

    python quality_levers.py OUT_DIR CACHE_DIR BEANS_TRAIN_DIR MOBILENET_V2.onnx EFFICIENTNET_LITE0.onnx
        [--rows R1,R2,...] [--tune-c R1,R3,...] [--threads 2]

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
Features are cached in CACHE_DIR/feat.<backbone>.<side>.<view>.npy (+ .ms.json with the timing), so each
backbone/side/view is extracted once. Everything printed is appended to OUT_DIR/results.txt.
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
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

OUT, CACHE, BEANS, MNV2, EFFL0 = sys.argv[1:6]


def opt(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


THREADS = int(opt("--threads", "2"))
CLASSES = ["angular_leaf_spot", "bean_rust", "healthy"]
BACKBONES = {"mnv2": (MNV2, 128.0), "effl0": (EFFL0, 127.0)}  # onnx path, zero point
os.makedirs(OUT, exist_ok=True)
os.makedirs(CACHE, exist_ok=True)
LOG = open(os.path.join(OUT, "results.txt"), "a")


def say(*args):
    text = " ".join(str(a) for a in args)
    print(text, flush=True)
    LOG.write(text + "\n")
    LOG.flush()


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


def session(backbone, side):
    key = (backbone, side)
    if key not in _sessions:
        m = onnx.load(BACKBONES[backbone][0])
        if side != 224:
            assert side % 32 == 0
            dims = m.graph.input[0].type.tensor_type.shape.dim
            dims[2].ClearField("dim_value"); dims[2].dim_param = "height"
            dims[3].ClearField("dim_value"); dims[3].dim_param = "width"
        o = ort.SessionOptions()
        o.intra_op_num_threads = THREADS
        o.inter_op_num_threads = 1
        _sessions[key] = ort.InferenceSession(m.SerializeToString(), o, providers=["CPUExecutionProvider"])
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


def build(parts, views):
    """Concatenate backbones (parts = [(backbone, side)]), each the mean over `views`."""
    blocks, ms = [], 0.0
    for backbone, side in parts:
        vs = [feats(backbone, side, v) for v in views]
        blocks.append(np.mean([f for f, _ in vs], axis=0))
        ms += sum(m for _, m in vs)
    return np.concatenate(blocks, axis=1), ms


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


def cross_validate(x, c=0.1, tune=False, train_aug=None):
    """15 (accuracy, macro-F1, C) tuples. train_aug: list of extra per-view feature arrays whose rows
    are added to the training folds as extra samples (test images still use x)."""
    out = []
    for seed in (0, 1, 2):
        for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(y, y):
            xtr, ytr = x[tr], y[tr]
            if train_aug is not None:
                xtr = np.concatenate([a[tr] for a in train_aug])
                ytr = np.concatenate([y[tr]] * len(train_aug))
            cc = inner_c(xtr, ytr) if tune else c
            p = head(cc).fit(xtr, ytr).predict(x[te])
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
    "R6a": ("[extra] mobilenet_v2 @224 5-crop TTA (centre + 4 corners)", [("mnv2", 224)],
            ["c", "tl", "tr", "bl", "br"], {}),
    "R6b": ("[extra] mobilenet_v2 @224 flip as train-time aug (2x samples), flip TTA at test", [("mnv2", 224)],
            ["c", "f"], {"train_aug": True}),
    "R6c": ("[extra] mobilenet_v2 @256 whole photo, no crop", [("mnv2", 256)], ["full"], {}),
    "R6d": ("[extra] ensemble @224 5-crop + flip TTA (10 views)", [("mnv2", 224), ("effl0", 224)],
            ["c", "f", "tl", "tr", "bl", "br", "tlf", "trf", "blf", "brf"], {}),
}
ROW_ORDER = opt("--rows", "R1,R2,R3,R4a,R4b,R5a,R5b").split(",")
TUNE = set(filter(None, opt("--tune-c", "").split(",")))

say(f"rows: {ROW_ORDER}; tune-C rows: {sorted(TUNE) or 'none'}; head StandardScaler + LogisticRegression"
    f"(max_iter=3000, C=0.1 unless tuned); 5-fold stratified CV x seeds 0,1,2 (15 folds)")
results = []
for rid in ROW_ORDER:
    label, parts, views, extra = ROWS[rid]
    x, ms = build(parts, views)
    aug = None
    if extra.get("train_aug"):  # each view a separate training sample; test rows are the view mean
        aug = [np.concatenate([feats(b, s, v)[0] for b, s in parts], axis=1) for v in views]
    for tune in ([False, True] if rid in TUNE else [False]):
        t = time.time()
        r = cross_validate(x, tune=tune, train_aug=aug)
        acc = np.array([a for a, _, _ in r])
        f1 = np.mean([f for _, f, _ in r])
        cs = [c for _, _, c in r]
        ctext = "C=0.1" if not tune else "C inner-CV " + ",".join(f"{c:g}x{cs.count(c)}" for c in CS if cs.count(c))
        row = (rid, label, ctext, acc.mean(), acc.std(ddof=1), f1, ms, x.shape[1], len(parts) * len(views))
        results.append(row)
        say(f"{rid:7s} {label:70s} {ctext:28s} acc {acc.mean():.4f} ± {acc.std(ddof=1):.4f} "
            f"(min {acc.min():.4f} max {acc.max():.4f}) macro-F1 {f1:.4f}  {ms:6.2f} ms/img "
            f"({len(parts) * len(views)} fwd, {x.shape[1]}-d)  [{time.time() - t:.0f} s CV]")

say("\nSummary (accuracy = mean ± sample std of 15 fold accuracies; ms/img = ORT CPU 2 threads batch 16, "
    "median per batch / 16, summed over forward passes)")
say(f"{'row':7s} {'lever':70s} {'head':28s} {'CV acc':>16s} {'macro-F1':>8s} {'ms/img':>7s} {'fwd':>3s}")
for rid, label, ctext, m, s, f1, ms, d, n in results:
    say(f"{rid:7s} {label:70s} {ctext:28s} {m:.4f} ± {s:.4f} {f1:8.4f} {ms:7.2f} {n:3d}")
say(f"done {time.strftime('%Y-%m-%d %H:%M:%S %Z', time.gmtime())}")
