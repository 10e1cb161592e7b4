#!/usr/bin/env bash
# crossadapt vs PyTorch on the same DeepFM, shapes and threads, measured in one run on one machine.
# Needs torch: python3 -m pip install torch (the CPU part is all this uses)
set -euo pipefail
cd "$(dirname "$0")/.."
ARGS=(--emb 16 --hidden 400x400x400 --batch 4096 --fields 26 --threads "${THREADS:-2}" --steps "${STEPS:-20}")
cargo run --quiet -- bench train --model deepfm "${ARGS[@]}" | tee /tmp/crossadapt-bench.txt
python3 benches/pytorch_deepfm.py "${ARGS[@]}" | tee /tmp/pytorch-bench.txt
rate() { grep -oE 'samples_per_sec=[0-9.]+' "$1" | head -1 | cut -d= -f2; }
ours=$(rate /tmp/crossadapt-bench.txt)
theirs=$(rate /tmp/pytorch-bench.txt)
python3 -c "print(f'crossadapt / pytorch = {float(\"$ours\") / float(\"$theirs\"):.2f}')"
