#!/usr/bin/env bash
# Generates the Python client from the committed spec (openapi/openapi.json) with
# openapi-python-client, installs it into a venv, starts a real sprig (fresh data dir, with a
# token) and runs scripts/python-client-demo.py against it (predict, upload, retrain status), then
# scripts/onnx-export-check.py (the active version exported as ONNX, run by ONNX Runtime from
# Python with the documented preprocessing, against sprig's answers).
# Exits non-zero on any failure.
#   scripts/python-client.sh [SPRIG_BIN]     (default: debug/sprig in cargo's target dir)
#   PYTHON_VENV=DIR reuses or creates that venv (default /tmp/sprig-python-client-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-$(scripts/target-dir.sh)/debug/sprig}"
VENV="${PYTHON_VENV:-/tmp/sprig-python-client-venv}"
# Pinned so the generated code, and what this script expects of it, only change on purpose.
GENERATOR="openapi-python-client==0.29.1"
# The export check's runtime: the ONNX Runtime version sprig pins (backends/src/runtimes/pins.rs).
CHECK_PACKAGES=(onnxruntime==1.32.0 numpy==2.4.6 pillow==13.0.0)
TOKEN="python-client-demo-token-0123456789"

[ -x "$BIN" ] || { echo "no sprig binary at $BIN (build it: cargo build -p sprig)" >&2; exit 1; }
work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== python client: venv $VENV with $GENERATOR"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "$GENERATOR" "${CHECK_PACKAGES[@]}"
# The generator formats its output with the ruff it depends on, found on PATH.
export PATH="$VENV/bin:$PATH"

echo "== python client: generating from openapi/openapi.json"
# Warnings (e.g. that `image/*` downloads come back as raw bytes) are expected; errors fail.
openapi-python-client generate --path openapi/openapi.json --output-path "$work/client" --meta setup \
  > "$work/generate.log" 2>&1 || { cat "$work/generate.log" >&2; exit 1; }
# An endpoint the generator cannot parse is left out of the client silently (exit 0): only the
# image downloads (`image/*`, returned as raw bytes by hand) may be.
dropped="$(grep -E '^WARNING parsing ' "$work/generate.log" \
  | grep -vE 'GET /api/images/\{id\}/content|GET /api/predictions/\{prediction_id\}/(image|explanation\.png)' || true)"
if [ -n "$dropped" ]; then
  echo "openapi-python-client left endpoints out of the client:" >&2
  echo "$dropped" >&2
  cat "$work/generate.log" >&2
  exit 1
fi
"$VENV/bin/pip" install -q --disable-pip-version-check "$work/client"

echo "== python client: starting $BIN"
# Served in float32 (OpenVINO's bfloat16 / int8 passed over) so the float32 export can be held to
# sprig's answers.
SPRIG_OPENVINO__PRECISION=f32 SPRIG_AUTH__TOKEN="$TOKEN" SPRIG_TRAINING__EPOCHS=3 SPRIG_TRAINING__AUGMENT_VIEWS=0 SPRIG_LOG__LEVEL=warn \
  "$BIN" --data-dir "$work/data" serve --addr 127.0.0.1:0 > "$work/sprig.out" 2> "$work/sprig.log" &
pid=$!
url=""
for _ in $(seq 1 360); do
  url="$(sed -n 's/^sprig listening on //p' "$work/sprig.out" | head -1)"
  if [ -n "$url" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ]; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then echo "sprig exited:" >&2; cat "$work/sprig.log" >&2; exit 1; fi
  url=""
  sleep 0.5
done
[ -n "$url" ] || { echo "sprig did not become ready in 180 s:" >&2; cat "$work/sprig.log" >&2; exit 1; }

echo "== python client: demo against $url"
"$VENV/bin/python" scripts/python-client-demo.py --url "$url" --token "$TOKEN"

echo "== python client: ONNX export check against $url"
"$VENV/bin/python" scripts/onnx-export-check.py --url "$url" --token "$TOKEN"
