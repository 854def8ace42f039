#!/usr/bin/env bash
# Runs an mtrobust study as a Slurm job array: one shard per array task, one GPU each, then one
# merge job that combines the shard stores into results.sqlite.
#
#   mkdir -p runs/shards && sbatch --array=1-8 docs/cluster/slurm-array.sh study.toml   # 8 shards
#   # after they finish (or chain it: see the bottom of this file)
#   mtrobust results merge results.sqlite runs/shards/shard-*.sqlite
#
# A shard that is killed (time limit, preemption, node failure) is simply resubmitted: the same
# command skips the cells its store already holds. Slurm sends SIGTERM before SIGKILL; a study
# loses at most the cell in progress either way, since every cell is committed when complete.
#SBATCH --job-name=mtrobust-study
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --output=runs/shards/%x-%A_%a.log
set -euo pipefail

STUDY=${1:?usage: sbatch --array=1-N slurm-array.sh STUDY.toml}
N=${SLURM_ARRAY_TASK_COUNT:?run this with sbatch --array=1-N}
I=${SLURM_ARRAY_TASK_ID:?run this with sbatch --array=1-N}
mkdir -p runs/shards

# Each shard writes its own store: no shared-filesystem locking between nodes is needed.
mtrobust --device cuda study run "$STUDY" --db "runs/shards/shard-$I.sqlite" --shard "$I/$N"

# To merge automatically once every shard succeeded, submit the array and then:
#   sbatch --dependency=afterok:<ARRAY_JOB_ID> --wrap \
#     'mtrobust results merge results.sqlite runs/shards/shard-*.sqlite'
