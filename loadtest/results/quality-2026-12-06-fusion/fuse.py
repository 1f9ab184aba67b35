"""Late fusion of sprig's cross-validated answers: average the log-probabilities several
`sprig train --cv 5` runs gave each held-out image (same content-hash folds), score per fold."""
import math, os, statistics, sys

HERE = os.path.dirname(os.path.abspath(__file__))

def load(path):
    rows = {}
    for line in open(path):
        fold, sha, label, *p = line.split()
        rows[sha] = (int(fold), int(label), [float(v) for v in p])
    return rows

def score(names, runs):
    shas = runs[0].keys()
    per_fold = {}
    for sha in shas:
        fold, label, _ = runs[0][sha]
        logs = [0.0] * len(runs[0][sha][2])
        for run in runs:
            assert run[sha][0] == fold and run[sha][1] == label
            for c, p in enumerate(run[sha][2]):
                logs[c] += math.log(max(p, 1e-12))
        guess = max(range(len(logs)), key=logs.__getitem__)
        ok, n = per_fold.get(fold, (0, 0))
        per_fold[fold] = (ok + (guess == label), n + 1)
    accs = [ok / n for ok, n in (per_fold[f] for f in sorted(per_fold))]
    pooled = sum(ok for ok, _ in per_fold.values()) / sum(n for _, n in per_fold.values())
    print(f"{' + '.join(names):70s} folds {' '.join(f'{a:.4f}' for a in accs)}  mean {statistics.mean(accs):.4f} ± {statistics.stdev(accs):.4f}  pooled {pooled:.4f}")

if __name__ == "__main__":
    groups = [g.split("+") for g in sys.argv[1:]]
    cache = {}
    for group in groups:
        runs = [cache.setdefault(name, load(os.path.join(HERE, f"dump-{name}.txt"))) for name in group]
        score(group, runs)
