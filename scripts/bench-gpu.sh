#!/usr/bin/env bash
# Every GPU row of BENCHMARKS.md in one command, on an H200-class GPU (about 10 minutes):
#   bash scripts/bench-gpu.sh            # after `bash scripts/setup.sh && cargo build --release`
# Optional: NYUV2_MODEL=ckpt.safetensors NYUV2_DATA=/data/nyuv2 for the bf16-vs-fp32 ARP check on a
# trained ResNet34 layout. Results (tables and JSON) go to $OUT (default runs/bench-gpu).
# Smoke test of the script itself on a CPU: DEVICE=cpu BACKBONE=small SIZE=32 N=8 bash scripts/bench-gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${MTROBUST:-target/release/mtrobust}
OUT=${OUT:-runs/bench-gpu}
mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}
BACKBONE=${BACKBONE:-resnet34}
SIZE=${SIZE:-321}
N=${N:-64}
M=(--device "$DEVICE" --backbone "$BACKBONE" --tasks nyuv2 --index 9 --size "$SIZE")
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt" || true

# 1. Floor and every rule × direction, batch 16, each precision with and without channels-last.
for p in fp32 tf32 bf16; do
  for cl in off on; do
    log "bench ${M[*]} --batch-size 16 --precision $p --channels-last $cl"
    "$BIN" bench "${M[@]}" --batch-size 16 --precision "$p" --channels-last "$cl" \
      --direction total,sign-total,gbmta,single:segment_semantic --format json > "$OUT/bench-$p-cl-$cl.json"
    "$BIN" bench "${M[@]}" --batch-size 16 --precision "$p" --channels-last "$cl" --attack pgd,apgd \
      --direction total,sign-total,gbmta | tee -a "$OUT/summary.txt"
  done
done

# 2. --batch-size auto (bf16, channels-last): the largest batch that fits, and its throughput.
if [ "$DEVICE" != cpu ]; then
  log "bench ${M[*]} --batch-size auto --precision bf16 --attack pgd --direction gbmta"
  "$BIN" bench "${M[@]}" --batch-size auto --precision bf16 --attack pgd --direction gbmta | tee -a "$OUT/summary.txt"
fi

# 3. A whole cell (clean pass, PGD-10 GB-MTA, metrics, ARP, the report) against its attack's
#    iteration throughput: 64 rendered scenes at 321², the layout #9 network (random weights:
#    speed does not depend on them), batch 16.
if [ ! -d "$OUT/synth" ]; then
  "$BIN" -q --device "$DEVICE" data synth --out "$OUT/synth" --n $((N + N / 4)) --size "$SIZE" --test-fraction 0.8
fi
"$BIN" -q --device "$DEVICE" model init --backbone "$BACKBONE" --tasks segm:10,normal,depth --index 9 --out "$OUT/model-9.safetensors" --force
for p in fp32 bf16; do
  log "attack (whole cell) --precision $p: PGD-10 GB-MTA on $N images at $SIZE², batch 16"
  "$BIN" -q attack --device "$DEVICE" --model "$OUT/model-9.safetensors" --data "$OUT/synth" --limit "$N" --batch-size 16 \
    --attack pgd --direction gbmta --eps 8 --n-iter 10 --precision "$p" --format json --out "$OUT/cell-$p" --force > "$OUT/cell-$p.json" || true
  python3 - "$OUT/cell-$p.json" <<'PY' | tee -a "$OUT/summary.txt" || true
import json, sys
r = json.load(open(sys.argv[1]))
n = r["evaluation"]["attacked"][0]["samples"]
print(f"whole cell: {n} images × 10 iterations in {r['seconds']:.2f} s = {n * 10 / r['seconds']:.1f} images·iterations/s")
PY
done

# 4. Optional: bf16 against fp32 ARP on a trained ResNet34 layout (must stay within 0.5 points).
if [ -n "${NYUV2_MODEL:-}" ] && [ -n "${NYUV2_DATA:-}" ]; then
  for p in fp32 bf16; do
    log "ARP check --precision $p on $NYUV2_MODEL"
    "$BIN" -q attack --device "$DEVICE" --model "$NYUV2_MODEL" --data "$NYUV2_DATA" --attack pgd --direction all --eps 8 --n-iter 10 \
      --precision "$p" --format json --out "$OUT/arp-$p" --force > "$OUT/arp-$p.json" || true
  done
  python3 - "$OUT/arp-fp32.json" "$OUT/arp-bf16.json" <<'PY' | tee -a "$OUT/summary.txt" || true
import json, sys
a, b = (json.load(open(p))["evaluation"]["attacked"] for p in sys.argv[1:])
for x, y in zip(a, b):
    print(f"{x['label']}: fp32 {x['arp']['arp']:.2f}  bf16 {y['arp']['arp']:.2f}  Δ {y['arp']['arp'] - x['arp']['arp']:+.2f}")
PY
fi
echo "summary: $OUT/summary.txt"
