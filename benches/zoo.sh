#!/usr/bin/env bash
# The model-zoo table of the README: every architecture, default spec, trained on synthetic days
# 0..8 (20,000 rows a day) and evaluated on day 8. Prints a Markdown table.
#   bash benches/zoo.sh            (extra flags go to `crossadapt train`, e.g. --emb-lr 0.02)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/crossadapt"
echo "| model | spec | params | AUC | LogLoss | bias | train s | samples/s |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for m in lr mlp widedeep deepfm dcn dcnv2 xdeepfm autoint fibinet finalmlp; do
  line=$("$bin" train --model "$m" --days 0..8 --eval-day 8 "$@" | grep '^model=')
  get() { grep -oE "(^| )$1=[^ ]+" <<<"$line" | head -1 | cut -d= -f2-; }
  echo "| $m | \`$(get model)\` | $(get params) | $(get auc) | $(get logloss) | $(get bias) | $(get seconds) | $(get samples_per_sec) |"
done
