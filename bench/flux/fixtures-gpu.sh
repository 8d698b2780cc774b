#!/usr/bin/env bash
# On the GPU machine: every fixture with test data through `paradit check --backend cuda` with an
# fp32 plan (no TF32) and a bf16 plan, then First Block Cache decisions of `paradit denoise
# --backend cuda` (default plan dtype: fp32 for fp32 models, bf16 for bf16 models) against the reference interpreter's on the same loop. A failing
# check is re-run with --debug-instrs (every instruction's GPU outputs against its CPU ref on the
# same inputs) so the divergence is localized.
# Usage: bash bench/flux/fixtures-gpu.sh [FIXTURES_DIR] (default .gpu-work/fixtures). Needs .gpu
# (bash scripts/pack-gpu.sh). Writes $OUT/fixtures.jsonl (one JSON object per check/denoise) and
# $OUT/fixtures.log; prints a table last.
set -u -o pipefail
. .gpu/setup.sh
F=${1:-.gpu-work/fixtures}
out=${OUT:-/tmp/paradit-fixtures}
mkdir -p "$out"
P="node .gpu/paradit.cjs"
B=${BACKEND:-cuda}  # BACKEND=cpu: a dry run of this script without a GPU (CPU plan backend)
J="$out/fixtures.jsonl"
L="$out/fixtures.log"
: >>"$J"
card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
echo "card: $card" | tee -a "$L"
debugged=0
for d in "$F"/*/; do
  d=${d%/}; n=$(basename "$d")
  [ -d "$d/test_data_set_0" ] || continue
  for dt in fp32 bf16; do
    t0=$(date +%s.%N)
    $P check "$d" --backend $B --dtype $dt --json >"$out/c.json" 2>>"$L"; rc=$?
    t1=$(date +%s.%N)
    if [ -s "$out/c.json" ]; then
      node -e 'const r=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(JSON.stringify({kind:"check",fixture:process.argv[2],dtype:process.argv[3],rc:+process.argv[4],ok:r.ok,device:r.device,worst:Math.max(...r.checks.map(c=>c.relL2)),tol:r.checks[0].tolerance,outputs:r.checks.map(c=>[c.output,c.relL2]),compileS:r.compileSeconds,loadS:r.loadSeconds,wallS:+process.argv[5]}))' "$out/c.json" "$n" $dt $rc "$(awk "BEGIN{print $t1 - $t0}")" >>"$J"
    else
      echo "{\"kind\":\"check\",\"fixture\":\"$n\",\"dtype\":\"$dt\",\"rc\":$rc,\"ok\":false,\"error\":true}" >>"$J"
    fi
    if [ $rc -ne 0 ] && [ "${NO_DEBUG:-}" = "" ] && [ $debugged -lt ${MAX_DEBUG:-2} ]; then
      debugged=$((debugged + 1))
      echo "== debug-instrs $n $dt" >>"$L"
      timeout 150 $P check "$d" --backend cuda --dtype $dt --debug-instrs >>"$L" 2>&1
    fi
  done
done
# First Block Cache on the GPU: the decisions of the plan (default dtype) must equal the interpreter's.
for d in "$F"/*/; do
  d=${d%/}; n=$(basename "$d")
  [ -d "$d/test_data_set_0" ] || continue
  case $n in flux*) th=0.42 ;; *) th=0.2 ;; esac
  $P denoise "$d" --steps 8 --fbcache $th --json --no-progress >"$out/di.json" 2>>"$L"
  $P denoise "$d" --steps 8 --fbcache $th --backend $B --json --no-progress >"$out/dc.json" 2>>"$L"; rc=$?
  node -e '
const fs=require("fs"); const rd=(f)=>{try{return JSON.parse(fs.readFileSync(f,"utf8"))}catch{return undefined}};
const a=rd(process.argv[1]), b=rd(process.argv[2]);
const r={kind:"denoise",fixture:process.argv[3],threshold:+process.argv[4],rc:+process.argv[5]};
if(a&&b){r.interp=a.steps.map(s=>s.cached?"C":"-").join("");r.cuda=b.steps.map(s=>s.cached?"C":"-").join("");r.same=r.interp===r.cuda;
r.maxDiffErr=Math.max(0,...a.steps.map((s,i)=>s.diff===null||b.steps[i].diff===null?0:Math.abs(s.diff-b.steps[i].diff)));r.device=b.backend&&b.backend.device;}
else r.same=false;
console.log(JSON.stringify(r));' "$out/di.json" "$out/dc.json" "$n" $th $rc >>"$J"
done
rm -f "$out/c.json" "$out/di.json" "$out/dc.json"
node -e '
const rows=require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse);
console.log("fixture                dtype  rel L2      tol      ok   compile  load");
for(const r of rows.filter(r=>r.kind==="check")) console.log(`${r.fixture.padEnd(22)} ${r.dtype.padEnd(6)} ${r.error?"error    ":r.worst.toExponential(2).padEnd(11)} ${r.error?"":r.tol.toExponential(0).padEnd(8)} ${r.ok?"ok  ":"FAIL"} ${r.error?"":r.compileS.toFixed(1).padStart(6)+" s "+r.loadS.toFixed(1).padStart(4)+" s"}`);
console.log("fixture                threshold interp    cuda      same  max|diff err|");
for(const r of rows.filter(r=>r.kind==="denoise")) console.log(`${r.fixture.padEnd(22)} ${String(r.threshold).padEnd(9)} ${(r.interp||"?").padEnd(9)} ${(r.cuda||"?").padEnd(9)} ${r.same?"yes ":"NO  "} ${r.maxDiffErr!==undefined?r.maxDiffErr.toExponential(2):"-"}`);
' "$J"
