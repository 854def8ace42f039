#!/usr/bin/env bash
# CI: docs/cluster/'s Slurm job array on a real Slurm. Installs Debian's slurm-wlm (22.05) and munge
# when absent, starts munged, slurmctld and slurmd for one CPU node on localhost with all their
# state in a fresh temporary folder, and runs a tiny study three ways:
#   1. unsharded, directly;
#   2. submit-slurm.sh: a 3-task array plus its afterok merge job → the same rows as 1;
#   3. the same, but one task is requeued while running (as Slurm does on preemption) and another
#      is cancelled mid-run and requeued by hand; both resume from their shard store → the same rows.
# The daemons are stopped by their pids on any exit; the folder is removed when the test passed
# (KEEP=1 keeps it). Needs root (slurmd runs jobs as their user) and target/release/mtrobust.
#
#   bash scripts/ci/slurm-test.sh          # about a minute on 2 cores
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${MTROBUST_BIN:-$ROOT/target/release/mtrobust}
SECONDS=0

say() { echo "slurm-test: $*" >&2; }
die() {
  say "FAIL: $*"
  exit 1
}

[ -x "$BIN" ] || die "$BIN is not built; run cargo build --release first (or set MTROBUST_BIN)"
BIN=$(realpath "$BIN")
[ "$(id -u)" = 0 ] || die "needs root: it installs slurm-wlm and runs slurmd"
if ! command -v slurmctld slurmd sbatch munged mungekey >/dev/null; then
  say "installing slurm-wlm and munge from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

T=$(mktemp -d /tmp/mtrobust-slurm.XXXXXX)
chmod 755 "$T" # munged refuses a socket in a folder that others cannot search
pids=()        # the daemons started here, in start order

# Cancels what is left of the jobs (they run under slurmd's step daemons), then stops the daemons
# in reverse order by pid, waiting for each.
cleanup() {
  local rc=$? p i
  set +e
  trap - INT TERM
  if [ ${#pids[@]} -ge 2 ]; then
    scancel --quiet $(squeue -h -o %A 2>/dev/null) 2>/dev/null
    for _ in $(seq 1 60); do
      [ -z "$(squeue -h 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    p=${pids[i]}
    kill "$p" 2>/dev/null
    for _ in $(seq 1 100); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.2
    done
    kill -0 "$p" 2>/dev/null && { say "pid $p ignored SIGTERM; killing it"; kill -9 "$p"; }
    wait "$p" 2>/dev/null
  done
  if [ "$rc" != 0 ]; then
    for f in "$T"/log/*.log "$T"/work/run*/*.log; do
      [ -f "$f" ] && { echo "--- $f (tail)"; tail -n 15 "$f"; }
    done >&2
    say "kept $T for inspection"
  elif [ -n "${KEEP:-}" ]; then
    say "kept $T"
  else
    rm -rf "$T"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- munge: a fresh key, a private socket ---------------------------------------------------------
mkdir -m 755 "$T/munge" "$T/log" "$T/ctld" "$T/d" "$T/work"
mungekey -c -k "$T/munge/munge.key"
munged -F --key-file="$T/munge/munge.key" --socket="$T/munge/munge.socket" --pid-file="$T/munge/munged.pid" \
  --log-file="$T/log/munged.log" --seed-file="$T/munge/seed" >"$T/log/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ -S "$T/munge/munge.socket" ] && break; sleep 0.2; done
[ -S "$T/munge/munge.socket" ] || die "munged did not start: $(cat "$T/log/munged.out")"

# --- one node on localhost, no cgroups, no accounting ----------------------------------------------
read -r ctld_port d_port < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
memory=$(awk '/MemAvailable/ {print int($2 / 1024 / 2)}' /proc/meminfo)
cat >"$T/slurm.conf" <<EOF
ClusterName=mtrobustci
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/munge.socket
StateSaveLocation=$T/ctld
SlurmdSpoolDir=$T/d
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$T/slurm.conf
slurmctld -D -f "$SLURM_CONF" >"$T/log/slurmctld.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 60); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.5; done
scontrol ping | grep -q UP || die "slurmctld did not come up"
slurmd -D -N localhost -f "$SLURM_CONF" >"$T/log/slurmd.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ] && break; sleep 0.5; done
[ "$(sinfo -h -n localhost -o %T)" = idle ] || die "the node is not idle: $(sinfo -h -N -o '%N %T %E')"
say "slurm $(sinfo -V | cut -d' ' -f2) up: one node of $(nproc) CPUs, state in $T (${SECONDS}s)"

# --- a tiny study: 2 untrained models × PGD-40 in 8 directions × 4 ε = 64 cells, ~0.3 s each ------
cd "$T/work"
"$BIN" -q --device cpu data synth --out data --n 24 --size 32 --seed 3 >/dev/null
"$BIN" -q --device cpu model init --tasks segm:10,normal,depth,keyp,edge --index 0 --seed 1 --out m/shared.safetensors >/dev/null
"$BIN" -q --device cpu model init --tasks segm:10,normal,depth,keyp,edge --index 4 --seed 2 --out m/independent.safetensors >/dev/null
cat >study.toml <<'EOF'
[data]
path = "data"
limit = 5
batch_size = 5

[[model]]
path = "m/*.safetensors"

[[attack]]
rule = "pgd"
directions = ["all"]
eps = [2, 4, 6, 8]
n_iter = 40
EOF
t=$SECONDS
"$BIN" -q --device cpu --threads 1 study run study.toml --db unsharded.sqlite
say "unsharded run: $((SECONDS - t))s"

# The shards run on one thread each, as the unsharded run, so that their numbers are identical.
export MTROBUST_BIN=$BIN MTROBUST_DEVICE=cpu
submit() {
  MTROBUST_SHARDS_DIR=$1 MTROBUST_RESULTS=$1/results.sqlite "$ROOT/docs/cluster/submit-slurm.sh" 3 study.toml --cpus-per-task=1 >"$1.ids"
  cat "$1.ids" >&2
  array=$(awk '/^array job/ {sub(":", "", $3); print $3}' "$1.ids")
  merge=$(awk '/^merge job/ {sub(":", "", $3); print $3}' "$1.ids")
  [ -n "$array" ] && [ -n "$merge" ] || die "submit-slurm.sh printed no job ids"
}
state() { { scontrol -o show job "$1" 2>/dev/null || true; } | grep -o 'JobState=[A-Z_]*' | head -n 1 | cut -d= -f2 || true; }
# Waits until job $1 is in state $2 (a regular expression), failing on a final state other than
# that (but $3, when given) or on a dependency that stays unsatisfiable.
wait_state() {
  local s never=0
  for _ in $(seq 1 600); do
    s=$(state "$1")
    [[ $s =~ ^($2)$ ]] && return 0
    [[ -n ${3:-} && $s =~ ^($3)$ ]] && { sleep 0.5; continue; }
    case "$s" in FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | COMPLETED) break ;; esac
    if scontrol -o show job "$1" 2>/dev/null | grep -q 'Reason=DependencyNeverSatisfied'; then
      never=$((never + 1))
      [ $never -gt 20 ] && { s="PENDING, its dependency never satisfied"; break; }
    fi
    sleep 0.5
  done
  die "job $1 is $s, not $2: $(scontrol -o show job "$1")"
}
cells() { python3 -c 'import sqlite3, sys; print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True).execute("SELECT count(*) FROM cells").fetchone()[0])' "$1" 2>/dev/null || echo 0; }
same() { python3 "$ROOT/scripts/ci/same-rows.py" "$1" unsharded.sqlite || die "$1 differs from the unsharded run"; }

# --- 2. the array and its merge ------------------------------------------------------------------
t=$SECONDS
submit run1
wait_state "$merge" COMPLETED
for i in 1 2 3; do [ "$(state "${array}_$i")" = COMPLETED ] || die "task ${array}_$i is $(state "${array}_$i")"; done
same run1/results.sqlite
"$BIN" results list --db 'run1/shard-*.sqlite' --study study.toml | tee run1/list.txt >&2
grep -q 'total: 64 of 64 cells done, 0 missing' run1/list.txt || die "results list over the shards does not count 64 of 64 done"
say "array of 3 + merge: $((SECONDS - t))s, same rows as unsharded"

# --- 3. a task requeued while running, another cancelled mid-run and requeued --------------------
t=$SECONDS
submit run2
for _ in $(seq 1 600); do
  [ "$(cells run2/shard-1.sqlite)" -ge 2 ] && [ "$(cells run2/shard-2.sqlite)" -ge 2 ] && break
  sleep 0.2
done
owned() { "$BIN" -q study run study.toml --dry-run --shard "$1/3" | wc -l; }
# Mid-run: each store holds some but not all of its shard's cells.
mid_run() {
  [ "$2" -ge 1 ] && [ "$2" -lt "$(owned "$1")" ] || die "task $1 was stopped with $2 of its $(owned "$1") cells stored: not mid-run"
  say "task ${array}_$1 stopped mid-run with $2 of its $(owned "$1") cells stored"
}
scontrol requeue "${array}_1" # what Slurm does to a preempted task of a --requeue job
scancel "${array}_2"
wait_state "${array}_2" CANCELLED
scontrol requeue "${array}_2"
# A requeued job waits two minutes before it may start again; skip that wait.
for i in 1 2; do
  wait_state "${array}_$i" PENDING 'CANCELLED|COMPLETING|REQUEUED|REQUEUE_HOLD|REQUEUE_FED|RUNNING'
  mid_run "$i" "$(cells "run2/shard-$i.sqlite")"
  scontrol update JobId="${array}_$i" StartTime=now
done
# The run's state while shard 3 is still writing its store: read-only, per shard and in total.
"$BIN" results list --db 'run2/shard-*.sqlite' --study study.toml --shards 3 | tee run2/list.txt >&2
[ "$(grep -c '^  shard [123]/3: [0-9]* of [0-9]* cells done' run2/list.txt)" = 3 ] && grep -q '^total: ' run2/list.txt ||
  die "results list over the running shards printed no per-shard and total lines"
# Slurm counts a dependency on a cancelled task as failed for good, even after the task is requeued:
# point the merge at the tasks again (docs/SCALE-OUT.md says so).
scontrol update JobId="$merge" Dependency="afterok:${array}_1:${array}_2:${array}_3"
wait_state "$merge" COMPLETED
for i in 1 2; do
  log=run2/mtrobust-study-${array}_$i.log
  grep -q "^shard $i/3 .*, start 2$" "$log" || die "$log: task $i did not start a second time"
  resumed=$(grep -o '[0-9]* stored already' "$log" | tail -n 1 | cut -d' ' -f1)
  [ "${resumed:-0}" -ge 1 ] || die "$log: the second start did not resume from the shard store"
  say "task ${array}_$i: second start resumed with $resumed cells stored already"
done
same run2/results.sqlite
say "requeue + cancel/requeue + merge: $((SECONDS - t))s, same rows as unsharded"
say "passed in ${SECONDS}s"
