"""How large an expected calibration error (15 bins) sampling alone gives, for the figures of
`sprig train --cv` (loadtest/quality.sh): for each fold's reliability bins (answers counted and
their mean confidence, after the fold's temperature), outcomes are drawn as a perfectly
calibrated model would give them (right with probability = the bin's confidence) and the ECE of
those draws is computed, for one fold (~180 answers) and for all folds pooled (every image once).

usage: python3 loadtest/ece_floor.py CROSS_VALIDATION_JSON [DRAWS]  (standard library only)
"""
import json
import random
import statistics
import sys


def ece(bins):
    total = sum(n for n, _, _ in bins)
    return sum(n / total * abs(c - right / n) for n, c, right in bins if n)


def draw(bins, rng):
    return [(n, c, sum(rng.random() < c for _ in range(n))) for n, c in bins]


def main():
    cv = json.load(open(sys.argv[1]))
    draws = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    rng = random.Random(20261206)
    folds = [
        [(b["count"], b["confidence"]) for b in f["evaluation"]["calibration"]["bins"]]
        for f in cv["folds"]
    ]
    per_fold = [ece(draw(bins, rng)) for _ in range(draws) for bins in folds]
    pooled = []
    for _ in range(draws):
        drawn = [b for bins in folds for b in draw(bins, rng)]
        # Pool by bin index: same 15 bins, counts and confidence sums added.
        merged = {}
        for i, (n, c, right) in enumerate(drawn):
            key = i % 15
            m = merged.setdefault(key, [0, 0.0, 0])
            m[0] += n
            m[1] += n * c
            m[2] += right
        pooled.append(ece([(n, s / n if n else 0.0, r) for n, s, r in merged.values()]))
    answers = sum(n for bins in folds for n, _ in bins)
    print(f"{sys.argv[1]}: {len(folds)} folds, {answers} answers, {draws} draws")
    for name, values in (("one fold", per_fold), ("pooled", pooled)):
        values.sort()
        print(
            f"  ECE of a perfectly calibrated model, {name}: mean {statistics.mean(values):.4f}, "
            f"95th percentile {values[int(0.95 * len(values))]:.4f}"
        )
    print(
        f"  measured: per fold {statistics.mean(f['evaluation']['calibration']['ece_after'] for f in cv['folds']):.4f}"
        f" (mean), pooled {cv['pooled_ece_after']:.4f}"
    )


main()
