#!/usr/bin/env bash
# A mode at more seeds (after run-tta.sh's first pass): MODE=flip SEEDS="7 1 2 3"; EXTRA adds
# settings (EXTRA="AUGMENT_VIEWS=4", into DIR=views4/).
here=$(cd $(dirname $0) && pwd)
mode=${MODE:-flip}
cfgs=""
for s in $SEEDS; do cfgs="$cfgs;POOLING=every_block_texture LABEL_SMOOTHING=0.1 ${EXTRA:+$EXTRA }SEED=$s"; done
SPRIG_EXP_TTA=$mode OUT=$here/${DIR:-$mode} CONFIGS="${cfgs#;}" $here/../quality-2026-12-06-recipe/run.sh
