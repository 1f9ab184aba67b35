#!/usr/bin/env bash
# Measures the data-loop figures (out-of-distribution flags, drift detection delay) that
# README.md quotes, for two versions: one trained on ../shared/datasets/beans/train (900 photos,
# defaults) and the bootstrap version (60 demo photos). Raw outputs go to $OUT.
# The predict path's throughput cost is measured separately, against the build before it:
#   SECTIONS=compare BASELINE_SPRIG=<old binary> OUT=... loadtest/run-results.sh
# Needs: cargo build --release -p sprig; the runtimes in sprig's cache (`sprig runtimes fetch`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${OUT:-$ROOT/loadtest/results/data-loop-$(date +%Y-%m-%d)}"
SPRIG="$(scripts/target-dir.sh)/release/sprig"
TRAIN="$ROOT/../shared/datasets/beans/train"
mkdir -p "$OUT"
work="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }
log "machine: $(nproc) cores ($(sed -n 's/^model name\t: //p' /proc/cpuinfo | head -1)); commit $(git rev-parse --short HEAD)"

serve() { # NAME: serves the data dir $work/NAME, sets URL
  SPRIG_LOG__LEVEL=warn "$SPRIG" --data-dir "$work/$1" serve --addr 127.0.0.1:0 > "$work/$1.out" 2> "$work/$1.log" &
  pid=$!
  for _ in $(seq 1 600); do
    URL="$(sed -n 's/^sprig listening on //p' "$work/$1.out" | head -1)"
    [ -n "$URL" ] && curl -sf "$URL/readyz" > /dev/null && return
    sleep 0.5
  done
  log "sprig did not start"; cat "$work/$1.log"; exit 1
}

log "training on $TRAIN"
"$SPRIG" train --data-dir "$work/full" --data "$TRAIN" --report "$OUT/full-report" 2>&1 | tail -3 | tee -a "$OUT/run.log"
serve full
log "version trained on 900 photos: $(curl -sf "$URL/api/config" | sed -n 's/.*"backend":"\([a-z]*\)".*/backend \1/p')"
python3 loadtest/data_loop_figures.py "$URL" "$OUT/full" | tee -a "$OUT/run.log"
kill "$pid"; wait "$pid" 2>/dev/null || true

log "bootstrap version (60 demo photos)"
serve bootstrap
python3 loadtest/data_loop_figures.py "$URL" "$OUT/bootstrap" | tee -a "$OUT/run.log"
log "done; results in $OUT"
