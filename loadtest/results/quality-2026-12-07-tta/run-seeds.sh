#!/usr/bin/env bash
# The flip mode at more seeds (after run-tta.sh's first pass): SEEDS="7 1 2 3".
here=$(cd $(dirname $0) && pwd)
mode=${MODE:-flip}
cfgs=""
for s in $SEEDS; do cfgs="$cfgs;POOLING=every_block_texture LABEL_SMOOTHING=0.1 SEED=$s"; done
SPRIG_EXP_TTA=$mode OUT=$here/$mode CONFIGS="${cfgs#;}" $here/../quality-2026-12-06-recipe/run.sh
