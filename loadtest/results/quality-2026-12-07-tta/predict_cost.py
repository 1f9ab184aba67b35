#!/usr/bin/env python3
"""Predict cost of test-time flipping, at one client: a server on a fresh data dir (the shipped
version 1 and the 60 demo photos) trains two versions on the demo photos with the same settings,
one without and one with `test_time_flip` (manual activation); then, ROUNDS times, each is
activated in turn and the 30 held-out demo photos are posted one at a time. Prints the median
`latency_ms` per version over all its answers.
  python3 predict_cost.py BIN OUT_DIR [ROUNDS]"""
import json, os, re, statistics, subprocess, sys, tempfile, time, urllib.request

bin_, out = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../.."))
photos = sorted(
    os.path.join(d, f)
    for d, _, files in os.walk(os.path.join(repo, "data/beans-sample/test"))
    for f in files
)
data = tempfile.mkdtemp(prefix="predict-cost.")
log = open(os.path.join(out, "predict-cost-server.log"), "w")
server = subprocess.Popen(
    [bin_, "--backend", "auto", "--data-dir", data, "serve", "--addr", "127.0.0.1:0"],
    stdout=subprocess.PIPE, stderr=log, text=True,
    env={**os.environ, "SPRIG_LOG__LEVEL": "warn"},
)
url = None
while url is None:
    line = server.stdout.readline()
    m = re.match(r"sprig listening on (\S+)", line)
    url = m and m.group(1)


def call(method, path, body=None):
    request = urllib.request.Request(url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


while True:
    try:
        call("GET", "/readyz")
        break
    except Exception:
        time.sleep(0.5)
settings = {"pooling": "every_block_texture", "activation_policy": "manual"}
versions = {}
for flip in (False, True):
    job = call("POST", "/api/retrain", {**settings, "test_time_flip": flip})
    while True:
        state = call("GET", f"/api/jobs/{job['job_id']}")
        if state["state"] in ("succeeded", "failed"):
            break
        time.sleep(1)
    assert state["state"] == "succeeded", state
    versions[flip] = state["model_version"]
latencies = {False: [], True: []}
backend = call("GET", "/api/config").get("backend")
for _ in range(rounds):
    for flip, version in versions.items():
        call("POST", f"/api/models/{version}/activate", {})
        for photo in photos:
            answer = json.loads(subprocess.run(
                ["curl", "-s", "-F", f"file=@{photo}", url + "/api/predict"],
                capture_output=True, text=True, check=True).stdout)
            assert answer["model_version"] == version, answer
            latencies[flip].append(answer["latency_ms"])
server.terminate()
server.wait()
with open(os.path.join(out, "predict-cost-latencies.json"), "w") as f:
    json.dump({"versions": versions, "latency_ms": latencies, "backend": backend}, f)
plain, flipped = (statistics.median(latencies[k]) for k in (False, True))
print(f"backend {backend}; {len(photos)} photos x {rounds} rounds per version, one client")
print(f"median latency_ms without flipping (v{versions[False]}): {plain:.2f}")
print(f"median latency_ms with test_time_flip (v{versions[True]}): {flipped:.2f} (x{flipped / plain:.2f})")
