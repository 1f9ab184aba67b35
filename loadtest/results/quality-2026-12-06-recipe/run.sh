#!/usr/bin/env bash
# Label smoothing, decoupled weight decay (AdamW) and phase 2's cosine schedule with warm-up,
# under 5-fold cross-validation on the 900 imported photos (the same content-hash folds as every
# other table in the README). Each config is a list of SPRIG_TRAINING__* settings
# (KEY=value, space-separated); configs are separated by ';'. The name is the settings joined.
#   CONFIGS="POOLING=every_block LABEL_SMOOTHING=0.1;..." ./run.sh
cd /work/main
bin=${BIN:-target/release/sprig}
out=${OUT:-/work/main/loadtest/results/quality-2026-12-06-recipe}
data=${DATA:-/tmp/hp/data}
mkdir -p $out
export SPRIG_LOG__LEVEL=warn SPRIG_TRAINING__CALIBRATION_FOLDS=0
if [ ! -d $data ]; then
  # Imports the photos (and trains once, which the CV runs do not use).
  $bin --backend auto --data-dir $data train --data ../shared/datasets/beans/train > $out/import.log 2>&1
fi
IFS=';' read -ra configs <<< "$CONFIGS"
for cfg in "${configs[@]}"; do
  name=$(echo $cfg | tr ' =' '_-' | tr 'A-Z' 'a-z')
  settings=()
  for kv in $cfg; do settings+=("SPRIG_TRAINING__$kv"); done
  echo "[$(date -u +%T)] $name" >> $out/summary.log
  env "${settings[@]}" /usr/bin/time -f "wall %e s, max RSS %M KB" $bin --backend auto --data-dir $data \
    train --cv 5 --report $out/$name > $out/$name.log 2>&1
  grep -E "^ +[0-9] |accuracy: mean|pooled|wall" $out/$name.log >> $out/summary.log
done
echo "[$(date -u +%T)] done" >> $out/summary.log
