#!/usr/bin/env bash
# Full FLUX.1-dev (19 double + 38 single blocks, 11.9 B parameters; bench/models/flux-dev-full, the
# graph without weights) on one GPU, in one device call, with diffusers' own FluxTransformer2DModel
# beside it (../shared/baselines/anchor_flux.py, random bf16 weights, same shapes):
#   1. compile a bf16 plan and a First Block Cache plan (--fbcache 0.08) with seeded random weights
#      (recorded as generator recipes: the runtime fills them on the GPU), timing each compile;
#   2. `paradit run PLAN --bench N`: median of N CUDA-graph replays after warm-up (CUDA events);
#   3. bench-step fbcache: the gated plan's computed and cached step;
#   4. with DENOISE=K: `paradit denoise --steps K --backend cuda` without and with --fbcache 0.08
#      (wall time of the loop, cache decisions);
#   5. diffusers eager, torch.compile (and PHASES_EXTRA, e.g. compile:max-autotune) and
#      ParaAttention's First Block Cache full/cached step, in the same call;
#   6. with .gpu-work/flux-full (node bench/flux-full/build.mjs; carry it): the 22 GiB of weights
#      generated on the GPU, 8 tensors byte-compared with the JS generator (check.cjs fill), and the
#      peak GPU memory (nvidia-smi memory.used every 100 ms) during 2 and 3; with CHECK_F32=1 an
#      fp32 plan of the same seeded weights and the bf16 plan's rel L2 against it (issue: <= 2e-2).
# Prepare here: bash scripts/pack-gpu.sh; node bench/flux/build.mjs; mkdir -p .gpu-work/baselines
# && cp ../shared/baselines/anchor_* .gpu-work/baselines/; node bench/flux-full/build.mjs. Carry
# [".gpu", ".gpu-work/flux", ".gpu-work/baselines", ".gpu-work/flux-full"]. Logs to $OUT/flux-full.log, the table to stdout and $OUT/flux-full.json.
set -u -o pipefail
. .gpu/setup.sh
N=${STEPS:-20}
MODEL=${MODEL:-bench/models/flux-dev-full}
out=${OUT:-/tmp/paradit-flux-full}
W=${WORK:-/tmp/paradit-flux-full-work}
mkdir -p "$out" "$W"
L="$out/flux-full.log"
P="node .gpu/paradit.cjs"
B="node .gpu-work/flux/bench-step.cjs"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader | tee -a "$L"
now() { date +%s.%N; }
since() { awk "BEGIN{printf \"%.1f\", $(now) - $1}"; }
t=$(now); /usr/bin/time -f "compile peak RSS %M KB" $P compile "$MODEL" -o "$W/plan" --random-weights --dtype bf16 --no-progress 2>&1 | tee -a "$L"; c1=$(since $t)
t=$(now); $P compile "$MODEL" -o "$W/plan-fb" --random-weights --dtype bf16 --fbcache 0.08 --no-progress 2>&1 | tee -a "$L"; c2=$(since $t)
$B inputs "$W/plan" "$W/inputs" 2>&1 | tee -a "$L"
CHK=.gpu-work/flux-full/check.cjs
rm -f "$W/fill.json" "$W/mem-run.txt" "$W/mem-fb.txt" "$W/cmp.json"
[ -f "$CHK" ] && { node "$CHK" fill "$W/plan" --sample 8 >"$W/fill.json" 2>>"$L"; cat "$W/fill.json" >>"$L"; }
sample_mem() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$1" 2>/dev/null & echo $!; }
m=$(sample_mem "$W/mem-run.txt")
$P run "$W/plan" --inputs "$W/inputs" --bench "$N" --backend cuda --no-verify-weights --json >"$W/run.json" 2>>"$L"; cat "$W/run.json" >>"$L"
kill "$m" 2>/dev/null; m=$(sample_mem "$W/mem-fb.txt")
$B fbcache "$W/plan-fb" "$W/inputs" --bench "$N" >"$W/fb.json" 2>>"$L"; cat "$W/fb.json" >>"$L"
kill "$m" 2>/dev/null
if [ "${CHECK_F32:-}" = 1 ]; then
  $P compile "$MODEL" -o "$W/plan-f32" --random-weights --dtype fp32 --no-progress 2>&1 | tee -a "$L"
  $B compare "$W/plan" "$W/plan-f32" "$W/inputs" 2>>"$L" | tee "$W/cmp.json" >>"$L"
  rm -rf "$W/plan-f32"
fi
rm -rf "$W/plan" "$W/plan-fb"
if [ -n "${DENOISE:-}" ]; then
  for fb in "" "--fbcache 0.08"; do
    t=$(now); $P denoise "$MODEL" --steps "$DENOISE" --backend cuda --dtype bf16 --random-weights $fb --json --no-progress >"$W/denoise$([ -n "$fb" ] && echo -fb).json" 2>>"$L"; echo "denoise $fb: $(since $t) s wall" | tee -a "$L"
  done
fi
if [ -d .gpu-work/baselines ]; then
  mkdir -p /tmp/anchor && tar -xJf .gpu-work/baselines/anchor_py.tar.xz -C /tmp/anchor
  ANCHOR_SRC=/tmp/anchor PHASES=eager,compile${PHASES_EXTRA:+,$PHASES_EXTRA},fbcache timeout ${TORCH_TIMEOUT:-300} python3 .gpu-work/baselines/anchor_flux.py >"$W/torch.out" 2>>"$L"; cat "$W/torch.out" >>"$L"
fi
node -e '
const fs=require("fs");
// anchor_flux.py prints "PHASE done in S s {results so far}" per phase and "RESULT {...}" last: the
// last line with an object wins, so a run cut short by TORCH_TIMEOUT keeps the phases it finished.
const rdTorch=(f)=>{try{const l=fs.readFileSync(f,"utf8").trim().split("\n").filter((x)=>x.includes("{")).pop();const o=JSON.parse(l.slice(l.indexOf("{")));return o.res||o}catch{return {}}};
const rd=(f)=>{try{const s=fs.readFileSync(f,"utf8").trim().split("\n");return JSON.parse(s[s.length-1].replace(/^RESULT /,""))}catch{return {}}};
const run=rd(process.argv[1]), fb=rd(process.argv[2]), th=rdTorch(process.argv[3]), d0=rd(process.argv[7]), d1=rd(process.argv[8]);
const f=(x)=>typeof x==="number"?x.toFixed(2).padStart(8):"       -";
const med=(x)=>Array.isArray(x)?x[0]:x;
const res={stepMs:run.bench&&run.bench.medianMs, gatedComputedMs:fb.computedMs, cachedMs:fb.cachedMs, diffusersEagerMs:med(th.eager), diffusersCompileMs:med(th.compile), diffusersMaxAutotuneMs:med(th["compile:max-autotune"]), paraAttnFbFullMs:med(th["fbcache-full"]), paraAttnFbCachedMs:med(th["fbcache-cached"]), compileSeconds:{plain:+process.argv[4], fbcache:+process.argv[5]}, denoise:{plain:d0.seconds, fbcache:d1.seconds, computed:d1.computed, cachedSteps:d1.cachedSteps}};
fs.writeFileSync(process.argv[6], JSON.stringify(res, null, 1));
console.log(`full FLUX.1-dev bf16 (1024x1024: 4096 image + 512 text tokens), median of ${process.argv[9]} replays (ms)`);
console.log(`  paradit step                   ${f(res.stepMs)}`);
console.log(`  paradit fbcache computed step  ${f(res.gatedComputedMs)}`);
console.log(`  paradit fbcache cached step    ${f(res.cachedMs)}   (cached=${fb.checks?fb.checks.cachedStep.cached:"?"})`);
console.log(`  diffusers eager                ${f(res.diffusersEagerMs)}`);
console.log(`  diffusers torch.compile        ${f(res.diffusersCompileMs)}`);
console.log(`  diffusers max-autotune         ${f(res.diffusersMaxAutotuneMs)}`);
console.log(`  ParaAttention FBCache full / cached ${f(res.paraAttnFbFullMs)} / ${f(res.paraAttnFbCachedMs)}`);
console.log(`  denoise wall s: plain ${res.denoise.plain ?? "-"}, fbcache ${res.denoise.fbcache ?? "-"} (${res.denoise.computed ?? "-"} computed)`);
console.log(`  compile (device CPU) plain ${process.argv[4]} s, fbcache ${process.argv[5]} s`);
const W=process.argv[10], fill=rd(`${W}/fill.json`), cmp=rd(`${W}/cmp.json`);
const peak=(f)=>{try{return Math.max(...fs.readFileSync(f,"utf8").trim().split("\n").map(Number).filter((x)=>x>=0))}catch{return "-"}};
console.log(`  peak GPU memory (nvidia-smi)   step ${peak(`${W}/mem-run.txt`)} MiB, fbcache ${peak(`${W}/mem-fb.txt`)} MiB`);
if (fill.generated !== undefined) console.log(`  weights generated on the GPU   ${fill.generated} tensors, ${(fill.generatedBytes/2**30).toFixed(2)} GiB in ${fill.fillMs} ms; ${fill.comparedTensors} sampled vs the JS generator: ${fill.mismatches} mismatching`);
if (cmp.outputs) for (const o of cmp.outputs) console.log(`  bf16 plan vs fp32 plan: ${o.name} rel L2 ${o.relL2.toExponential(2)} (ref rms ${o.refRms.toExponential(2)}, NaN mismatches ${o.nanMismatch})`);
' "$W/run.json" "$W/fb.json" "$W/torch.out" "$c1" "$c2" "$out/flux-full.json" "$W/denoise.json" "$W/denoise-fb.json" "$N" "$W" | tee "$out/flux-full.txt"
