#!/usr/bin/env bash
cd /work/main
while ! grep -q done /tmp/release-build2.log; do sleep 5; done
bin=target/release/sprig
out=/tmp/hp/out3
mkdir -p $out
data=/tmp/hp/data
export SPRIG_LOG__LEVEL=warn SPRIG_TRAINING__CALIBRATION_FOLDS=0 SPRIG_EXPERIMENT_REFIT=1
for p in every_block_texture every_block; do
  echo "[$(date -u +%T)] $p refit" >> $out/summary.log
  SPRIG_TRAINING__POOLING=$p $bin --backend auto --data-dir $data train --cv 5 > $out/cv-$p-refit.log 2>&1
  grep -E "^ +[0-9] |accuracy: mean|macro-F1: mean|pooled" $out/cv-$p-refit.log >> $out/summary.log
done
echo "[$(date -u +%T)] done3" >> $out/summary.log
