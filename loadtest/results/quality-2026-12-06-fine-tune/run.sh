#!/usr/bin/env bash
# Phase 2 under 5-fold cross-validation, one sitting per pooling:
#   ./run.sh                          final pooling: frozen, 2 blocks at 1e-5, 4 blocks at 1e-4 (17:08-17:54)
#   POOLING=every_block CONFIGS="off 4 0.0001;on 4 0.0001" ./run.sh   (18:45-19:24)
#   BIN=<build of 6dfe116> CONFIGS="on 6 0.0001" ./run.sh   final pooling, 6 blocks (20:23-21:05)
# Each config is "fine_tune blocks learning_rate"; configs are separated by ';'.
cd /work/main
bin=${BIN:-target/release/sprig}
out=${OUT:-/work/main/loadtest/results/quality-2026-12-06-fine-tune}
pooling=${POOLING:-final}
mkdir -p $out
export SPRIG_LOG__LEVEL=warn SPRIG_TRAINING__CALIBRATION_FOLDS=0 SPRIG_TRAINING__POOLING=$pooling
IFS=';' read -ra configs <<< "${CONFIGS:-off 2 0.00001;on 2 0.00001;on 4 0.0001}"
for cfg in "${configs[@]}"; do
  set -- $cfg
  name=$pooling-fine_tune_$1-blocks_$2-lr_$3
  echo "[$(date -u +%T)] $name" >> $out/summary.log
  SPRIG_TRAINING__FINE_TUNE=$1 SPRIG_TRAINING__FINE_TUNE_BLOCKS=$2 SPRIG_TRAINING__FINE_TUNE_LEARNING_RATE=$3 \
    /usr/bin/time -f "wall %e s, max RSS %M KB" $bin --backend auto --data-dir /tmp/hp/data train --cv 5 --report $out/$name > $out/$name.log 2>&1
  grep -E "^ +[0-9] |accuracy: mean|pooled|wall" $out/$name.log >> $out/summary.log
done
echo "[$(date -u +%T)] done" >> $out/summary.log
