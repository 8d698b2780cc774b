#!/usr/bin/env bash
# A/B of two CLI bundles on flux-dev-2x4 (bf16, seeded random weights) on one GPU, plus the
# per-instruction profile of B's plan. For a compiler change: A = the bundle before it (copy
# .gpu/paradit.cjs somewhere before re-packing), B = .gpu/paradit.cjs.
#   bash bench/flux/ab-profile.sh A_BUNDLE [B_BUNDLE]
# Steps: compile both plans; seeded inputs; `paradit run --bench 20` alternating A, B, A, B (graph
# replays, CUDA events, median); bench-step.cjs compare B A (rel L2 of B's output against A's on
# the same inputs); bench-step.cjs profile of B (top instructions, eager sum vs graph replay).
# Carry: .gpu, .gpu-work/flux, the folder holding A, .gpu-work/fixtures/flux-dev-2x4.
# Output: $OUT/ab.log, $OUT/profile.json; the A/B lines are printed last.
set -u -o pipefail
. .gpu/setup.sh
A=${1:?usage: ab-profile.sh A_BUNDLE [B_BUNDLE]}
B=${2:-.gpu/paradit.cjs}
N=${STEPS:-20}
MODEL=${MODEL:-.gpu-work/fixtures/flux-dev-2x4}
out=${OUT:-/tmp/paradit-ab}
W=${WORK:-/tmp/paradit-ab-work}
mkdir -p "$out" "$W"
L="$out/ab.log"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader | tee -a "$L"
node "$A" compile "$MODEL" -o "$W/a" --random-weights --dtype bf16 --no-progress 2>&1 | tee -a "$L" || exit 1
node "$B" compile "$MODEL" -o "$W/b" --random-weights --dtype bf16 --no-progress 2>&1 | tee -a "$L" || exit 1
node .gpu-work/flux/bench-step.cjs inputs "$W/b" "$W/in" 2>&1 | tee -a "$L"
res=()
for pass in 1 2; do
  for side in a b; do
    bundle=$A; [ $side = b ] && bundle=$B
    node "$bundle" run "$W/$side" --inputs "$W/in" --bench "$N" --backend cuda --no-verify-weights --json >"$W/run-$side.json" 2>>"$L"
    ms=$(node -e 'const s=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n");const j=JSON.parse(s[s.length-1]);console.log(j.bench.medianMs.toFixed(3))' "$W/run-$side.json")
    echo "pass $pass $side: $ms ms" | tee -a "$L"
    res+=("$side=$ms")
  done
done
node .gpu-work/flux/bench-step.cjs compare "$W/b" "$W/a" "$W/in" 2>&1 | tee -a "$L"
node .gpu-work/flux/bench-step.cjs profile "$W/b" "$W/in" --steps 10 --top 30 --json "$out/profile.json" 2>&1 | tee -a "$L"
rm -rf "$W/a" "$W/b"
echo "A/B step medians (ms, $N graph replays each, A then B, twice): ${res[*]}" | tee -a "$L"
