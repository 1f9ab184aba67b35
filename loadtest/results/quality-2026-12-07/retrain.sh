#!/usr/bin/env bash
# A retrain timed end to end, as a user runs it: `sprig train --data` on an empty data dir
# (import, features with the augmented views, head, the 5 calibration heads), one per config,
# one after the other on a quiet machine. Each config is a list of SPRIG_TRAINING__* settings
# (KEY=value, space-separated), configs separated by ';'; "" is the defaults.
#   CONFIGS="POOLING=every_block_texture AUGMENT_VIEWS=4;" ./retrain.sh
cd /work/main
bin=${BIN:-target/release/sprig}
out=${OUT:-/work/main/loadtest/results/quality-2026-12-07}
IFS=';' read -ra configs <<< "$CONFIGS"
for cfg in "${configs[@]}"; do
  name=retrain-$(echo ${cfg:-defaults} | tr ' =' '_-' | tr 'A-Z' 'a-z')
  settings=()
  for kv in $cfg; do settings+=("SPRIG_TRAINING__$kv"); done
  data=$(mktemp -d /tmp/retrain.XXXX)
  echo "[$(date -u +%T)] $name" >> $out/retrain-summary.log
  env SPRIG_LOG__LEVEL=warn "${settings[@]}" /usr/bin/time -v $bin --backend auto --data-dir $data \
    train --data ../shared/datasets/beans/train --report $out/$name > $out/$name.log 2>&1
  grep -E "accuracy|backend|Elapsed|Maximum resident" $out/$name.log >> $out/retrain-summary.log
  rm -rf $data
done
