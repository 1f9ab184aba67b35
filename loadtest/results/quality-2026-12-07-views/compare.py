#!/usr/bin/env python3
"""The shipped option `training.test_time_views` under 5-fold CV, seed by seed, against the same
configuration without test-time views (the seventh sitting's runs, ../quality-2026-12-07/) and
against the eighth sitting's experiment (../quality-2026-12-07-tta/views/, the geometric mean
computed outside the product): fold mean, pooled accuracy, pooled ECE after calibration, photos
right, and the largest difference between the option's held-out answers and the experiment's."""
import json, os, statistics

here = os.path.dirname(os.path.abspath(__file__))
base = "pooling-every_block_texture_label_smoothing-0.1"


def load(path):
    path = os.path.join(here, path, "cross_validation.json")
    return json.load(open(path)) if os.path.exists(path) else None


def right(cv):
    return sum(a["label"] == max(range(len(a["probabilities"])), key=a["probabilities"].__getitem__)
               for a in cv["answers"])


def gap(a, b):
    theirs = {x["sha256"]: x["probabilities"] for x in b["answers"]}
    return max(abs(p - q) for x in a["answers"] for p, q in zip(x["probabilities"], theirs[x["sha256"]]))


def suffix(seed):
    return "" if seed == "42" else f"_seed-{seed}"


def table(title, seeds, none_name, option_name, experiment_name):
    print(title)
    print("seed  none: fold mean  option: fold mean  pooled   ECE after  right of 900  vs none  "
          "largest gap to the experiment")
    means, nones, f1s, none_f1s, eces = [], [], [], [], []
    for seed in seeds:
        none, option = load(none_name(seed)), load(option_name(seed))
        if option is None:
            continue
        experiment = load(experiment_name(seed))
        means.append(option["accuracy"]["mean"])
        nones.append(none["accuracy"]["mean"])
        f1s.append(option["macro_f1"]["mean"])
        none_f1s.append(none["macro_f1"]["mean"])
        eces.append((none["pooled_ece_before"], none["pooled_ece_after"],
                     option["pooled_ece_before"], option["pooled_ece_after"]))
        against = f"{gap(option, experiment):.2e}" if experiment else "-"
        print(f"{seed:>4}  {none['accuracy']['mean']:.4f}           {option['accuracy']['mean']:.4f}"
              f"             {option['pooled_accuracy']:.4f}   {option['pooled_ece_after']:.4f}"
              f"     {right(option)}           {right(option) - right(none):+d}       {against}")
    if means:
        print(f"      mean over {len(means)} seeds: none {statistics.mean(nones):.4f}, "
              f"option {statistics.mean(means):.4f} (spread of the option's seed means "
              f"{min(means):.4f}-{max(means):.4f})")
        print(f"      macro-F1 mean over the seeds: none {statistics.mean(none_f1s):.4f}, option "
              f"{statistics.mean(f1s):.4f}")
        ranges = [f"{min(e[k] for e in eces):.3f}-{max(e[k] for e in eces):.3f}" for k in range(4)]
        print(f"      pooled ECE raw -> after calibration: none {ranges[0]} -> {ranges[1]}, "
              f"option {ranges[2]} -> {ranges[3]}\n")


seeds = ["42", "7", "1", "2", "3"]
table("2 augmented views, test_time_views = 2", seeds,
      lambda s: f"../quality-2026-12-07/{base}{suffix(s)}",
      lambda s: f"views2/{base}_test_time_views-2{suffix(s)}",
      lambda s: f"../quality-2026-12-07-tta/views/{base}{suffix(s)}")
table("4 augmented views, test_time_views = 4", seeds,
      lambda s: f"../quality-2026-12-07/{base}_augment_views-4{suffix(s)}",
      lambda s: f"views4/{base}_augment_views-4_test_time_views-4_seed-{s}",
      lambda s: f"../quality-2026-12-07-tta/views4/{base}_augment_views-4_seed-{s}")
