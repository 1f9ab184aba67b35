#!/usr/bin/env bash
cd /work/main
bin=target/release/sprig
out=/tmp/hp/out
mkdir -p $out
data=/tmp/hp/data
rm -rf $data
export SPRIG_LOG__LEVEL=warn SPRIG_TRAINING__CALIBRATION_FOLDS=0
SPRIG_TRAINING__POOLING=every_block_texture $bin --backend auto --data-dir $data train --data ../shared/datasets/beans/train > $out/import.log 2>&1
for cfg in "every_block_texture 0.001" "every_block 0.001" "every_block_texture 0.01"; do
  set -- $cfg
  echo "[$(date -u +%T)] $1 l2=$2" >> $out/summary.log
  SPRIG_TRAINING__POOLING=$1 SPRIG_TRAINING__L2=$2 $bin --backend auto --data-dir $data train --cv 5 > $out/cv-$1-$2.log 2>&1
  grep -E "^ +[0-9] |accuracy: mean|pooled" $out/cv-$1-$2.log >> $out/summary.log
done
echo "[$(date -u +%T)] done" >> $out/summary.log
