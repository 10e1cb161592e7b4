#!/usr/bin/env bash
# crossadapt vs PyTorch on the same DeepFM, shapes and threads, measured in one run on one machine.
# Needs torch: python3 -m pip install torch (the CPU part is all this uses)
#   bash benches/compare.sh                        candle's own matmul
#   FEATURES=openblas bash benches/compare.sh      linear layers through the system OpenBLAS
#                                                  (apt-get install libopenblas-dev)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"
ARGS=(--emb 16 --hidden 400x400x400 --batch 4096 --fields 26 --threads "$THREADS" --steps "${STEPS:-20}")
FEATURE_ARGS=()
if [[ -n "${FEATURES:-}" ]]; then FEATURE_ARGS=(--features "$FEATURES"); fi
# OpenBLAS starts one thread per core unless told; give it the benchmark's count.
OPENBLAS_NUM_THREADS="$THREADS" cargo run --quiet "${FEATURE_ARGS[@]}" -- bench train --model deepfm "${ARGS[@]}" | tee /tmp/crossadapt-bench.txt
python3 benches/pytorch_deepfm.py "${ARGS[@]}" | tee /tmp/pytorch-bench.txt
rate() { grep -oE 'samples_per_sec=[0-9.]+' "$1" | head -1 | cut -d= -f2; }
ours=$(rate /tmp/crossadapt-bench.txt)
theirs=$(rate /tmp/pytorch-bench.txt)
python3 -c "print(f'crossadapt / pytorch = {float(\"$ours\") / float(\"$theirs\"):.2f}')"
