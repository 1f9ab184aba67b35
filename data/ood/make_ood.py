#!/usr/bin/env python3
"""Regenerate data/ood/: out-of-distribution ("not a bean leaf") test images.

    photos/     crops of scikit-image's bundled sample images (CC0 / public
                domain only), read straight from the installed package's
                skimage/data/ folder (no download, no pooch)
    synthetic/  images made here from a fixed seed: noise, gradients,
                patterns, flat colour with text, and heavy corruptions of
                bean photos from data/beans-sample/train/
    manifest.csv  file,kind,source,license,sha256 for every JPEG

Deterministic: running it twice gives byte-identical files, for the same
versions of scikit-image, Pillow and numpy (pinned in README.md).

Usage (from the repository root, see README.md):
    /tmp/ood-venv/bin/python data/ood/make_ood.py
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata as md
import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

HERE = Path(__file__).resolve().parent          # data/ood
REPO = HERE.parent.parent                       # repository root
BEANS = REPO / "data" / "beans-sample" / "train"
SEED = 20240611
MAX_SIDE = 320
MAX_BYTES = 40_000
JPEG_ARGS = dict(format="JPEG", quality=90, subsampling=2, optimize=True)

# The versions this set was made (and is byte-reproducible) with.
PINNED = {"scikit-image": "0.26.0", "pillow": "13.0.0", "numpy": "2.4.6"}


def skimage_data_dir() -> Path:
    """skimage/data/ of the installed package, found without importing it."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        sys.exit("scikit-image is not installed in this interpreter")
    return Path(spec.origin).parent / "data"


# --------------------------------------------------------------------------
# Part 1: photos. License text is taken from each loader's docstring in
# skimage/data/_fetchers.py (scikit-image 0.26.0). Images whose docstring
# gives no license, or only "no known copyright restrictions" without a
# public-domain/CC0 statement, are left out (moon, page, coins,
# immunohistochemistry, logo, colorwheel, chessboard, phantom, motorcycle,
# lfw_subset). grass.png (CC0) is left out on purpose: it is vegetation.
# --------------------------------------------------------------------------
LICENSES = {
    "astronaut.png": ("Public-Domain",
                      "NASA (Great Images database); Eileen Collins. "
                      "'No known copyright restrictions; released into the public domain'"),
    "camera.png": ("CC0-1.0", "Lav Varshney (photographer); CC0"),
    "chelsea.png": ("CC0-1.0", "Stefan van der Walt (photographer); CC0"),
    "coffee.png": ("CC0-1.0", "Rachel Michetti (photographer); CC0"),
    "rocket.jpg": ("Public-Domain",
                   "SpaceX (flickr spacexphotos/16511594820); released into the public domain"),
    "hubble_deep_field.jpg": ("Public-Domain",
                              "NASA / HubbleSite release 2012-37; 'may be freely used in the public domain'"),
    "text.png": ("Public-Domain",
                 "Wikipedia File:Corner.png; 'released into the public domain'"),
    "horse.png": ("CC0-1.0", "Andreas Preuss (marauder); openclipart 158377; CC0"),
    "clock_motion.png": ("Public-Domain",
                         "Stefan van der Walt (photographer); released into the public domain"),
    "cell.png": ("CC0-1.0", "Paul Mueller et al. (quantitative phase image); CC0"),
    "brick.png": ("CC0-1.0", "CC0Textures Bricks25; CC0 (perspective-corrected by scikit-image)"),
    "gravel.png": ("CC0-1.0", "CC0Textures Gravel04; CC0"),
    "retina.jpg": ("CC0-1.0",
                   "Mikael Haggstrom; Wikimedia Commons "
                   "'Fundus photograph of normal left eye'; CC0 1.0"),
    "microaneurysms.png": ("CC0-1.0", "Andreas Maier (owner); CC0"),
}

# (output name, source file, crop box (left, top, right, bottom) in source
# pixels, longest side of the output; the crop is scaled down to fit that,
# never up).
PHOTOS = [
    ("astronaut_full", "astronaut.png", (0, 0, 512, 512), 256),
    ("astronaut_face", "astronaut.png", (140, 0, 340, 200), 200),
    ("astronaut_shuttle", "astronaut.png", (350, 0, 510, 300), 300),
    ("camera_full", "camera.png", (0, 0, 512, 512), 256),
    ("camera_man", "camera.png", (120, 60, 420, 360), 300),
    ("camera_tripod", "camera.png", (300, 300, 512, 512), 212),
    ("chelsea_full", "chelsea.png", (0, 0, 451, 300), 320),
    ("chelsea_face", "chelsea.png", (120, 20, 420, 300), 300),
    ("coffee_full", "coffee.png", (0, 0, 600, 400), 320),
    ("coffee_cup", "coffee.png", (150, 0, 450, 250), 300),
    ("coffee_saucer", "coffee.png", (300, 150, 600, 400), 300),
    ("rocket_full", "rocket.jpg", (0, 0, 640, 427), 320),
    ("rocket_pad", "rocket.jpg", (330, 100, 530, 427), 320),
    ("hubble_full", "hubble_deep_field.jpg", (0, 0, 1000, 872), 256),
    ("hubble_topleft", "hubble_deep_field.jpg", (0, 0, 224, 224), 224),
    ("hubble_lowright", "hubble_deep_field.jpg", (600, 500, 824, 724), 224),
    ("text_full", "text.png", (0, 0, 448, 172), 320),
    ("text_left", "text.png", (0, 0, 200, 172), 200),
    ("horse_full", "horse.png", (0, 0, 400, 328), 320),
    ("clock_full", "clock_motion.png", (0, 0, 400, 300), 320),
    ("clock_center", "clock_motion.png", (150, 50, 350, 250), 200),
    ("cell_full", "cell.png", (0, 0, 550, 660), 320),
    ("cell_zoom", "cell.png", (300, 250, 550, 500), 250),
    ("brick_full", "brick.png", (0, 0, 512, 512), 256),
    ("brick_crop", "brick.png", (100, 100, 356, 356), 256),
    ("gravel_full", "gravel.png", (0, 0, 512, 512), 224),
    ("gravel_crop", "gravel.png", (256, 256, 512, 512), 224),
    ("retina_full", "retina.jpg", (0, 0, 1411, 1411), 256),
    ("retina_disc", "retina.jpg", (80, 480, 400, 800), 320),
    ("microaneurysms_full", "microaneurysms.png", (0, 0, 102, 102), 102),
]


def to_rgb(im: Image.Image) -> Image.Image:
    """Any mode to RGB; transparency is flattened onto white."""
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        bg.alpha_composite(im)
        im = bg
    return im.convert("RGB")


def fit(im: Image.Image, longest: int) -> Image.Image:
    longest = min(longest, MAX_SIDE)
    w, h = im.size
    s = longest / max(w, h)
    if s >= 1:
        return im
    return im.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)


def encode(im: Image.Image) -> bytes:
    im = to_rgb(im)
    assert max(im.size) <= MAX_SIDE, im.size
    buf = io.BytesIO()
    im.save(buf, **JPEG_ARGS)
    return buf.getvalue()


# --------------------------------------------------------------------------
# Part 2: synthetic images.
# --------------------------------------------------------------------------
GEN_LICENSE = "MIT OR Apache-2.0"       # the project's own licence: made here
BEAN_LICENSE = "MIT (iBean; see ../beans-sample/LICENSE-DATA.txt)"


def font(size: int) -> ImageFont.ImageFont:
    # Pillow's bundled default font (Aileron, via FreeType): no system fonts.
    return ImageFont.load_default(size=size)


def arr(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def grid(n: int = 256):
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    return x, y


def hue_shift(im: Image.Image, shift: int) -> Image.Image:
    h, s, v = im.convert("HSV").split()
    h = h.point(lambda p: (p + shift) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def patch_shuffle(im: Image.Image, rng: np.random.Generator, p: int) -> Image.Image:
    a = np.asarray(im)
    n = a.shape[0] // p
    tiles = a[: n * p, : n * p].reshape(n, p, n, p, 3).swapaxes(1, 2).reshape(n * n, p, p, 3)
    tiles = tiles[rng.permutation(n * n)]
    return arr(tiles.reshape(n, n, p, p, 3).swapaxes(1, 2).reshape(n * p, n * p, 3))


def phase_scramble(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    a = np.asarray(im).astype(np.float64)
    phase = np.angle(np.fft.fft2(rng.random(a.shape[:2])))   # one random phase field
    out = np.empty_like(a)
    for c in range(3):
        f = np.fft.fft2(a[..., c])
        out[..., c] = np.real(np.fft.ifft2(np.abs(f) * np.exp(1j * (np.angle(f) + phase))))
    return arr(np.round(out))


def synthetic(beans: list[Path]):
    """Yield (name, source text, license, PIL image). Order fixes the RNG draws."""
    rng = np.random.default_rng(SEED)
    x, y = grid()

    yield ("noise_uniform_rgb", "uniform RGB noise 0..255 at 128x128", GEN_LICENSE,
           arr(rng.integers(0, 256, (128, 128, 3))))
    yield ("noise_gaussian_grey", "grey Gaussian noise mean 128 sd 40 then RGB", GEN_LICENSE,
           arr(np.round(rng.normal(128, 40, (192, 192)))).convert("RGB"))
    sp = np.full((192, 192), 128.0)
    r = rng.random((192, 192))
    sp[r < 0.05] = 0
    sp[r > 0.95] = 255
    yield ("noise_salt_pepper", "mid-grey 192x192 with 10% salt-and-pepper pixels", GEN_LICENSE,
           arr(sp).convert("RGB"))

    g = np.stack([x, y, 255 - x], -1) * (255 / 255)
    yield ("gradient_linear_rgb", "R rises left-to-right G top-to-bottom B falls", GEN_LICENSE, arr(np.round(g)))
    rad = np.hypot(x - 128, y - 128) / np.hypot(128, 128)
    g = np.stack([255 * (1 - rad), 80 + 0 * rad, 255 * rad], -1)
    yield ("gradient_radial", "radial red-to-blue gradient", GEN_LICENSE, arr(np.round(g)))
    hue = ((np.arctan2(y - 128, x - 128) + np.pi) / (2 * np.pi) * 255).round().astype(np.uint8)
    sat = np.clip(rad * 1.5 * 255, 0, 255).round().astype(np.uint8)
    val = np.full_like(hue, 255)
    yield ("gradient_hue_wheel", "HSV colour wheel: hue by angle saturation by radius", GEN_LICENSE,
           Image.merge("HSV", [Image.fromarray(c) for c in (hue, sat, val)]).convert("RGB"))

    cb = (((x // 32) + (y // 32)) % 2) * 255
    yield ("checkerboard_32", "black/white checkerboard 32 px squares", GEN_LICENSE, arr(cb).convert("RGB"))
    cb8 = (((x // 8) + (y // 8)) % 2)[..., None]
    yield ("checkerboard_8_colour", "magenta/cyan checkerboard 8 px squares", GEN_LICENSE,
           arr(np.where(cb8 > 0, [255, 0, 255], [0, 255, 255])))
    yield ("stripes_vertical", "black/yellow vertical stripes 16 px", GEN_LICENSE,
           arr(np.where(((x // 16) % 2)[..., None] > 0, [255, 220, 0], [0, 0, 0])))
    d = ((x + y) // 24) % 3
    yield ("stripes_diagonal", "red/white/blue diagonal stripes (24 px along each axis)", GEN_LICENSE,
           arr(np.choose(d[..., None].astype(int), [[220, 30, 30], [255, 255, 255], [30, 30, 200]])))
    rings = 127.5 + 127.5 * np.sin(np.hypot(x - 128, y - 128) / 4.0)
    yield ("rings_concentric", "grey concentric sine rings (period ~25 px)", GEN_LICENSE,
           arr(np.round(rings)).convert("RGB"))

    im = Image.new("RGB", (256, 256), (255, 140, 0))
    dr = ImageDraw.Draw(im)
    dr.text((128, 100), "NOT A", fill=(0, 0, 0), font=font(44), anchor="mm")
    dr.text((128, 156), "LEAF", fill=(0, 0, 0), font=font(44), anchor="mm")
    yield ("flat_orange_text", "flat orange with black text 'NOT A LEAF'", GEN_LICENSE, im)
    im = Image.new("RGB", (320, 200), (20, 30, 90))
    dr = ImageDraw.Draw(im)
    lines = ["sprig out-of-distribution", "not a bean leaf", "0123456789",
             "the quick brown fox", "jumps over the lazy dog"]
    for i, t in enumerate(lines):
        dr.text((16, 18 + 34 * i), t, fill=(255, 255, 255), font=font(22))
    yield ("flat_navy_text", "flat navy with five lines of white text", GEN_LICENSE, im)
    yield ("flat_grey", "uniform mid-grey (128) 224x224: a degenerate input", GEN_LICENSE,
           Image.new("RGB", (224, 224), (128, 128, 128)))

    # Heavy corruptions of real bean photos (256x256 RGB).
    def bean(i: int) -> tuple[str, Image.Image]:
        p = beans[i]
        return p.relative_to(REPO).as_posix(), Image.open(p).convert("RGB")

    src, b = bean(0)
    yield ("bean_patch_shuffle16", f"{src} cut into 16x16 patches shuffled at random",
           BEAN_LICENSE, patch_shuffle(b, rng, 16))
    src, b = bean(1)
    yield ("bean_patch_shuffle32", f"{src} cut into 32x32 patches shuffled at random",
           BEAN_LICENSE, patch_shuffle(b, rng, 32))
    src, b = bean(2)
    yield ("bean_invert_hue224", f"{src} colours inverted then hue rotated +315 deg (leaf -> blue)",
           BEAN_LICENSE, hue_shift(Image.eval(b, lambda p: 255 - p), 224))
    src, b = bean(3)
    yield ("bean_invert_hue64", f"{src} colours inverted then hue rotated +90 deg (leaf -> magenta)",
           BEAN_LICENSE, hue_shift(Image.eval(b, lambda p: 255 - p), 64))
    src, b = bean(4)
    blurred = np.asarray(b.filter(ImageFilter.GaussianBlur(16))).astype(np.float64)
    noise = rng.normal(0, 30, blurred.shape[:2])[..., None]      # same on R G B
    yield ("bean_blur_noise", f"{src} Gaussian blur radius 16 plus grey Gaussian noise sd 30",
           BEAN_LICENSE, arr(np.round(blurred + noise)))
    src, b = bean(5)
    yield ("bean_phase_scramble", f"{src} Fourier phase randomised (amplitude spectrum kept)",
           BEAN_LICENSE, phase_scramble(b, rng))


def main() -> None:
    for pkg, want in PINNED.items():
        have = md.version(pkg)
        if have != want:
            print(f"warning: {pkg} {have} installed, set was made with {want}; "
                  "files may differ byte-wise", file=sys.stderr)
    skver = md.version("scikit-image")
    data = skimage_data_dir()
    beans_all = sorted(BEANS.glob("*/*.jpg"))
    if not beans_all:
        sys.exit(f"no bean photos under {BEANS}")
    # two per class, first in name order: angular_leaf_spot, bean_rust, healthy
    by_cls: dict[str, list[Path]] = {}
    for p in beans_all:
        by_cls.setdefault(p.parent.name, []).append(p)
    beans = [by_cls[c][i] for i in range(2) for c in sorted(by_cls)]

    rows = []
    for sub in ("photos", "synthetic"):
        d = HERE / sub
        d.mkdir(exist_ok=True)
        for old in d.glob("*.jpg"):
            old.unlink()

    def write(sub: str, name: str, blob: bytes, source: str, lic: str) -> None:
        assert len(blob) < MAX_BYTES, (name, len(blob))
        (HERE / sub / f"{name}.jpg").write_bytes(blob)
        row = [f"{sub}/{name}.jpg", "photo" if sub == "photos" else "synthetic",
               source, lic, hashlib.sha256(blob).hexdigest()]
        assert not any("," in c or '"' in c for c in row), row   # plain CSV, no quoting
        rows.append(row)

    for name, fname, box, longest in PHOTOS:
        lic, who = LICENSES[fname]
        with Image.open(data / fname) as src:
            im = fit(to_rgb(src).crop(box), longest)
        l, t, r, b = box
        source = (f"scikit-image {skver} skimage/data/{fname} crop l{l} t{t} r{r} b{b} "
                  f"-> {im.width}x{im.height}; {who}")
        write("photos", name, encode(im), source, lic)

    for name, source, lic, im in synthetic(beans):
        write("synthetic", name, encode(fit(im, MAX_SIDE)), source, lic)

    with open(HERE / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "kind", "source", "license", "sha256"])
        w.writerows(rows)
    n_p = sum(r[1] == "photo" for r in rows)
    print(f"wrote {n_p} photos, {len(rows) - n_p} synthetic, manifest.csv -> {HERE}")


if __name__ == "__main__":
    main()
