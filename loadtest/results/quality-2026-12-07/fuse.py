"""Late fusion of `sprig train --cv 5 --report DIR` runs: each held-out image's answers from
several runs (same content-hash folds) averaged as log-probabilities, scored per fold as sprig
scores them. Arguments: groups of report dirs beside this file joined by '+'; a group of one
repeats that run's own figures (a check that the answers are whole)."""
import json, math, os, statistics, sys

HERE = os.path.dirname(os.path.abspath(__file__))

def load(name):
    report = json.load(open(os.path.join(HERE, name, "cross_validation.json")))
    return report["classes"], {a["sha256"]: a for a in report["answers"]}

def score(names, runs):
    classes = runs[0][0]
    per_fold = {}
    for sha, first in runs[0][1].items():
        logs = [0.0] * len(classes)
        for run_classes, answers in runs:
            answer = answers[sha]
            assert run_classes == classes and answer["fold"] == first["fold"]
            assert answer["label"] == first["label"]
            for c, p in enumerate(answer["probabilities"]):
                logs[c] += math.log(max(p, 1e-12))
        guess = max(range(len(logs)), key=logs.__getitem__)
        ok, n = per_fold.get(first["fold"], (0, 0))
        per_fold[first["fold"]] = (ok + (guess == first["label"]), n + 1)
    accs = [ok / n for ok, n in (per_fold[f] for f in sorted(per_fold))]
    pooled = sum(ok for ok, _ in per_fold.values()) / sum(n for _, n in per_fold.values())
    print(f"{' + '.join(names)}\n    folds {' '.join(f'{a:.4f}' for a in accs)}  "
          f"mean {statistics.mean(accs):.4f} ± {statistics.stdev(accs):.4f}  pooled {pooled:.4f}")

if __name__ == "__main__":
    cache = {}
    for group in sys.argv[1:]:
        names = group.split("+")
        score(names, [cache.setdefault(name, load(name)) for name in names])
