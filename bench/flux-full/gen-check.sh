#!/usr/bin/env bash
# Generated weights on the GPU (plan version 3, weights.generated), on the device machine:
#   1. the tiny random-weights DiT (.gpu-work/flux-full/tiny, made by build.mjs) compiled for
#      fp32, bf16 and fp16 (nvcc there): weights.bin holds only the non-random constants;
#   2. check.cjs fill: the device's weights space after load (weights.bin + paradit_fill_uniform)
#      byte-compared with the CPU backend's (weights.bin + randomTensor): mismatches must be 0;
#   3. check.cjs compare: one step of the same plan on --backend cuda and --backend cpu (the CPU
#      backend regenerates the weights in JS): relative L2 per output (expect <= 1e-3 for fp32,
#      <= 5e-2 for bf16/fp16 plans; a weight fill bug gives ~1).
# Prepare here: bash scripts/pack-gpu.sh; node bench/flux-full/build.mjs. Device call: carry
# [".gpu", ".gpu-work/flux-full"], command `bash bench/flux-full/gen-check.sh`. Prints JSON lines
# and a summary; everything also goes to $OUT/gen-check.log.
set -u -o pipefail
. .gpu/setup.sh
out=${OUT:-/tmp/paradit-gen}; W=${WORK:-/tmp/paradit-gen-work}
mkdir -p "$out" "$W"
L="$out/gen-check.log"
P="node .gpu/paradit.cjs"
C="node .gpu-work/flux-full/check.cjs"
TINY=.gpu-work/flux-full/tiny
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$L"
fail=0
for dt in fp32 bf16 fp16; do
  $P compile "$TINY" -o "$W/tiny-$dt" --random-weights 5 --dtype $dt --no-progress 2>&1 | tee -a "$L"
  $C fill "$W/tiny-$dt" 2>>"$L" | tee -a "$L" | tee "$W/fill-$dt.json" || fail=1
  $C compare "$W/tiny-$dt" 2>>"$L" | tee -a "$L" | tee "$W/cmp-$dt.json" || fail=1
done
node -e '
const fs=require("fs"); const W=process.argv[1];
for (const dt of ["fp32","bf16","fp16"]) {
  const rd=(f)=>{try{return JSON.parse(fs.readFileSync(f,"utf8").trim().split("\n").pop())}catch{return {}}};
  const f=rd(`${W}/fill-${dt}.json`), c=rd(`${W}/cmp-${dt}.json`);
  const lim=dt==="fp32"?1e-3:5e-2;
  const rel=(c.outputs||[]).map((o)=>o.relL2);
  const ok=f.mismatches===0&&rel.length>0&&rel.every((r)=>r<=lim);
  console.log(`${dt}: ${f.device||"?"}: ${f.generated} generated tensors, fill ${f.fillMs} ms, ${f.comparedTensors} buffers byte-compared, mismatches ${f.mismatches}; cuda vs cpu rel L2 ${rel.map((r)=>r.toExponential(2)).join(", ")} (limit ${lim}) -> ${ok?"PASS":"FAIL"}`);
}' "$W" | tee -a "$L"
exit $fail
