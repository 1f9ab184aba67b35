"""Each configuration's CV accuracy at every seed run beside this file, and the mean over seeds
(of the fold means, and of the pooled accuracies)."""
import collections, glob, json, os, re, statistics

HERE = os.path.dirname(os.path.abspath(__file__))
by_config = collections.defaultdict(list)
for run in sorted(glob.glob(os.path.join(HERE, "pooling-*"))):
    if not os.path.isdir(run):
        continue
    name = os.path.basename(run)
    seed = re.search(r"_seed-(\d+)", name)
    config = re.sub(r"_seed-\d+", "", name)
    report = json.load(open(os.path.join(run, "cross_validation.json")))
    by_config[config].append((int(seed.group(1)) if seed else 42, report))
for config, runs in sorted(by_config.items()):
    runs.sort(key=lambda r: r[0])
    means = [r["accuracy"]["mean"] for _, r in runs]
    pooled = [r["pooled_accuracy"] for _, r in runs]
    print(config)
    for seed, r in runs:
        print(f"    seed {seed:>2}: {r['accuracy']['mean']:.4f} ± {r['accuracy']['std']:.4f}"
              f"  pooled {r['pooled_accuracy']:.4f}  macro-F1 {r['macro_f1']['mean']:.4f}"
              f"  pooled ECE after {r['pooled_ece_after']:.4f}")
    spread = f" (sd over seeds {statistics.stdev(means):.4f})" if len(means) > 1 else ""
    print(f"    {len(runs)} seeds: mean {statistics.mean(means):.4f}{spread}, pooled {statistics.mean(pooled):.4f}")
