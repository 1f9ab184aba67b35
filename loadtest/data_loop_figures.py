"""Out-of-distribution flags and drift detection of a running sprig, measured from outside.

usage: data_loop_figures.py URL OUT_DIR

1. Every held-out bean photo of data/beans-sample/test (30, never trained on) and every image of
   data/ood (50) is predicted once: the share flagged out of distribution in each set.
2. Drift detection delay: held-out photos (cycled) until the count window is full, then only
   OOD images; after each prediction GET /api/drift; the number of OOD predictions until the
   count window's status is `warning` and `drift` (the time window still holds part 1's OOD
   predictions, so its status says nothing here).
Writes OUT_DIR/data-loop.json and prints a summary. Standard library only.
"""
import glob
import json
import os
import sys
import urllib.request

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def call(url, body=None, content_type=None):
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    if content_type:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def predict(base, path):
    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(path)
    return call(f"{base}/api/predict?filename={name}", data, "application/octet-stream")


def main():
    base, out = sys.argv[1].rstrip("/"), sys.argv[2]
    held_out = sorted(glob.glob(f"{ROOT}/data/beans-sample/test/*/*.jpg"))
    ood = {part: sorted(glob.glob(f"{ROOT}/data/ood/{part}/*.jpg")) for part in ("photos", "synthetic")}
    result = {"held_out": [], "ood": {}}
    for path in held_out:
        answer = predict(base, path)
        result["held_out"].append([os.path.basename(path), answer["novelty"], answer["out_of_distribution"]])
    for part, paths in ood.items():
        result["ood"][part] = []
        for path in paths:
            answer = predict(base, path)
            result["ood"][part].append([os.path.basename(path), answer["novelty"], answer["out_of_distribution"]])
    flagged = lambda rows: sum(1 for r in rows if r[2])
    lines = [f"held-out beans flagged: {flagged(result['held_out'])}/{len(held_out)}; "
             f"largest novelty {max(r[1] for r in result['held_out']):.3f}"]
    for part, rows in result["ood"].items():
        lines.append(f"OOD {part} flagged: {flagged(rows)}/{len(rows)}; smallest novelty {min(r[1] for r in rows):.3f}")
    every_ood = [r for rows in result["ood"].values() for r in rows]
    lines.append(f"OOD recall: {flagged(every_ood)}/{len(every_ood)}")

    drift = call(f"{base}/api/drift")
    window = next(w for w in drift["windows"] if w["kind"] == "count")["size"]
    # Fill the count window with in-distribution traffic.
    for i in range(window):
        predict(base, held_out[i % len(held_out)])
    before = call(f"{base}/api/drift")
    result["drift_before"] = before
    lines.append(f"after {window} held-out predictions, count window: {before['windows'][0]['status']} " + ", ".join(
        f"{s['name']}={s['value']:.4f} (warning {s['warning']:.4f}, drift {s['drift']:.4f})"
        for s in before["windows"][0]["statistics"] if s.get("value") is not None))
    first = {}
    trace = []
    for i in range(window):
        predict(base, every_ood_paths(ood)[i % len(every_ood)])
        report = call(f"{base}/api/drift")
        stats = {s["name"]: s.get("value") for s in report["windows"][0]["statistics"]}
        status = report["windows"][0]["status"]
        trace.append([i + 1, status, stats])
        for level in ("warning", "drift"):
            if level not in first and (status == level or (level == "warning" and status == "drift")):
                first[level] = i + 1
        if "drift" in first:
            break
    result["drift_trace"] = trace
    result["detection_delay"] = first
    lines.append(f"OOD traffic after a full window of {window}: warning after {first.get('warning')}, "
                 f"drift after {first.get('drift')} OOD predictions")
    lines.append(f"false-alarm rate stated for the window: {before['windows'][0]['false_alarm_rate']}, "
                 f"warning rate {before['windows'][0]['warning_rate']}")
    os.makedirs(out, exist_ok=True)
    with open(f"{out}/data-loop.json", "w") as f:
        json.dump(result, f, indent=1)
    print("\n".join(lines))


def every_ood_paths(ood):
    return [p for paths in ood.values() for p in paths]


if __name__ == "__main__":
    main()
