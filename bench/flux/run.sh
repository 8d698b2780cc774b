#!/usr/bin/env bash
# flux-dev-2x4 end to end on one GPU (the device machine), in one command:
#   1. compile flux-dev-2x4 (seeded random bf16 weights) to a plain plan and a First Block Cache
#      plan (--fbcache 0.08), timing each compile;
#   2. seeded random inputs (bench-step.cjs inputs);
#   3. `paradit run PLAN --bench N --backend cuda`: median of N replays of the captured step graph
#      after 5 warm-up replays (CUDA events);
#   4. bench-step.cjs fbcache: the gated plan's computed step (must_compute = 1) and its cached step
#      (same inputs again, so diff = 0 < 0.08 and the device-side conditional takes the cached
#      branch; checked through fbcache.cached), each the median of N graph replays;
#   5. the PyTorch baseline in the same run: python3 bench/flux/baseline.py --steps N (eager,
#      torch.compile, and eager first block + head, what a cached step must at least run).
#   6. with CHECK_F32=1: an fp32 plan of the same seeded weights (decomposed fp32 attention, fp32
#      GEMMs without TF32) and the relative L2 of the bf16 plan's output against it (bench-step.cjs
#      compare): a correctness check of the timed plan at full size, where no test data exists.
# Prepare here: bash scripts/pack-gpu.sh; node bench/flux/build.mjs; copy the model folder to
# .gpu-work/fixtures/flux-dev-2x4 (or pass MODEL=...). Device call: carry [".gpu", ".gpu-work/flux",
# ".gpu-work/fixtures"], command `bash bench/flux/run.sh`. Logs and JSON go to $OUT (flux.log,
# flux.json); the table is printed last.
set -u -o pipefail
. .gpu/setup.sh
N=${STEPS:-20}
MODEL=${MODEL:-.gpu-work/fixtures/flux-dev-2x4}
[ -f "$MODEL/model.onnx" ] || MODEL=../shared/fixtures/flux-dev-2x4
out=${OUT:-/tmp/paradit-flux}
W=${WORK:-/tmp/paradit-flux-work}
mkdir -p "$out" "$W"; rm -f "$W/cmp.json"
L="$out/flux.log"
P="node .gpu/paradit.cjs"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader | tee -a "$L"
now() { date +%s.%N; }
since() { awk "BEGIN{printf \"%.1f\", $(now) - $1}"; }
t=$(now); $P compile "$MODEL" -o "$W/plan" --random-weights --dtype bf16 --no-progress 2>&1 | tee -a "$L"; c1=$(since $t)
t=$(now); $P compile "$MODEL" -o "$W/plan-fb" --random-weights --dtype bf16 --fbcache 0.08 --no-progress 2>&1 | tee -a "$L"; c2=$(since $t)
node .gpu-work/flux/bench-step.cjs inputs "$W/plan" "$W/inputs" 2>&1 | tee -a "$L"
$P run "$W/plan" --inputs "$W/inputs" --bench "$N" --backend cuda --no-verify-weights --json >"$W/run.json" 2>>"$L"; cat "$W/run.json" >>"$L"
node .gpu-work/flux/bench-step.cjs fbcache "$W/plan-fb" "$W/inputs" --bench "$N" >"$W/fb.json" 2>>"$L"; cat "$W/fb.json" >>"$L"
PYTHONUNBUFFERED=1 python3 bench/flux/baseline.py --steps "$N" >"$W/torch.out" 2>>"$L"; cat "$W/torch.out" >>"$L"
if [ "${CHECK_F32:-}" = 1 ]; then
  $P compile "$MODEL" -o "$W/plan-f32" --random-weights --dtype fp32 --no-progress 2>&1 | tee -a "$L"
  node .gpu-work/flux/bench-step.cjs compare "$W/plan" "$W/plan-f32" "$W/inputs" 2>&1 | tee "$W/cmp.json" >>"$L"
  rm -rf "$W/plan-f32"
fi
node -e '
const fs=require("fs"); const rd=(f)=>{try{const s=fs.readFileSync(f,"utf8").trim().split("\n");return JSON.parse(s[s.length-1])}catch{return {}}};
const run=rd(process.argv[1]), fb=rd(process.argv[2]), th=rd(process.argv[3]);
const f=(x)=>typeof x==="number"?x.toFixed(2).padStart(8):"       -";
const res={card:th.device||fb.device, stepMs:run.bench&&run.bench.medianMs, gatedComputedMs:fb.computedMs, cachedMs:fb.cachedMs, cachedChecks:fb.checks, torchEagerMs:th.eager_ms, torchCompileMs:th.compile_ms, torchFirstBlockMs:th.eager_first_block_ms, compileSeconds:{plain:+process.argv[4], fbcache:+process.argv[5]}};
fs.writeFileSync(process.argv[6], JSON.stringify(res, null, 1));
console.log(`flux-dev-2x4 bf16, ${res.card}, median of ${process.argv[7]} graph replays (ms)`);
console.log(`  paradit step                  ${f(res.stepMs)}`);
console.log(`  paradit fbcache computed step ${f(res.gatedComputedMs)}`);
console.log(`  paradit fbcache cached step   ${f(res.cachedMs)}   (cached=${fb.checks?fb.checks.cachedStep.cached:"?"}, diff=${fb.checks?fb.checks.cachedStep.diff:"?"})`);
console.log(`  torch eager                   ${f(res.torchEagerMs)}`);
console.log(`  torch.compile                 ${f(res.torchCompileMs)}`);
console.log(`  torch eager first block+head  ${f(res.torchFirstBlockMs)}`);
console.log(`  compile (device CPU)          plain ${process.argv[4]} s, fbcache ${process.argv[5]} s`);
const cmp=rd(process.argv[8]); if(cmp.outputs) for(const o of cmp.outputs) console.log(`  bf16 plan vs fp32 plan: ${o.name} rel L2 ${o.relL2.toExponential(2)} (ref rms ${o.refRms.toExponential(2)}, NaN mismatches ${o.nanMismatch})`);
' "$W/run.json" "$W/fb.json" "$W/torch.out" "$c1" "$c2" "$out/flux.json" "$N" "$W/cmp.json"
