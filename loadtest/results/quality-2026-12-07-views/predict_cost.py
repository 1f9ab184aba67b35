#!/usr/bin/env python3
"""Predict cost of test-time views: a server on a fresh data dir (the shipped version 1 and the 60
demo photos) trains one version per variant on the demo photos with the same settings
(`every_block_texture`, manual activation) — without test-time views, with 2, with 4 — then,
ROUNDS times, activates each in turn and measures
  - latency: the 30 held-out demo photos posted one at a time (median `latency_ms`, decoding
    included, as the server reports it);
  - throughput: CLIENTS clients posting those photos back to back for SECONDS seconds (answers/s).
  python3 predict_cost.py BIN OUT_DIR [ROUNDS]"""
import json, os, re, statistics, subprocess, sys, tempfile, threading, time, urllib.request

import requests

bin_, out = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
CLIENTS, SECONDS = 8, 10
repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../.."))
photos = [open(p, "rb").read() for p in sorted(
    os.path.join(d, f)
    for d, _, files in os.walk(os.path.join(repo, "data/beans-sample/test"))
    for f in files
)]
data = tempfile.mkdtemp(prefix="predict-cost.")
log = open(os.path.join(out, "predict-cost-server.log"), "w")
server = subprocess.Popen(
    [bin_, "--backend", "auto", "--data-dir", data, "serve", "--addr", "127.0.0.1:0"],
    stdout=subprocess.PIPE, stderr=log, text=True,
    env={**os.environ, "SPRIG_LOG__LEVEL": "warn"},
)
url = None
while url is None:
    m = re.match(r"sprig listening on (\S+)", server.stdout.readline())
    url = m and m.group(1)


def call(method, path, body=None):
    request = urllib.request.Request(url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def predict(session, photo):
    answer = session.post(url + "/api/predict", files={"file": ("leaf.jpg", photo)}).json()
    return answer


while True:
    try:
        call("GET", "/readyz")
        break
    except Exception:
        time.sleep(0.5)
settings = {"pooling": "every_block_texture", "activation_policy": "manual"}
variants = {"none": {}, "views2": {"test_time_views": 2}, "views4": {"test_time_views": 4}}
versions = {}
for name, extra in variants.items():
    job = call("POST", "/api/retrain", {**settings, **extra})
    while True:
        state = call("GET", f"/api/jobs/{job['job_id']}")
        if state["state"] in ("succeeded", "failed"):
            break
        time.sleep(1)
    assert state["state"] == "succeeded", state
    versions[name] = state["model_version"]
latencies = {name: [] for name in variants}
throughput = {name: [] for name in variants}
backend = call("GET", "/api/config").get("backend")
for _ in range(rounds):
    for name, version in versions.items():
        call("POST", f"/api/models/{version}/activate", {})
        with requests.Session() as session:
            for photo in photos:
                answer = predict(session, photo)
                assert answer["model_version"] == version, answer
                latencies[name].append(answer["latency_ms"])
        answered = [0] * CLIENTS
        stop = time.monotonic() + SECONDS

        def client(k):
            with requests.Session() as session:
                i = k
                while time.monotonic() < stop:
                    assert predict(session, photos[i % len(photos)])["model_version"] == version
                    answered[k] += 1
                    i += CLIENTS

        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        throughput[name].append(sum(answered) / (time.monotonic() - started))
server.terminate()
server.wait()
with open(os.path.join(out, "predict-cost-raw.json"), "w") as f:
    json.dump({"versions": versions, "latency_ms": latencies, "answers_per_s": throughput,
               "backend": backend, "clients": CLIENTS, "seconds": SECONDS}, f)
print(f"backend {backend}; per variant and round: {len(photos)} photos at one client, then "
      f"{CLIENTS} clients for {SECONDS} s; {rounds} rounds, variants in turn")
base_latency = statistics.median(latencies["none"])
base_rate = statistics.median(throughput["none"])
for name, version in versions.items():
    latency, rate = statistics.median(latencies[name]), statistics.median(throughput[name])
    print(f"{name:>6} (v{version}): median latency_ms {latency:.2f} (x{latency / base_latency:.2f}); "
          f"answers/s at {CLIENTS} clients, median of rounds {rate:.1f} (x{rate / base_rate:.2f}), "
          f"rounds {', '.join(f'{r:.1f}' for r in throughput[name])}")
