#!/usr/bin/env bash
# Runs the Kubernetes Indexed Job's own command lines (docs/cluster/k8s-indexed-job.yaml) in the
# image, as three pods would: JOB_COMPLETION_INDEX=0,1,2 with SHARDS=3 into a bind-mounted
# /results, then the merge Job's command, and checks that the merged store holds the same rows as
# one unsharded run in the same image (scripts/ci/same-rows.py). Not part of CI (it needs the image).
#
#   bash scripts/container-test.sh [IMAGE]          # default mtrobust:0.1
#
# ENGINE picks the container command (default podman); RUN_FLAGS are added to every `run` (on a
# host without CAP_SYS_RESOURCE and with hybrid cgroups: ENGINE='podman --runtime runc'
# RUN_FLAGS='--ulimit nofile=20000:20000 --ulimit nproc=4096:4096').
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
IMAGE=${1:-mtrobust:0.1}
read -r -a engine <<<"${ENGINE:-podman}"
read -r -a flags <<<"${RUN_FLAGS:-}"
SECONDS=0
say() { echo "container-test: $*" >&2; }

T=$(mktemp -d /tmp/mtrobust-container.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/config" "$T/results" "$T/data"

# The pod's command lines, as the manifest writes them (a folded scalar: lines joined by spaces).
manifest=docs/cluster/k8s-indexed-job.yaml
shard_cmd=$(awk '/- >-/ {on = 1; next} on && /^ *env:/ {exit} on {sub(/^ +/, ""); printf "%s ", $0}' "$manifest")
merge_cmd=$(sed -n 's/.*command: \["\/bin\/sh", "-c", "\(mtrobust results merge[^"]*\)"\].*/\1/p' "$manifest")
[ -n "$shard_cmd" ] && [ -n "$merge_cmd" ] || { say "could not read the command lines from $manifest"; exit 1; }
say "shard command: $shard_cmd"
say "merge command: $merge_cmd"

# One thread everywhere, so that shards and the unsharded run compute identical numbers.
run() {
  "${engine[@]}" run --rm "${flags[@]}" -e OMP_NUM_THREADS=1 -e MTROBUST_DEVICE=cpu \
    -v "$T/config:/config:ro" -v "$T/results:/results" -v "$T/data:/data" "$@"
}

# The tiny study of scripts/ci/slurm-test.sh, with its data and models on the /data volume.
run "$IMAGE" /bin/sh -c '
  mtrobust -q data synth --out /data/synth --n 24 --size 32 --seed 3 >/dev/null
  mtrobust -q model init --tasks segm:10,normal,depth,keyp,edge --index 0 --seed 1 --out /data/m/shared.safetensors >/dev/null
  mtrobust -q model init --tasks segm:10,normal,depth,keyp,edge --index 4 --seed 2 --out /data/m/independent.safetensors >/dev/null'
cat >"$T/config/study.toml" <<'EOF'
[data]
path = "/data/synth"
limit = 5
batch_size = 5

[[model]]
path = "/data/m/*.safetensors"

[[attack]]
rule = "pgd"
directions = ["all"]
eps = [2, 4, 6, 8]
n_iter = 40
EOF

t=$SECONDS
run "$IMAGE" mtrobust -q --device cpu study run /config/study.toml --db /results/unsharded.sqlite
say "unsharded run in the container: $((SECONDS - t)) s"
t=$SECONDS
for k in 0 1 2; do
  run -e JOB_COMPLETION_INDEX=$k -e SHARDS=3 "$IMAGE" /bin/sh -c "$shard_cmd"
done
run "$IMAGE" /bin/sh -c "$merge_cmd"
say "3 shards + merge in the container: $((SECONDS - t)) s"
python3 "$ROOT/scripts/ci/same-rows.py" "$T/results/results.sqlite" "$T/results/unsharded.sqlite"
say "passed in ${SECONDS} s"
