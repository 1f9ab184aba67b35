"""How often each photo is answered wrongly across the CV runs beside this file (every
`pooling-*/cross_validation.json`): the photos no run gets right are a floor that no choice among
these configurations lifts."""
import collections, glob, json, os

HERE = os.path.dirname(os.path.abspath(__file__))
runs = sorted(d for d in glob.glob(os.path.join(HERE, "pooling-*")) if os.path.isdir(d))
wrong, label_of = collections.Counter(), {}
for run in runs:
    report = json.load(open(os.path.join(run, "cross_validation.json")))
    for answer in report["answers"]:
        p = answer["probabilities"]
        label_of[answer["sha256"]] = report["classes"][answer["label"]]
        if max(range(len(p)), key=p.__getitem__) != answer["label"]:
            wrong[answer["sha256"]] += 1
always = [sha for sha, n in wrong.items() if n == len(runs)]
print(f"{len(runs)} runs, {len(label_of)} photos")
print(f"wrong in every run: {len(always)} ({collections.Counter(label_of[s] for s in always)})")
print(f"wrong in some runs, not all: {len(wrong) - len(always)}")
print("photos by how many runs got them wrong:", sorted(collections.Counter(wrong.values()).items()))
