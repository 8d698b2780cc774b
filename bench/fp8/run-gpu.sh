#!/usr/bin/env bash
# fp8 plans on one GPU, for the next GPU session. UNVERIFIED: written in a session without a GPU
# (docs/fp8.md says what is and is not known). In one command:
#   1. every fixture with test data: `check --backend cuda --dtype fp8` (tolerance 0.1, docs/fp8.md),
#      with the bf16 check beside it;
#   2. flux-dev-2x4 (seeded random weights): bf16 plan and fp8 plan, each `run --bench N --backend
#      cuda` (median of N graph replays after warm-up), and torch eager bf16 in the same call;
#   3. the 4608x3072x12288 FP8 GEMM (gemm-fp8.cjs: TFLOP/s, bf16 beside it, sampled correctness);
#   4. the quality report (quality.cjs): 28-step denoise of flux-dev-2x4 with fp32, bf16 and fp8
#      plans from the same noise: final-latent rel. L2 pairs, FBCache@0.08 pattern, step time;
#   5. the scale-epilogue fallback forced (PARADIT_FP8_FALLBACK=1): fixtures' fp8 check and the
#      flux-dev-2x4 fp8 step with it, beside step 2's (what the fallback costs; the log says which
#      gemms took it; without the variable it is taken only where cuBLASLt has no OUTER_VEC_32F);
#   6. --comm-dtype fp8 on one GPU (ranks in one process): check --backend cuda --ulysses 2 and
#      --ring 2 with and without it (the quantize/dequantize kernels and the e4m3 byte packing).
#      The bytes saved need NCCL between GPUs: an x2 session runs the launched form (docs/fp8.md).
# Prepare here: bash scripts/pack-gpu.sh; node bench/flux/build.mjs; node bench/fp8/build.mjs; copy
# the fixtures to .gpu-work/fixtures (or they are read from ../shared/fixtures). Device call: carry
# [".gpu", ".gpu-work/flux", ".gpu-work/fp8", ".gpu-work/fixtures"], command `bash bench/fp8/run-gpu.sh`.
# Logs go to $OUT/fp8.log; append the measured numbers (with the card) to docs/perf-notes.md.
set -u -o pipefail
. .gpu/setup.sh
N=${STEPS:-20}
FIX=${FIXTURES:-.gpu-work/fixtures}
[ -d "$FIX" ] || FIX=../shared/fixtures
MODEL=${MODEL:-$FIX/flux-dev-2x4}
out=${OUT:-/tmp/paradit-fp8}
W=${WORK:-/tmp/paradit-fp8-work}
mkdir -p "$out" "$W"
L="$out/fp8.log"
P="node .gpu/paradit.cjs"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader | tee -a "$L"

echo "== 1. fixtures: check --backend cuda (bf16, fp8)" | tee -a "$L"
for f in "$FIX"/*/; do
  [ -d "$f/test_data_set_0" ] || continue
  for d in bf16 fp8; do
    echo "-- $(basename "$f") $d" | tee -a "$L"
    timeout 300 $P check "$f" --backend cuda --dtype "$d" 2>&1 | tail -4 | tee -a "$L"
  done
done

echo "== 2. flux-dev-2x4 step: bf16 vs fp8 plan (median of $N replays), torch eager" | tee -a "$L"
for d in bf16 fp8; do
  $P compile "$MODEL" -o "$W/plan-$d" --random-weights --dtype "$d" --no-progress 2>&1 | tail -3 | tee -a "$L"
done
node .gpu-work/flux/bench-step.cjs inputs "$W/plan-bf16" "$W/inputs" 2>&1 | tail -2 | tee -a "$L"
for d in bf16 fp8; do
  $P run "$W/plan-$d" --inputs "$W/inputs" --bench "$N" --backend cuda --no-verify-weights --json >"$W/run-$d.json" 2>>"$L"
  tail -1 "$W/run-$d.json" | tee -a "$L"
done
PYTHONUNBUFFERED=1 timeout 300 python3 bench/flux/baseline.py --steps "$N" 2>>"$L" | tail -3 | tee -a "$L"
node -e '
const fs=require("fs"); const rd=(f)=>{try{const s=fs.readFileSync(f,"utf8").trim().split("\n");return JSON.parse(s[s.length-1])}catch{return {}}};
const b=rd(process.argv[1]), e=rd(process.argv[2]); const mb=b.bench&&b.bench.medianMs, me=e.bench&&e.bench.medianMs;
console.log(`flux-dev-2x4 step: bf16 ${mb} ms, fp8 ${me} ms, speedup ${mb&&me?(mb/me).toFixed(2):"?"}x (issue 16 asks >= 1.5x)`);
' "$W/run-bf16.json" "$W/run-fp8.json" | tee -a "$L"

echo "== 3. FP8 GEMM 4608x3072x12288" | tee -a "$L"
timeout 300 node .gpu-work/fp8/gemm-fp8.cjs 4608 3072 12288 2>&1 | tee -a "$L"

echo "== 4. quality: 28-step denoise, fp32 / bf16 / fp8 plans, same noise" | tee -a "$L"
timeout 540 node .gpu-work/fp8/quality.cjs "$MODEL" --backend cuda --random-weights 0 --steps 28 --cli .gpu/paradit.cjs 2>&1 | tee -a "$L"

echo "== 5. FP8 gemm scale-epilogue fallback forced (PARADIT_FP8_FALLBACK=1)" | tee -a "$L"
for f in "$FIX"/*/; do
  [ -d "$f/test_data_set_0" ] || continue
  echo "-- $(basename "$f") fp8, fallback" | tee -a "$L"
  PARADIT_FP8_FALLBACK=1 timeout 300 $P check "$f" --backend cuda --dtype fp8 2>&1 | grep -m1 'FP8 gemm' | tee -a "$L"
  PARADIT_FP8_FALLBACK=1 timeout 300 $P check "$f" --backend cuda --dtype fp8 2>&1 | tail -2 | tee -a "$L"
done
PARADIT_FP8_FALLBACK=1 $P run "$W/plan-fp8" --inputs "$W/inputs" --bench "$N" --backend cuda --no-verify-weights --json >"$W/run-fp8-fallback.json" 2>>"$L"
node -e '
const fs=require("fs"); const rd=(f)=>{try{const s=fs.readFileSync(f,"utf8").trim().split("\n");return JSON.parse(s[s.length-1])}catch{return {}}};
const a=rd(process.argv[1]), b=rd(process.argv[2]); const ma=a.bench&&a.bench.medianMs, mb=b.bench&&b.bench.medianMs;
console.log(`flux-dev-2x4 fp8 step: cuBLASLt-scaled ${ma} ms, fallback ${mb} ms (${ma&&mb?(mb/ma).toFixed(2):"?"}x)`);
' "$W/run-fp8.json" "$W/run-fp8-fallback.json" | tee -a "$L"

echo "== 6. --comm-dtype fp8 on one GPU (ranks in this process)" | tee -a "$L"
for f in "$FIX"/flux-dynamo18/ "$FIX"/wan-dynamo18/; do
  [ -d "$f/test_data_set_0" ] || continue
  for mesh in "--ulysses 2" "--ring 2"; do
    for c in "" "--comm-dtype fp8"; do
      echo "-- $(basename "$f") $mesh $c" | tee -a "$L"
      timeout 300 $P check "$f" --backend cuda --dtype bf16 $mesh $c 2>&1 | tail -2 | tee -a "$L"
    done
  done
done
