#!/usr/bin/env bash
cd /work/main
export SPRIG_LOG__LEVEL=warn SPRIG_TRAINING__CALIBRATION_FOLDS=0
for cfg in "effl0 efficientnet_lite0 every_block" "mnv2 mobilenet_v2 every_block" "mnv2 mobilenet_v2 every_block_texture" "effl0 efficientnet_lite0 every_block_texture"; do
  set -- $cfg
  rm -f /tmp/bag/dump-$1-$3.txt
  echo "[$(date -u +%T)] $1 $3" >> /tmp/bag/fuse-summary.log
  SPRIG_EXPERIMENT_DUMP=/tmp/bag/dump-$1-$3.txt SPRIG_TRAINING__BACKBONE=$2 SPRIG_TRAINING__POOLING=$3 /usr/bin/time -v target/release/sprig --backend auto --data-dir /tmp/hp/data train --cv 5 > /tmp/bag/cv-$1-$3.log 2>&1
  grep -E "accuracy: mean|pooled" /tmp/bag/cv-$1-$3.log >> /tmp/bag/fuse-summary.log
done
echo "[$(date -u +%T)] done" >> /tmp/bag/fuse-summary.log
