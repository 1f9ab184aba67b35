#!/usr/bin/env bash
# Model quality of sprig's training configurations on the 900 licensed bean photos, one sitting:
# for each configuration a one-click retrain from nothing (`sprig train --data`: import, features,
# head, out-of-fold calibration; timed with /usr/bin/time -v) and a 5-fold cross-validation of it
# (`sprig train --cv $FOLDS`, on the cached features: accuracy and macro-F1 over folds, and the
# expected calibration error of all 900 held-out answers pooled, raw and after the temperature
# fitted as a retrain fits it, on out-of-fold answers of the other folds' images).
#
# usage: OUT=loadtest/results/quality-YYYY-MM-DD loadtest/quality.sh [SPRIG_BIN] [PHOTOS]
# Env: OUT (required); CONFIGS (default "mnv2 mnv2-f32 mnv2-views8 effl0"); FOLDS (5);
# CALIBRATION_FOLDS (unset: the config's default, 5; 0 leaves out the nested calibration heads
# when only accuracy is compared).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/sprig}
photos=${2:-../shared/datasets/beans/train}
: "${OUT:?set OUT to the results folder}"
configs=${CONFIGS:-mnv2 mnv2-f32 mnv2-views8 effl0}
folds=${FOLDS:-5}
calibration=${CALIBRATION_FOLDS:+SPRIG_TRAINING__CALIBRATION_FOLDS=$CALIBRATION_FOLDS}
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

{
    echo "\$ OUT=$OUT loadtest/quality.sh $*  (CONFIGS=\"$configs\" FOLDS=$folds ${calibration:-})"
    date -u
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' (working tree changed)')"
    grep -m1 'model name' /proc/cpuinfo
    echo "$(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/run.log"

# NAME -> the settings of that configuration, as `sprig` arguments and environment.
settings() {
    case $1 in
        mnv2) echo "--backend auto" ;;
        mnv2-f32) echo "--backend onnxruntime" ;;
        mnv2-final) echo "--backend auto SPRIG_TRAINING__POOLING=final" ;;
        mnv2-every-block) echo "--backend auto SPRIG_TRAINING__POOLING=every_block" ;;
        mnv2-every-block-f32) echo "--backend onnxruntime SPRIG_TRAINING__POOLING=every_block" ;;
        mnv2-texture) echo "--backend auto SPRIG_TRAINING__POOLING=every_block_texture" ;;
        mnv2-views8) echo "--backend auto SPRIG_TRAINING__AUGMENT_VIEWS=8" ;;
        mnv2-views16) echo "--backend auto SPRIG_TRAINING__AUGMENT_VIEWS=16" ;;
        effl0) echo "--backend auto SPRIG_TRAINING__BACKBONE=efficientnet_lite0" ;;
        *) echo "unknown configuration $1" >&2; exit 2 ;;
    esac
}

for config in $configs; do
    read -r flag backend env <<<"$(settings "$config")"
    env="$env ${calibration:-}"
    dir="$OUT/$config"
    mkdir -p "$dir"
    data="$work/$config"
    run() {
        echo "\$ ${env:+$env }sprig $flag $backend --data-dir DATA $*" | tee -a "$dir/run.log"
        # shellcheck disable=SC2086
        env $env SPRIG_LOG__LEVEL=warn /usr/bin/time -v "$bin" "$flag" "$backend" --data-dir "$data" "$@" \
            >>"$dir/run.log" 2>&1
    }
    echo "[$(date -u +%H:%M:%S)] $config: retrain from nothing" | tee -a "$OUT/run.log"
    run train --data "$photos" --report "$dir/train"
    echo "[$(date -u +%H:%M:%S)] $config: $folds-fold cross-validation" | tee -a "$OUT/run.log"
    run train --cv "$folds" --report "$dir/cv"
    grep -E "trained in|calibrated|accuracy: mean|macro-F1: mean|pooled over|Elapsed" "$dir/run.log" \
        | sed "s/^/  /" | tee -a "$OUT/run.log"
done
echo "[$(date -u +%H:%M:%S)] done" | tee -a "$OUT/run.log"
