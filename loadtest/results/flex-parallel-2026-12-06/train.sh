#!/usr/bin/env bash
# burn-flex with and without its rayon + simd features: the time of training work that runs on
# flex, the two builds alternating, ROUNDS rounds (one sitting):
#   flex-retrain:  `sprig --backend flex train --data` of the 900 photos (features and head on flex);
#   auto-retrain:  the same with --backend auto (features on the graph runtime, head on flex);
#   phase2-120:    `--backend auto` with `--fine-tune true` (2 blocks) on 40 photos per class.
# usage: BASE=/path/to/baseline/sprig CURRENT=/path/to/sprig ./train.sh
# (FIRST_ROUND=2 runs only the second round: how round 2 was run, 21:57-)
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
photos=${PHOTOS:-/work/shared/datasets/beans/train}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/subset"
for class in "$photos"/*/; do
  c=$(basename "$class"); mkdir -p "$work/subset/$c"
  ls "$class" | sort | head -40 | while read -r f; do cp "$class/$f" "$work/subset/$c/"; done
done
export SPRIG_LOG__LEVEL=warn
{ date -u; grep -m1 'model name' /proc/cpuinfo; echo "$(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg)"; } | tee -a "$out/train.log"
for round in $(seq "${FIRST_ROUND:-1}" "${ROUNDS:-2}"); do
  for build in base current; do
    bin=$BASE; [ $build = current ] && bin=$CURRENT
    for job in flex-retrain auto-retrain phase2-120; do
      rm -rf "$work/d"
      case $job in
        flex-retrain) args=(--backend flex --data-dir "$work/d" train --data "$photos") ;;
        auto-retrain) args=(--backend auto --data-dir "$work/d" train --data "$photos") ;;
        phase2-120) args=(--backend auto --data-dir "$work/d" train --data "$work/subset" --fine-tune true) ;;
      esac
      /usr/bin/time -f "%e s wall, %U s user, %P CPU, %M KB" -o "$work/time" \
        "$bin" "${args[@]}" --report "$work/report" > "$work/log" 2>&1 || { cat "$work/log"; exit 1; }
      acc=$(grep -o '"accuracy": *[0-9.]*' "$work/report/metrics.json" | head -1 | grep -o '[0-9.]*$')
      echo "round $round $build $job: $(cat "$work/time"), accuracy $acc" | tee -a "$out/train.log"
    done
  done
done
