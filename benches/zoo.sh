#!/usr/bin/env bash
# The model-zoo table of the README: every architecture with its default spec, trained for one
# pass over synthetic days 0..8 (20,000 rows a day) of the built-in stream.
#
# Each model gets the same small grid of embedding optimisers (GRID below); the setting with the
# best AUC on day 8 (validation) is kept and its AUC on day 9 (test, never used for choosing) is
# reported, so no model, LR included, is compared at a rate that suits another one.
#   bash benches/zoo.sh                 (extra flags go to `crossadapt train`, e.g. --seed 8)
#   GRID="adam:0.02" bash benches/zoo.sh   (one setting: a quick run)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/crossadapt"
grid="${GRID:-adam:0.02 adam:0.05 adagrad:0.05 adagrad:0.2}"
models="${MODELS:-lr mlp widedeep deepfm dcn dcnv2 xdeepfm autoint fibinet finalmlp}"
echo "| model | spec | params | embedding optimiser | valid AUC (day 8) | AUC (day 9) | LogLoss | bias | train s | samples/s |"
echo "|---|---|---:|---|---:|---:|---:|---:|---:|---:|"
for m in $models; do
  best="" best_valid=-1
  for g in $grid; do
    line=$("$bin" train --model "$m" --days 0..8 --valid-day 8 --eval-day 9 \
      --emb-optimizer "${g%%:*}" --emb-lr "${g##*:}" "$@" | grep '^model=')
    valid=$(grep -oE 'valid_auc=[^ ]+' <<<"$line" | cut -d= -f2)
    if [[ "$valid" != "n/a" ]] && awk -v a="$valid" -v b="$best_valid" 'BEGIN { exit !(a > b) }'; then
      best="$line" best_valid="$valid" best_g="$g"
    fi
  done
  get() { grep -oE "(^| )$1=[^ ]+" <<<"$best" | head -1 | cut -d= -f2-; }
  echo "| $m | \`$(get model)\` | $(get params) | ${best_g/:/ } | $(get valid_auc) | $(get auc) | $(get logloss) | $(get bias) | $(get seconds) | $(get samples_per_sec) |"
done
