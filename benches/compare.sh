#!/usr/bin/env bash
# crossadapt vs PyTorch on the same DeepFM, shapes and threads, measured in one run on one machine.
# Needs torch: python3 -m pip install torch (the CPU part is all this uses)
#   bash benches/compare.sh            one round
#   ROUNDS=4 bash benches/compare.sh   four alternating rounds
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"
ARGS=(--emb 16 --hidden 400x400x400 --batch 4096 --fields 26 --threads "$THREADS" --steps "${STEPS:-20}")
cargo build --quiet
rate() { grep -oE 'samples_per_sec=[0-9.]+' "$1" | head -1 | cut -d= -f2; }
for round in $(seq "${ROUNDS:-1}"); do
  echo "round $round"
  cargo run --quiet -- bench train --model deepfm "${ARGS[@]}" | tee /tmp/crossadapt-bench.txt
  python3 benches/pytorch_deepfm.py "${ARGS[@]}" 2>/dev/null | tee /tmp/pytorch-bench.txt
  ours=$(rate /tmp/crossadapt-bench.txt)
  theirs=$(rate /tmp/pytorch-bench.txt)
  python3 -c "print(f'crossadapt / pytorch = {float(\"$ours\") / float(\"$theirs\"):.2f}')"
done
