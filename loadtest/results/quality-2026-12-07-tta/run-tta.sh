#!/usr/bin/env bash
# Test-time augmentation under 5-fold CV: for each mode in TTA ("flip", "flipfeat", "views"),
# the recipe's run.sh with SPRIG_EXP_TTA set (the experiment build) into OUT/<mode>/.
here=$(cd $(dirname $0) && pwd)
for mode in $TTA; do
  mkdir -p $here/$mode
  SPRIG_EXP_TTA=$mode OUT=$here/$mode $here/../quality-2026-12-06-recipe/run.sh
done
