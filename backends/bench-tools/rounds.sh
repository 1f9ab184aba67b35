#!/usr/bin/env bash
# Alternating criterion rounds: each forward benchmark id runs on its own, round-robin, so every
# plugin sees the same drift on a shared machine; prints "round,id,median_ms" per run.
#
#   ORT_DYLIB_PATH=/path/to/libonnxruntime.so.1.32.0 OPENVINO_DYLIB_PATH=/path/to/libopenvino_c.so.2641 \
#     backends/bench-tools/rounds.sh > rounds.csv
#
# Env: ROUNDS (default 3), IDS (default: every plugin and runtime variant, both batch sizes).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
IDS=${IDS:-"flex/1 onnxruntime/1 onnxruntime-spinning/1 onnxruntime-1-thread/1 openvino/1 openvino-f32/1 flex/16 onnxruntime/16 onnxruntime-spinning/16 onnxruntime-1-thread/16 openvino/16 openvino-f32/16 ndarray/1"}
for round in $(seq 1 "$ROUNDS"); do
  for id in $IDS; do
    cargo bench -q -p sprig-backends --features onnxruntime,openvino --bench inference -- \
      "^forward_mobilenet_v2/${id}\$" > /dev/null 2>&1
    python3 -c "
import json
e = json.load(open('target/criterion/forward_mobilenet_v2/${id}/new/estimates.json'))
print('${round},${id},%.3f' % (e['median']['point_estimate'] / 1e6))"
  done
done
