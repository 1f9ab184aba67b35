#!/usr/bin/env bash
# Measures the PostgreSQL figures README.md and loadtest/LOAD_TEST_RESULTS.md quote, in one
# sitting, on a throwaway PostgreSQL cluster (initdb + postgres in a temp dir, fsync on):
#   1. predict throughput and latency, one sprig on sled vs one on PostgreSQL (the same wrk
#      harness as the peer comparison, ../shared/baselines/bench), alternating, two rounds;
#   2. upload rate through POST /api/images (sprig-loadtest ingest, the 900 training photos),
#      sled vs PostgreSQL, 1 and 50 files per request;
#   3. one vs two replicas on one PostgreSQL behind nginx (deployment/nginx.conf), each replica
#      pinned to its own core with taskset; wrk, nginx and PostgreSQL share the same two cores.
# Needs: cargo build --release -p sprig -p sprig-loadtest; wrk; nginx; Debian's postgresql;
# the runtimes in sprig's cache (`sprig runtimes fetch`). Raw outputs go to $OUT.
# Env: OUT (default loadtest/results/postgres-<date>), DURATION (wrk seconds per level, 10),
#      ROUNDS (1: rounds of section 1, default 2), SECTIONS (default "predict ingest replicas").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${OUT:-$ROOT/loadtest/results/postgres-$(date +%Y-%m-%d)}"
TARGET="$(scripts/target-dir.sh)"
SPRIG="$TARGET/release/sprig"
LOADTEST="$TARGET/release/sprig-loadtest"
BASELINES="$ROOT/../shared/baselines"
TRAIN="$ROOT/../shared/datasets/beans/train"
export DURATION="${DURATION:-10}" WARMUP="${WARMUP:-3}"
mkdir -p "$OUT"
work="$(mktemp -d)"
chmod 755 "$work"
cp -r "$BASELINES/bench" "$work/bench"
pids=()
# PostgreSQL runs under runuser when root: stop the server itself, not just its runuser parent.
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  pkill -f "$work/pg/data" 2>/dev/null || true
}
trap cleanup EXIT
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }

# --- PostgreSQL ------------------------------------------------------------------------------
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$work/pg"; [ "$(id -u)" = 0 ] && chown postgres "$work/pg"
as_pg "$PG_BIN/initdb" -A trust -U postgres -D "$work/pg/data" > /dev/null
PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$PG_BIN/postgres" -D "$work/pg/data" -p "$PG_PORT" -k "$work/pg" -c listen_addresses=127.0.0.1 \
  -c max_connections=200 > "$work/pg/log" 2>&1 &
pids+=("$!")
until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; do sleep 0.2; done
databases=0
new_database() { databases=$((databases + 1)); "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "figures_$databases"; DB="postgres://postgres@127.0.0.1:$PG_PORT/figures_$databases"; }

# start_sprig NAME STORE_URL [taskset-cpu] [ENV=VALUE...]: waits for readiness (for liveness
# with READY=/livez, e.g. with no model to serve); sets URL and PID
start_sprig() {
  local name=$1 store=$2 cpu=$3; shift 3
  local pin=(); [ -n "$cpu" ] && pin=(taskset -c "$cpu")
  # shellcheck disable=SC2086
  env "$@" SPRIG_LOG__LEVEL=warn SPRIG_STORE__URL="$store" "${pin[@]}" "$SPRIG" --data-dir "$work/$name" \
    serve --addr 127.0.0.1:0 > "$work/$name.out" 2> "$work/$name.log" &
  PID=$!; pids+=("$PID")
  for _ in $(seq 1 900); do
    URL="$(sed -n 's/^sprig listening on //p' "$work/$name.out" | head -1)"
    if [ -n "$URL" ] && curl -sf "$URL${READY:-/readyz}" > /dev/null; then
      BACKEND="$(curl -sf "$URL/api/config" | sed -n 's/.*"backend":"\([a-z]*\)".*/\1/p')"
      log "sprig $name ready on $BACKEND (store ${store%%://*}${cpu:+, cpu $cpu})"
      return
    fi
    sleep 0.5
  done
  log "sprig $name did not start"; cat "$work/$name.log"; exit 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
bench() { # LABEL URL PID [LEVELS]
  LEVELS="${4:-1 8 32}" "$work/bench/run.sh" "$2" "$1" "$3" | grep '^RESULT' | tee -a "$OUT/wrk.txt"
}

SECTIONS="${SECTIONS:-predict ingest replicas}"
wants() { [[ " $SECTIONS " == *" $1 "* ]]; }
log "machine: $(nproc) cores ($(sed -n 's/^model name\t: //p' /proc/cpuinfo | head -1)), $(free -g | awk '/Mem:/ {print $2}') GiB; load: $(cut -d' ' -f1-3 /proc/loadavg); PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') (fsync on)"

wants predict && for round in $(seq 1 "${ROUNDS:-2}"); do
  log "predict, round $round: sled"
  start_sprig "sled-r$round" "sled:$work/sled-r$round" ""
  bench "sled-r$round" "$URL" "$PID"; stop "$PID"
  log "predict, round $round: postgres"
  new_database; start_sprig "pg-r$round" "$DB" ""
  bench "postgres-r$round" "$URL" "$PID"; stop "$PID"
done

wants ingest && for files in 1 50; do
  for engine in sled postgres; do
    if [ "$engine" = sled ]; then store="sled:$work/ingest-sled-$files"; else new_database; store="$DB"; fi
    # No bootstrap: the measurement uploads into an empty store (so no model: wait for liveness).
    READY=/livez start_sprig "ingest-$engine-$files" "$store" "" SPRIG_BOOTSTRAP__ENABLED=false
    log "ingest on $engine, $files file(s) per request"
    "$LOADTEST" ingest --host "$URL" --files-per-request "$files" "$TRAIN" | tee -a "$OUT/ingest.txt"
    stop "$PID"
  done
done

wants replicas || { log "done; results in $OUT"; exit 0; }
new_database
start_sprig "replica-a" "$DB" 0; A_URL="$URL"; A_PID="$PID"
start_sprig "replica-b" "$DB" 1; B_URL="$URL"; B_PID="$PID"
nginx_for() { # NAME UPSTREAM...: nginx on a free port in front of the upstreams; sets URL and PID
  local name=$1; shift
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  local dir="$work/nginx-$name"; mkdir -p "$dir"
  local upstream; upstream="$(printf '%s; server ' "${@#http://}")"; upstream="${upstream%; server }"
  sed -e "s|\${SPRIG_UPSTREAM}|$upstream|" -e "s|\${NGINX_LISTEN}|127.0.0.1:$port|" deployment/nginx.conf > "$dir/sprig.conf"
  cat > "$dir/nginx.conf" <<CONF
master_process off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  include $dir/sprig.conf;
}
CONF
  /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2> "$dir/stderr.log" &
  PID=$!; pids+=("$PID"); URL="http://127.0.0.1:$port"
  until curl -sf "$URL/readyz" > /dev/null; do sleep 0.2; done
}
# CPU seconds of this shell's finished children (run.sh, wrk, curl), from `times`' second line,
# read in this shell (a `$(...)` subshell has no children of its own).
bench_with_share() { # LABEL URL PID LEVELS: bench, then the load generator's share of the machine
  local c0 t0 c1 t1
  times > "$work/times"; c0=$(tail -1 "$work/times" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }'); t0=$(date +%s.%N)
  bench "$@"
  times > "$work/times"; c1=$(tail -1 "$work/times" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }'); t1=$(date +%s.%N)
  log "$1: load generator (wrk and its harness) used $(echo "$c1 - $c0" | bc) CPU-s in $(echo "$t1 - $t0" | bc | cut -c1-5) s: $(echo "scale=1; 100 * ($c1 - $c0) / (($t1 - $t0) * $(nproc))" | bc) % of the machine's $(nproc) cores"
}
log "replicas: one replica (cpu 0) behind nginx"
nginx_for one "$A_URL"; bench_with_share "replicas-1" "$URL" "$A_PID" "8 32"; stop "$PID"
log "replicas: two replicas (cpu 0, cpu 1) behind nginx"
nginx_for two "$A_URL" "$B_URL"; bench_with_share "replicas-2" "$URL" "$A_PID" "8 32"; stop "$PID"
stop "$A_PID"; stop "$B_PID"
log "done; results in $OUT"
