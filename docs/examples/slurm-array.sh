#!/bin/bash
# Four what-if sessions of crossadapt as one Slurm job array: one headless session per task,
# each with its own sampling ratio, all in one sessions folder on shared storage.
#
#   sbatch docs/examples/slurm-array.sh
#   crossadapt list                      # from a login node, with the same CROSSADAPT_SESSIONS_DIR
#   crossadapt attach ID                 # watch / steer one of them
#   crossadapt compare ID1 ID2 ID3 ID4   # side by side
#
# See docs/operations.md.
#SBATCH --job-name=crossadapt-whatif
#SBATCH --array=0-3
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
# Slurm sends SIGTERM at the time limit; ask for it 5 minutes early so the engine reaches its
# next safe point and checkpoints (the session is then resumable with `crossadapt resume ID`).
#SBATCH --signal=TERM@300
#SBATCH --output=crossadapt-%A_%a.out
set -euo pipefail

# The sessions root, on storage every node and the login node see.
export CROSSADAPT_SESSIONS_DIR=${CROSSADAPT_SESSIONS_DIR:-/shared/crossadapt/sessions}

RATIOS=(0.05 0.1 0.2 0.4)
RATIO=${RATIOS[$SLURM_ARRAY_TASK_ID]}

# `exec` so the signals Slurm sends reach crossadapt itself.
exec crossadapt run --headless \
    --name "sampling ${RATIO} (job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID})" \
    --set method.sampling_ratio="${RATIO}" \
    --set threads="${SLURM_CPUS_PER_TASK}"
