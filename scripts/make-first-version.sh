#!/usr/bin/env bash
# Makes the first version sprig ships (models/first-version/): a version trained on the 900
# licensed bean photos with the default training settings, on ONNX Runtime in float32 (its
# features match flex's to ~1e-6, so every plugin serves the head as it was trained), written as
# a bundle; then scores it on the 30 held-out photos of data/beans-sample/test, which are not
# among the 900. Everything it prints goes to models/first-version/make.log as well.
#
# usage: scripts/make-first-version.sh [SPRIG_BIN] [PHOTOS]
#   SPRIG_BIN  a release build (default target/release/sprig)
#   PHOTOS     DIR/<class>/<images> (default ../shared/datasets/beans/train)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/sprig}
photos=${2:-../shared/datasets/beans/train}
out=models/first-version
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
exec > >(tee "$out/make.log") 2>&1

echo "\$ scripts/make-first-version.sh $*"
date -u
echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!models/first-version' || echo ' (working tree changed)')"
grep -m1 'model name' /proc/cpuinfo
echo "$(nproc) CPUs"
echo "photos: $photos ($(find "$photos" -type f | wc -l) files)"

run() {
    echo "\$ sprig $*" >&2
    "$bin" --data-dir "$work/data" --backend onnxruntime "$@"
}
SPRIG_LOG__LEVEL=warn run train --data "$photos" --report "$out/report"
run models export 1 "$out/beans-mobilenet_v2.bundle" --format bundle
(cd "$out" && sha256sum beans-mobilenet_v2.bundle)

echo "held-out photos (data/beans-sample/test, not among the 900):"
echo "\$ sprig predict --json data/beans-sample/test/*/*.jpg"
"$bin" --data-dir "$work/data" --backend onnxruntime predict --json data/beans-sample/test/*/*.jpg \
    >"$work/held-out.json"
python3 - "$work/held-out.json" <<'EOF'
import json, sys
answers = json.load(open(sys.argv[1]))
right = 0
for a in answers:
    truth = a["file"].split("/")[-2]
    right += a["predicted_class"] == truth
    if a["predicted_class"] != truth:
        print(f"  wrong: {a['file']} -> {a['predicted_class']} ({a['confidence']:.3f})")
print(f"  {right} of {len(answers)} right ({right / len(answers):.3f})")
EOF
