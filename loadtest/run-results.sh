#!/usr/bin/env bash
# Measures everything loadtest/LOAD_TEST_RESULTS.md reports, in one sitting:
#   1. side by side with the ONNX Runtime + FastAPI peer (../shared/baselines), same wrk harness,
#      alternating the peer (one process; two workers of one thread each) / sprig as a newcomer
#      gets it (backend auto, no *_DYLIB_PATH set, a runtime cache of this sitting's own, so the
#      first start fetches) / sprig on the other graph runtime, two rounds, concurrency 1 / 8 / 32;
#   2. dynamic batching off vs on (same harness);
#   3. inference workers 1 / 2 / 4 at concurrency 32;
#   4. the four goose scenarios (light, normal, heavy, peak) with server memory sampled,
#      then the plots;
#   5. (only when SECTIONS names it) compare: this build against another sprig binary
#      (BASELINE_SPRIG), alternating, ROUNDS rounds, concurrency 1 and 32;
#   6. (only when SECTIONS names it) explain: the cost of an explanation, and plain predictions
#      at 32 clients alone and while one client keeps asking for explanations;
#   7. (only when SECTIONS names it) shadow: predictions at 1 and 32 clients with no rollout, and
#      with a shadow of the same weights sampling 1.0 and 0.1 of requests (order alternating by
#      round), the shadow's compared / dropped counts after each run.
# Needs: cargo build --release -p sprig -p sprig-loadtest; wrk; the peer's venv
# (python3 -m venv /tmp/baseline-venv && /tmp/baseline-venv/bin/pip install -r ../shared/baselines/requirements.txt).
# Env: SECTIONS (default "side batching workers scenarios"), ROUNDS (side-by-side rounds, 2),
#      FLEX_ROUNDS (rounds that also run sprig on flex, 1),
#      SCENARIOS (default "light normal heavy peak"), SCENARIO_SECS (override each scenario's duration), DURATION (wrk seconds per level, 20),
#      SPRIG_ENV (extra env for every sprig server, e.g. "SPRIG_BACKEND=onnxruntime").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${OUT:-$ROOT/loadtest/results}"
TARGET="$(scripts/target-dir.sh)"
SPRIG="${SPRIG:-$TARGET/release/sprig}"
LOADTEST="$TARGET/release/sprig-loadtest"
BASELINES="$ROOT/../shared/baselines"
VENV="${VENV:-/tmp/baseline-venv}"
export DURATION="${DURATION:-20}" WARMUP="${WARMUP:-3}" BENCH_PYTHON="$VENV/bin/python"
mkdir -p "$OUT"
work="$(mktemp -d)"
cp -r "$BASELINES/bench" "$work/bench"    # the harness writes its results next to itself
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }

# start_sprig NAME [ENV=VALUE...]: fresh data dir, waits for readiness; sets URL and PID
start_sprig() {
  local name=$1; shift
  rm -rf "$work/$name"
  local started; started=$(date +%s.%N)
  # As a newcomer starts it: no *_DYLIB_PATH; the runtimes come from the sitting's own cache.
  # shellcheck disable=SC2086
  env -u ORT_DYLIB_PATH -u OPENVINO_DYLIB_PATH XDG_CACHE_HOME="$work/user-cache" ${SPRIG_ENV:-} "$@" \
    SPRIG_LOG__LEVEL=warn "$SPRIG" --data-dir "$work/$name" serve --addr 127.0.0.1:0 \
    > "$work/$name.out" 2> "$work/$name.log" &
  PID=$!; pids+=("$PID")
  for _ in $(seq 1 900); do
    URL="$(sed -n 's/^sprig listening on //p' "$work/$name.out" | head -1)"
    if [ -n "$URL" ] && curl -sf "$URL/readyz" > /dev/null; then
      BACKEND="$(curl -sf "$URL/api/config" | sed -n 's/.*"backend":"\([a-z]*\)".*/\1/p')"
      log "sprig $name ready on $BACKEND after $(echo "$(date +%s.%N) - $started" | bc | cut -c1-5) s"
      return
    fi
    sleep 0.5
  done
  log "sprig $name did not start"; cat "$work/$name.log"; exit 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

start_peer() { # [uvicorn options...]
  (cd "$BASELINES/peer_onnxruntime" && exec "$VENV/bin/uvicorn" app:app --host 127.0.0.1 --port 8000 --no-access-log "$@") \
    > "$work/peer.log" 2>&1 &
  PID=$!; pids+=("$PID"); URL=http://127.0.0.1:8000
  for _ in $(seq 1 180); do curl -sf "$URL/api/health" > /dev/null && return; sleep 1; done
  log "peer did not start"; cat "$work/peer.log"; exit 1
}

bench() { # LABEL URL PID [LEVELS]
  LEVELS="${4:-1 8 32}" "$work/bench/run.sh" "$2" "$1" "$3" | grep '^RESULT' | tee -a "$OUT/wrk.txt"
}

SECTIONS="${SECTIONS:-side batching workers scenarios}"
wants() { [[ " $SECTIONS " == *" $1 "* ]]; }
log "machine: $(nproc) cores ($(sed -n 's/^model name\t: //p' /proc/cpuinfo | head -1); AVX-512: $(grep -qw avx512f /proc/cpuinfo && echo yes || echo no), native bfloat16: $(grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo && echo yes || echo no)), $(free -g | awk '/Mem:/ {print $2}') GiB; load: $(cut -d' ' -f1-3 /proc/loadavg)"
wants side && for round in $(seq 1 "${ROUNDS:-2}"); do
  log "side by side, round $round: peer, one process"
  start_peer; bench "peer-r$round" "$URL" "$PID"; stop "$PID"
  log "side by side, round $round: peer, two workers of one ONNX Runtime thread each"
  ORT_INTRA_OP_THREADS=1 start_peer --workers 2; bench "peer2-r$round" "$URL" "$PID"; stop "$PID"
  log "side by side, round $round: sprig as a newcomer runs it (backend auto)"
  start_sprig "sprig-r$round"; bench "sprig-r$round" "$URL" "$PID"; stop "$PID"
  other=onnxruntime; [ "$BACKEND" = onnxruntime ] && other=openvino
  log "side by side, round $round: sprig on $other"
  start_sprig "sprig-$other-r$round" SPRIG_BACKEND=$other; bench "sprig-$other-r$round" "$URL" "$PID"; stop "$PID"
  [ "$round" -gt "${FLEX_ROUNDS:-1}" ] && continue
  log "side by side, round $round: sprig on flex"
  start_sprig "sprig-flex-r$round" SPRIG_BACKEND=flex; bench "sprig-flex-r$round" "$URL" "$PID"; stop "$PID"
done

wants batching && for variant in "off SPRIG_BATCHING__ENABLED=false" "max4 SPRIG_BATCHING__MAX_BATCH_SIZE=4" "max8 SPRIG_BATCHING__MAX_BATCH_SIZE=8"; do
  read -r name setting <<< "$variant"
  log "dynamic batching: $name ($setting)"
  start_sprig "batching-$name" "$setting"
  bench "sprig-batching-$name" "$URL" "$PID"; stop "$PID"
done

wants workers && for workers in 1 2 4; do
  log "inference workers=$workers"
  start_sprig "workers-$workers" SPRIG_BATCHING__WORKERS=$workers
  bench "sprig-workers-$workers" "$URL" "$PID" 32; stop "$PID"
done

wants compare && for round in $(seq 1 "${ROUNDS:-2}"); do
  for build in baseline current; do
    binary=$SPRIG; [ "$build" = baseline ] && binary=$BASELINE_SPRIG
    log "compare builds, round $round: $build ($binary)"
    SPRIG=$binary start_sprig "compare-$build-r$round"
    bench "sprig-$build-r$round" "$URL" "$PID" "1 32"; stop "$PID"
  done
done

# explain (only when SECTIONS names it): what an explanation costs (30 sequential
# `explain=true` requests: the answer's `explanation.millis` and the whole request's time), and
# plain predictions at 32 clients alone and while one client keeps asking for explanations.
explain_once() { # URL IMAGE -> "explanation_ms request_ms"
  curl -s -o "$work/explained.json" -w '%{time_total}' -H 'content-type: application/octet-stream' \
    --data-binary "@$2" "$1/api/predict?explain=true" > "$work/explain-time"
  echo "$(sed -n 's/.*"millis":\([0-9.]*\).*/\1/p' "$work/explained.json") $(awk '{print $1 * 1000}' "$work/explain-time")"
}
wants explain && for round in $(seq 1 "${ROUNDS:-2}"); do
  log "explanations, round $round"
  start_sprig "explain-r$round"
  images=("$work"/bench/images/*.jpg)
  for i in $(seq 0 29); do explain_once "$URL" "${images[$((i % ${#images[@]}))]}"; done \
    | tee "$OUT/explain-cost-r$round.txt" \
    | sort -n | awk '{ms[NR] = $1; req[NR] = $2} END {print "explanation ms: min " ms[1] ", median " ms[int((NR + 1) / 2)] ", max " ms[NR] " (" NR " requests; sorted by explanation ms)"}' \
    | tee -a "$OUT/run.log"
  bench "sprig-plain-r$round" "$URL" "$PID" 32
  (n=0; while true; do explain_once "$URL" "${images[$((n % ${#images[@]}))]}" > /dev/null; n=$((n + 1)); echo "$n" > "$work/explained-count"; done) &
  loop=$!
  bench "sprig-plain-while-explaining-r$round" "$URL" "$PID" 32
  kill "$loop"; wait "$loop" 2>/dev/null || true
  log "explanations answered during that run: $(cat "$work/explained-count")"
  stop "$PID"
done

# shadow (only when SECTIONS names it): what a shadow costs the answers. Version 2 is version 1's
# bundle imported (same weights); no verdict ends the shadow mid-run (min_requests out of reach).
shadow_figures() { # URL -> "state S compared N dropped N"
  local body; body="$(curl -sf "$1/api/models/2/shadow")"
  echo "state $(sed -n 's/.*"state":"\([a-z_]*\)".*/\1/p' <<< "$body") compared $(sed -n 's/.*"compared":\([0-9]*\).*/\1/p' <<< "$body") dropped $(sed -n 's/.*"dropped":\([0-9]*\).*/\1/p' <<< "$body")"
}
wants shadow && for round in $(seq 1 "${ROUNDS:-2}"); do
  log "shadow overhead, round $round"
  start_sprig "shadow-r$round" SPRIG_ROLLOUT__MIN_REQUESTS=1000000000
  curl -sf "$URL/api/models/1/bundle" -o "$work/v1.bundle"
  curl -sf -H 'content-type: application/octet-stream' --data-binary "@$work/v1.bundle" \
    "$URL/api/models/import" > /dev/null
  order="none 1.0 0.1"; [ $((round % 2)) -eq 0 ] && order="0.1 1.0 none"
  for sample in $order; do
    if [ "$sample" != none ]; then
      curl -sf -H 'content-type: application/json' -d "{\"sample\": $sample}" "$URL/api/models/2/shadow" > /dev/null
    fi
    bench "sprig-shadow-$sample-r$round" "$URL" "$PID" "1 32"
    if [ "$sample" != none ]; then
      log "shadow sample $sample, round $round: $(shadow_figures "$URL")"
      curl -s -X DELETE "$URL/api/models/2/shadow" > /dev/null
    fi
  done
  stop "$PID"
done

wants scenarios || { log "done; results in $OUT"; exit 0; }
for scenario in ${SCENARIOS:-light normal heavy peak}; do
  log "goose scenario $scenario"
  start_sprig "scenario-$scenario"
  "$LOADTEST" run --host "$URL" --scenario "$scenario" ${SCENARIO_SECS:+--duration-secs "$SCENARIO_SECS"} \
    --images "$ROOT/data/beans-sample/test" --server-pid "$PID" --out "$OUT/$scenario.json" | tee -a "$OUT/scenarios.txt"
  grep -h "VmHWM" "/proc/$PID/status" | sed "s/^/$scenario server peak: /" | tee -a "$OUT/scenarios.txt"
  stop "$PID"
done
plotted=(); for s in light normal heavy peak; do [ -f "$OUT/$s.json" ] && plotted+=("$OUT/$s.json"); done
"$LOADTEST" plot --out-dir "$OUT" "${plotted[@]}"
log "done; results in $OUT"
