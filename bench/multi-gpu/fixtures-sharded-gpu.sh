#!/usr/bin/env bash
# Sharded plans of every carried fixture on one GPU (the device machine): for each applicable mesh
# of (2,1,1) (1,2,1) (2,2,1) (4,1,1) (1,1,2) (2,1,2) and dtype fp32 / bf16, `paradit check DIR
# --backend cuda --ulysses U --ring R --cfg C --dtype D` (the plan's W ranks run in this process on
# the GPU, collectives as device copies: InProcessCudaRanks), then `denoise --fbcache` on the GPU
# against the interpreter's decisions for a few meshes. Prints a table; JSON lines go to $OUT.
# Prepare here: bash scripts/pack-gpu.sh; copy fixtures to .gpu-work/fixtures/. Carry [".gpu",
# ".gpu-work/fixtures"]. Checks run 8 at a time (nvcc and the GPU are shared; the models are tiny).
set -u -o pipefail
. .gpu/setup.sh
out=${OUT:-/tmp/paradit-sharded}
mkdir -p "$out"
P="node .gpu/paradit.cjs"
F=${FIXTURES:-.gpu-work/fixtures}
J="$out/sharded-checks.jsonl"
: >"$J"
jobs=()
for d in "$F"/*/; do
  name=$(basename "$d")
  [ -d "$d/test_data_set_0" ] || continue
  for mesh in "2 1 1" "1 2 1" "2 2 1" "4 1 1" "1 1 2" "2 1 2"; do
    for dt in fp32 bf16; do jobs+=("$name $mesh $dt"); done
  done
done
run_one() {
  set -- $1
  local name=$1 u=$2 r=$3 c=$4 dt=$5
  local res
  res=$(node .gpu/paradit.cjs check "${F}/$name" --backend cuda --ulysses "$u" --ring "$r" --cfg "$c" --dtype "$dt" --json 2>/tmp/err-$$-$name-$u$r$c$dt)
  local rc=$?
  local err
  err=$(tail -c 300 /tmp/err-$$-$name-$u$r$c$dt | tr '\n' ' ' | sed 's/"/\x27/g')
  echo "{\"fixture\":\"$name\",\"mesh\":[$u,$r,$c],\"dtype\":\"$dt\",\"rc\":$rc,\"report\":${res:-null},\"stderr\":\"$err\"}"
}
export -f run_one
export F
printf '%s\n' "${jobs[@]}" | xargs -P 8 -I{} bash -c 'run_one "{}"' >>"$J"
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => { try { return JSON.parse(l); } catch { return { bad: l }; } });
let pass = 0, fail = 0, refused = 0;
console.log("fixture                 mesh(U,R,C) dtype  result  rel L2 (tol)");
for (const x of lines.sort((a, b) => (a.fixture + a.mesh + a.dtype).localeCompare(b.fixture + b.mesh + b.dtype))) {
  if (x.bad) { console.log("unparsable:", x.bad.slice(0, 200)); fail++; continue; }
  const r = x.report;
  let res;
  if (x.rc === 2 && /cfg|batch/i.test(x.stderr)) { res = "n/a (batch 1)"; refused++; }
  else if (r && r.ok) { res = "ok"; pass++; }
  else { res = `FAIL rc ${x.rc} ${x.stderr.slice(0, 160)}`; fail++; }
  const c = r && r.checks && r.checks[0];
  console.log(`${x.fixture.padEnd(23)} ${x.mesh.join(",").padEnd(11)} ${x.dtype.padEnd(6)} ${res.padEnd(7)} ${c ? `${c.relL2.toExponential(2)} (${c.tolerance})` : ""}`);
}
console.log(`sharded checks on the GPU: ${pass} ok, ${fail} failed, ${refused} not applicable`);
' "$J" | tee "$out/sharded-checks.txt"
# First Block Cache decisions of sharded plans on the GPU against the interpreter (unsharded).
for name in flux-dynamo18 sd3-ts17; do
  [ -d "$F/$name" ] || continue
  $P denoise "$F/$name" --steps 8 --fbcache 0.3 --json >"$out/fb-$name-ref.json" 2>/dev/null
  meshes=("--ulysses 2" "--ring 2" "--ulysses 2 --ring 2")
  [ "$name" = sd3-ts17 ] && meshes+=("--cfg 2" "--cfg 2 --ulysses 2")
  for mesh in "${meshes[@]}"; do
    $P denoise "$F/$name" --steps 8 --fbcache 0.3 --backend cuda $mesh --json >"$out/fb-$name-gpu.json" 2>"$out/fb-err.txt"
    node -e '
const fs = require("fs"); const rd = (f) => { try { return JSON.parse(fs.readFileSync(f, "utf8")); } catch { return null; } };
const a = rd(process.argv[1]), b = rd(process.argv[2]);
const dec = (r) => r ? r.steps.map((s) => (s.cached ? "C" : ".")).join("") : "(failed: " + fs.readFileSync(process.argv[4], "utf8").slice(0, 160).replace(/\n/g, " ") + ")";
console.log(`fbcache ${process.argv[3]}: interpreter ${dec(a)}  gpu ${dec(b)}  ${a && b && dec(a) === dec(b) ? "same" : "DIFFERENT"}`);
' "$out/fb-$name-ref.json" "$out/fb-$name-gpu.json" "$name $mesh" "$out/fb-err.txt" | tee -a "$out/sharded-checks.txt"
  done
done
