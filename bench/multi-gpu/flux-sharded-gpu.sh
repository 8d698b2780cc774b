#!/usr/bin/env bash
# flux-dev-2x4 (full FLUX.1-dev width, seeded random bf16 weights) on one GPU, for the multi-GPU
# runtime: (1) the single-GPU plan's graph step without and with the NCCL path (a world of one),
# alternating, medians of N replays; (2) the Ulysses-2 and ring-2 plans run with their ranks in
# this process (InProcessCudaRanks, eager) against the single-GPU plan on the same inputs (rel L2
# of bf16 plans that round differently). Prepare here: bash scripts/pack-gpu.sh; node
# bench/flux/build.mjs; copy flux-dev-2x4 to .gpu-work/fixtures/. Carry [".gpu", ".gpu-work/flux",
# ".gpu-work/fixtures"].
set -u -o pipefail
. .gpu/setup.sh
N=${STEPS:-20}
MODEL=${MODEL:-.gpu-work/fixtures/flux-dev-2x4}
out=${OUT:-/tmp/paradit-flux-cp}
W=${WORK:-/tmp/paradit-flux-cp-work}
mkdir -p "$out" "$W"
L="$out/flux-cp.log"
P="node .gpu/paradit.cjs"
B="node .gpu-work/flux/bench-step.cjs"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$L"
$P compile "$MODEL" -o "$W/plan" --random-weights --dtype bf16 --no-progress 2>&1 | tee -a "$L"
$B inputs "$W/plan" "$W/inputs" 2>&1 | tee -a "$L"
$B nccl "$W/plan" "$W/inputs" --bench "$N" 2>>"$L" | tee "$out/nccl-overhead.json"
for m in "--ulysses 2" "--ring 2"; do
  tag=$(echo "$m" | tr -d ' -')
  $P compile "$MODEL" -o "$W/plan-$tag" --random-weights --dtype bf16 $m --no-progress 2>&1 | tee -a "$L"
  $B compare "$W/plan" "$W/plan-$tag" "$W/inputs" 2>>"$L" | tee "$out/compare-$tag.json"
  rm -rf "$W/plan-$tag"
done
