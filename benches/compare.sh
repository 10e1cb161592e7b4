#!/usr/bin/env bash
# crossadapt against its PyTorch twin (benches/pytorch_zoo.py: same model, shapes, optimisers,
# threads, warm-up and timed steps), PyTorch run twice: as shipped, and with
# torch.set_flush_denormal(True) (crossadapt always flushes denormals, src/fpenv.rs), so the
# comparison is fair both ways. Rounds alternate the order of the three runs, and every ratio
# is taken within one round: on a shared or throttling machine, speeds drift between rounds.
# Needs torch (the CPU part is all this uses).
#   bash benches/compare.sh                          DeepFM, one round, 200 steps
#   ROUNDS=3 MODELS="mlp widedeep deepfm" bash benches/compare.sh
#   STEPS=60 WARMUP=10 MODELS=xdeepfm bash benches/compare.sh
# Every run prints its steady-state samples/s (second half of the steps), the first and last
# steps' times and the CPU; the summary gives each model's median over the rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-1}"
MODELS="${MODELS:-deepfm}"
ARGS=(--batch "${BATCH:-4096}" --fields "${FIELDS:-26}" --threads "$THREADS"
  --steps "${STEPS:-200}" --warmup "${WARMUP:-5}")
cargo build --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/crossadapt"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
rate() { grep -oE 'steady_samples_per_sec=[0-9.]+' "$1" | head -1 | cut -d= -f2; }
ours() { "$bin" bench train --model "$1" "${ARGS[@]}"; }
torch_off() { python3 benches/pytorch_zoo.py --model "$1" "${ARGS[@]}" 2>/dev/null; }
torch_on() { python3 benches/pytorch_zoo.py --model "$1" "${ARGS[@]}" --flush-denormal 2>/dev/null; }
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)," \
  "$(nproc) cores, $(python3 -c 'import torch; print("torch", torch.__version__)')"
for round in $(seq "$ROUNDS"); do
  for m in $MODELS; do
    # Odd rounds start with crossadapt, even rounds with PyTorch.
    if ((round % 2)); then order="ours torch_off torch_on"; else order="torch_on torch_off ours"; fi
    for who in $order; do
      "$who" "$m" | tee "$out/$m.$round.$who"
    done
    awk -v m="$m" -v r="$round" -v a="$(rate "$out/$m.$round.ours")" \
      -v b="$(rate "$out/$m.$round.torch_off")" -v c="$(rate "$out/$m.$round.torch_on")" \
      'BEGIN { printf "round %d %s: crossadapt / pytorch = %.2f, / pytorch+flush_denormal = %.2f\n", r, m, a / b, a / c }' \
      | tee "$out/$m.$round.ratio"
  done
done
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "| model | crossadapt samples/s | PyTorch | PyTorch + flush_denormal | crossadapt / PyTorch | / PyTorch + flush |"
echo "|---|---:|---:|---:|---:|---:|"
for m in $MODELS; do
  col() { for r in $(seq "$ROUNDS"); do rate "$out/$m.$r.$1"; done | median; }
  ratio() { for r in $(seq "$ROUNDS"); do grep -oE '= [0-9.]+' "$out/$m.$r.ratio" | sed -n "$1p" | cut -c3-; done | median; }
  echo "| $m | $(col ours) | $(col torch_off) | $(col torch_on) | $(ratio 1) | $(ratio 2) |"
done
echo "(medians over $ROUNDS round(s); steady state = second half of ${STEPS:-200} steps after ${WARMUP:-5} warm-up, batch ${BATCH:-4096}, ${FIELDS:-26} fields, $THREADS threads)"
