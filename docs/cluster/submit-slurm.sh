#!/usr/bin/env bash
# Submits a study as a Slurm job array of N shards (slurm-array.sh, beside this file) and a merge
# job that starts when every array task succeeded (afterok), and prints both job ids.
#
#   docs/cluster/submit-slurm.sh N STUDY.toml [sbatch options for the array tasks…]
#   docs/cluster/submit-slurm.sh 8 study.toml --gres=gpu:1 --cpus-per-task=8 --mem=32G
#
# The options after STUDY.toml go to the array tasks only (the merge needs no GPU); options for both,
# such as the partition or account, go in sbatch's own environment variables (SBATCH_PARTITION,
# SBATCH_ACCOUNT). Environment, passed on to the jobs:
#   MTROBUST_BIN         the mtrobust binary (default: `mtrobust` on PATH)
#   MTROBUST_DEVICE      auto (default), cpu, cuda, cuda:N
#   MTROBUST_SHARDS_DIR  the shard stores and the logs (default runs/shards)
#   MTROBUST_RESULTS     the merged store (default results.sqlite)
# Progress while it runs: mtrobust results list --db 'runs/shards/*.sqlite' --study STUDY.toml
set -euo pipefail

usage="usage: $0 N STUDY.toml [sbatch options for the array tasks…]"
N=${1:?$usage}
STUDY=${2:?$usage}
shift 2
case "$N" in '' | *[!0-9]* | 0) echo "error: N must be a positive number of shards, not \`$N\`; $usage" >&2; exit 2 ;; esac
[ -f "$STUDY" ] || { echo "error: $STUDY: no such study file" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
DIR=${MTROBUST_SHARDS_DIR:-runs/shards}
OUT=${MTROBUST_RESULTS:-results.sqlite}
BIN=${MTROBUST_BIN:-$(command -v mtrobust || true)}
if [ -z "$BIN" ]; then
  echo "error: no mtrobust on PATH; put it there or set MTROBUST_BIN" >&2
  exit 2
elif [ ! -x "$BIN" ]; then
  echo "error: MTROBUST_BIN=$BIN is not an executable file" >&2
  exit 2
fi
# The jobs get the submitter's environment, so they find the same binary and folders.
export MTROBUST_BIN=$BIN MTROBUST_SHARDS_DIR=$DIR
mkdir -p "$DIR"

array=$(sbatch --parsable --array="1-$N" --output="$DIR/%x-%A_%a.log" "$@" "$here/slurm-array.sh" "$STUDY" "$N")
array=${array%%;*}

# The shards by name, not a glob: stores of an earlier run with more shards are not merged in.
# The merge waits on each task by id rather than on the array as a whole: Slurm 22.05 counts an
# array that had a task cancelled as failed for good, even after that task is requeued and succeeds.
shards=() after=afterok
for i in $(seq 1 "$N"); do
  shards+=("$DIR/shard-$i.sqlite")
  after+=":${array}_$i"
done
merge=$(sbatch --parsable --job-name=mtrobust-merge --dependency="$after" --output="$DIR/%x-%j.log" <<EOF
#!/usr/bin/env bash
exec $(printf '%q ' "$BIN" results merge "$OUT" "${shards[@]}")
EOF
)
merge=${merge%%;*}
echo "array job $array: shards 1-$N of $STUDY into $DIR/shard-i.sqlite"
echo "merge job $merge: after every shard succeeded (afterok on each of ${array}_1-$N), into $OUT"
