"""What int8_check.py and int8_variants.py share: sprig's preprocessing, the beans split and the
held-out evaluation of a linear head on a model's features."""
import glob
import os

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

CLASSES = ["angular_leaf_spot", "bean_rust", "healthy"]


def results_log(out_dir):
    """`say(*args)`: prints and appends to OUT_DIR/results.txt (created if need be)."""
    os.makedirs(out_dir, exist_ok=True)
    log = open(os.path.join(out_dir, "results.txt"), "a")

    def say(*args):
        text = " ".join(str(a) for a in args)
        print(text, flush=True)
        log.write(text + "\n")
        log.flush()

    return say


def prepare(path):  # sprig's rule: centre square of 224/256 of the short side, (p - 128) / 128
    image = Image.open(path).convert("RGB")
    w, h = image.size
    side = min(w, h) * 224 / 256
    box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
    image = image.resize((224, 224), Image.BILINEAR, box=box)
    return ((np.asarray(image, dtype=np.float32) - 128.0) / 128.0).transpose(2, 0, 1)


def split(beans):
    """(fit, held_out): every third image of beans/train is held out (300), the rest (600) fit."""
    images = [(f, c) for c in range(3) for f in sorted(glob.glob(f"{beans}/train/{CLASSES[c]}/*.jpg"))]
    return [x for i, x in enumerate(images) if i % 3], [x for i, x in enumerate(images) if i % 3 == 0]


def features(sess, items):
    rows = [sess.run(None, {"input": np.stack([prepare(f) for f, _ in items[i:i + 16]])})[0]
            for i in range(0, len(items), 16)]
    return np.concatenate(rows), np.array([c for _, c in items])


def held_out_predictions(sess, fit, held_out):
    """A linear head trained on this model's own features: (predictions, labels, features) of held_out."""
    head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    head.fit(*features(sess, fit))
    x, y = features(sess, held_out)
    return head.predict(x), y, x


def calibration_reader(fit, count):
    """An ONNX Runtime calibration reader over `count` images spread over `fit`."""
    from onnxruntime.quantization import CalibrationDataReader

    class Calibration(CalibrationDataReader):
        def __init__(self):
            chosen = fit[:: max(1, len(fit) // count)][:count]
            self.items = iter([{"input": prepare(f)[None]} for f, _ in chosen])

        def get_next(self):
            return next(self.items, None)

    return Calibration()
