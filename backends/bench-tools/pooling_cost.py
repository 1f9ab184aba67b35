#!/usr/bin/env python3
"""usage: pooling_cost.py FINAL.onnx OTHER.onnx...  (from `target/debug/examples/export_onnx mobilenet_v2 OUT [--every-block | --texture]`)

Median ms per image (batch 16, ONNX Runtime CPU, 2 threads) of sprig's exported MobileNetV2 graph
with final pooling and with other poolings, alternating, same inputs; each one's ratio to the first."""
import sys, time
import numpy as np, onnxruntime as ort
paths = sys.argv[1:]
o = ort.SessionOptions(); o.intra_op_num_threads = 2; o.inter_op_num_threads = 1
sessions = [ort.InferenceSession(p, o, providers=["CPUExecutionProvider"]) for p in paths]
x = np.random.default_rng(0).uniform(-1, 1, (16, 3, 224, 224)).astype(np.float32)
for s in sessions:
    for _ in range(3): s.run(None, {"input": x})
times = [[] for _ in sessions]
for _ in range(40):
    for s, t in zip(sessions, times):
        a = time.perf_counter(); out = s.run(None, {"input": x})[0]; t.append((time.perf_counter() - a) * 1000 / 16)
for p, s, t in zip(paths, sessions, times):
    print(f"{p}: output {s.get_outputs()[0].shape}, {np.median(t):.2f} ms/image (median of 40 batches of 16; p10 {np.percentile(t,10):.2f}, p90 {np.percentile(t,90):.2f})")
for p, t in zip(paths[1:], times[1:]):
    print(f"ratio {p} / {paths[0]}: {np.median(t) / np.median(times[0]):.3f}")
