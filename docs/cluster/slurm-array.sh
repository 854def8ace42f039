#!/usr/bin/env bash
# Runs an mtrobust study as a Slurm job array: array task i runs shard i of N into its own store,
# runs/shards/shard-i.sqlite. The same script serves GPU and CPU partitions: it asks Slurm for no
# resources itself, so give them on the command line, and it picks the device from the environment.
#
#   docs/cluster/submit-slurm.sh 8 study.toml --gres=gpu:1 --cpus-per-task=8 --mem=32G --time=24:00:00
#
# submits the array and a merge job that waits for it (afterok) and writes results.sqlite. By hand:
#
#   mkdir -p runs/shards
#   sbatch --array=1-8 --gres=gpu:1 --cpus-per-task=8 docs/cluster/slurm-array.sh study.toml 8
#   mtrobust results merge results.sqlite runs/shards/shard-{1..8}.sqlite     # once all succeeded
#
# Environment (sbatch passes the submitter's environment on to the job):
#   MTROBUST_DEVICE      auto (default: CUDA when the task has a GPU, else CPU), cpu, cuda, cuda:N
#   MTROBUST_BIN         the mtrobust binary (default: `mtrobust` on PATH)
#   MTROBUST_SHARDS_DIR  where the shard stores go (default runs/shards; the log's folder is sbatch's
#                        --output, which must exist before the job starts)
#
# A task that is preempted, hits a node failure or is cancelled and then requeued
# (`scontrol requeue JOBID_i`) runs this same command again, which skips the cells its store
# already holds: at most the cell in progress is lost, since each cell is committed when complete.
# To rerun one task as a new job, name the shard count, which a one-task array cannot know:
#   sbatch --array=3 docs/cluster/slurm-array.sh study.toml 8
#SBATCH --job-name=mtrobust-study
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=runs/shards/%x-%A_%a.log
set -euo pipefail

usage="usage: sbatch --array=1-N slurm-array.sh STUDY.toml [N]"
STUDY=${1:?$usage}
I=${SLURM_ARRAY_TASK_ID:?not an array task; $usage}
N=${2:-${SLURM_ARRAY_TASK_COUNT:?$usage}}
DIR=${MTROBUST_SHARDS_DIR:-runs/shards}
DEVICE=${MTROBUST_DEVICE:-auto}
BIN=${MTROBUST_BIN:-$(command -v mtrobust || true)}
if [ -z "$BIN" ]; then
  echo "error: no mtrobust on PATH ($PATH); put it there or set MTROBUST_BIN" >&2
  exit 2
elif [ ! -x "$BIN" ]; then
  echo "error: MTROBUST_BIN=$BIN is not an executable file" >&2
  exit 2
fi
# libtorch's threads follow the CPUs Slurm gave the task (without --cpus-per-task: the node's cores).
threads=()
if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then threads=(--threads "$SLURM_CPUS_PER_TASK"); fi

mkdir -p "$DIR"
echo "shard $I/$N of $STUDY on $(hostname), device $DEVICE, start $((${SLURM_RESTART_COUNT:-0} + 1))"
# Each shard writes its own store: no shared-filesystem locking between nodes is needed.
exec "$BIN" --device "$DEVICE" "${threads[@]}" study run "$STUDY" --db "$DIR/shard-$I.sqlite" --shard "$I/$N"
