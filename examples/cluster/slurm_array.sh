#!/usr/bin/env bash
# A Slurm job array of `vlmcli ocr`: 256 shards of one folder, at most 32 running at once, all writing into one
# output folder on the shared file system. Each task reads its shard from SLURM_ARRAY_TASK_ID and
# SLURM_ARRAY_TASK_COUNT (no --shard needed), skips pages any earlier run or shard finished (--resume), and keeps
# its own manifest and failure report (OUT/.vlmcli-manifest.K-of-256.jsonl, OUT/vlmcli-failures.K-of-256.jsonl).
#
#   sbatch examples/cluster/slurm_array.sh /shared/scans /shared/ocr-out
#   vlmcli status /shared/ocr-out          # pages done / failed / pending, over all shards
#   sbatch --array=17,42 examples/cluster/slurm_array.sh ...   # rerun tasks that died (sacct -j JOB -s F,TO,NF)
#
# Tasks are idempotent: a requeued or resubmitted task rereads only its unfinished pages. Exit 10 means some
# pages failed (listed in the task's failure report); 3-9 are errors that a retry will not fix.
#SBATCH --job-name=vlmcli-ocr
#SBATCH --array=0-255%32
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --output=logs/ocr-%A_%a.err
#SBATCH --requeue
set -euo pipefail

inputs=${1:?usage: sbatch slurm_array.sh INPUT_DIR OUTPUT_DIR}
out=${2:?usage: sbatch slurm_array.sh INPUT_DIR OUTPUT_DIR}

# The model from a local copy every node sees (no hub traffic from 256 tasks); pin a revision if from the hub.
export VLMCLI_MODEL=${VLMCLI_MODEL:-/shared/models/SmolVLM-256M-Instruct}

srun vlmcli ocr "$inputs" -o "$out" --resume --offline --batch-size 16 -f json
