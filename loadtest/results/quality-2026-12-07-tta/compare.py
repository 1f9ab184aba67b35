#!/usr/bin/env python3
"""Test-time augmentation against none, seed by seed, on the same folds: the runs without it are
the seventh sitting's (../quality-2026-12-07/), those with it are here (flip/, flipfeat/, views/,
real/). Prints each run's mean fold accuracy, pooled accuracy and pooled ECE after calibration,
the per-seed differences in photos, and the means over seeds."""
import json, os, statistics

here = os.path.dirname(os.path.abspath(__file__))
base = "pooling-every_block_texture_label_smoothing-0.1"


def load(path):
    path = os.path.join(here, path, "cross_validation.json")
    return json.load(open(path)) if os.path.exists(path) else None


def row(cv):
    right = sum(a["label"] == max(range(len(a["probabilities"])), key=a["probabilities"].__getitem__)
                for a in cv["answers"])
    return cv["accuracy"]["mean"], cv["pooled_accuracy"], cv["pooled_ece_after"], right


seeds = ["42", "7", "1", "2", "3"]
name = lambda seed: base + ("" if seed == "42" else f"_seed-{seed}")
none = {s: load(f"../quality-2026-12-07/{name(s)}") for s in seeds}
modes = {
    "flip (geometric mean of the plain and mirrored answers)": "flip",
    "flipfeat (the head on the two views' features averaged)": "flipfeat",
    "views (geometric mean over the plain and the 2 augmented views)": "views",
}
print("seed  mode                      fold mean  pooled   ECE after  right of 900  vs none")
for label, folder in [("none", None)] + [(m, f) for m, f in modes.items()]:
    means = []
    for seed in seeds:
        cv = none[seed] if folder is None else load(f"{folder}/{name(seed)}")
        if cv is None:
            continue
        mean, pooled, ece, right = row(cv)
        means.append(mean)
        delta = right - row(none[seed])[3]
        print(f"{seed:>4}  {label[:24]:<24}  {mean:.4f}     {pooled:.4f}   {ece:.4f}     {right}"
              f"           {delta:+d}")
    print(f"      {label}: mean over {len(means)} seeds {statistics.mean(means):.4f}\n")
# With 4 augmented views (training on them, and averaging over the plain and the 4 at test time)
# against the seventh sitting's 4-view runs without test-time augmentation.
print("4 augmented views: seed, none, views (geometric mean over the plain and the 4), photos")
for seed in ["42", "7"]:
    plain = load(f"../quality-2026-12-07/{base}_augment_views-4" + ("" if seed == "42" else f"_seed-{seed}"))
    tta = load(f"views4/{base}_augment_views-4_seed-{seed}")
    if plain and tta:
        (a, _, _, ra), (b, pb, eb, rb) = row(plain), row(tta)
        print(f"{seed:>4}  {a:.4f}  {b:.4f} (pooled {pb:.4f}, ECE after {eb:.4f})  {rb - ra:+d}")
print()
real = load(f"real/{base}_test_time_flip-true")
if real:
    mean, pooled, ece, right = row(real)
    print(f"the shipped option (training.test_time_flip = true), seed 42: fold mean {mean:.4f}, "
          f"pooled {pooled:.4f}, ECE after {ece:.4f}, {right} right")
