#!/usr/bin/env bash
cd /work/main
while pgrep -f /tmp/hp/run.sh > /dev/null; do sleep 5; done
bin=target/release/sprig
out=/tmp/hp/out
data=/tmp/hp/data
export SPRIG_LOG__LEVEL=warn SPRIG_TRAINING__CALIBRATION_FOLDS=0 SPRIG_TRAINING__AUGMENT_VIEWS=0
for p in every_block_texture every_block; do
  echo "[$(date -u +%T)] $p l2=default views=0" >> $out/summary.log
  SPRIG_TRAINING__POOLING=$p $bin --backend auto --data-dir $data train --cv 5 > $out/cv-$p-views0.log 2>&1
  grep -E "^ +[0-9] |accuracy: mean|pooled" $out/cv-$p-views0.log >> $out/summary.log
done
echo "[$(date -u +%T)] done2" >> $out/summary.log
