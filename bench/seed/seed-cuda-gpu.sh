#!/usr/bin/env bash
# The real diffusers exports of tests/seed on one GPU (issue 12's must-show): for every export,
# `paradit check DIR --backend cuda --dtype fp32|bf16` against its PyTorch-recorded outputs, and
# `denoise --fbcache 0.2 --backend cuda` against the interpreter's cache decisions. tests/seed is
# tracked, so it travels with the tree; carry [".gpu"]. Prints a table; JSON lines go to $OUT.
set -u -o pipefail
. .gpu/setup.sh
out=${OUT:-/tmp/paradit-seed}
S=${SEED_DIR:-tests/seed}
mkdir -p "$out"
J="$out/seed-cuda.jsonl"
: >"$J"
jobs=()
for d in "$S"/*/; do
  [ -d "$d/test_data_set_0" ] || continue
  for dt in fp32 bf16; do jobs+=("$(basename "$d") $dt"); done
done
run_one() {
  set -- $1
  local name=$1 dt=$2 e=/tmp/seed-err-$$-$1-$2
  local res
  res=$(node .gpu/paradit.cjs check "$S/$name" --backend cuda --dtype "$dt" --json 2>"$e")
  local rc=$?
  local err
  err=$(tail -c 300 "$e" | tr '\n' ' ' | sed 's/"/\x27/g; s/\\/\//g')
  echo "{\"model\":\"$name\",\"dtype\":\"$dt\",\"rc\":$rc,\"report\":${res:-null},\"stderr\":\"$err\"}"
}
export -f run_one
export S
printf '%s\n' "${jobs[@]}" | xargs -P 8 -I{} bash -c 'run_one "{}"' >>"$J"
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => { try { return JSON.parse(l); } catch { return { bad: l }; } });
let pass = 0, fail = 0;
console.log("export                    dtype  result  worst rel L2 (tol)");
for (const x of lines.sort((a, b) => (a.model + a.dtype).localeCompare(b.model + b.dtype))) {
  if (x.bad) { console.log("unparsable:", x.bad.slice(0, 200)); fail++; continue; }
  const r = x.report;
  const ok = r && r.ok;
  ok ? pass++ : fail++;
  const worst = r && r.checks ? r.checks.reduce((m, c) => (c.relL2 > (m ? m.relL2 : -1) ? c : m), null) : null;
  console.log(`${x.model.padEnd(25)} ${x.dtype.padEnd(6)} ${ok ? "ok     " : "FAIL rc " + x.rc} ${worst ? `${worst.relL2.toExponential(2)} (${worst.tolerance})` : x.stderr.slice(0, 200)}`);
}
console.log(`seed exports on the GPU: ${pass} ok, ${fail} failed`);
' "$J" | tee "$out/seed-cuda.txt"
# First Block Cache decisions on the GPU against the interpreter.
for d in "$S"/*/; do
  name=$(basename "$d")
  [ -d "$d/test_data_set_0" ] || continue
  node .gpu/paradit.cjs denoise "$d" --steps 8 --fbcache 0.2 --json >"$out/fb-ref.json" 2>/dev/null
  node .gpu/paradit.cjs denoise "$d" --steps 8 --fbcache 0.2 --backend cuda --json >"$out/fb-gpu.json" 2>"$out/fb-err.txt"
  node -e '
const fs = require("fs"); const rd = (f) => { try { return JSON.parse(fs.readFileSync(f, "utf8")); } catch { return null; } };
const a = rd(process.argv[1]), b = rd(process.argv[2]);
const dec = (r) => r ? r.steps.map((s) => (s.cached ? "C" : ".")).join("") : "(failed: " + fs.readFileSync(process.argv[4], "utf8").slice(0, 160).replace(/\n/g, " ") + ")";
console.log(`fbcache 0.2 ${process.argv[3].padEnd(25)} interpreter ${dec(a)}  gpu ${dec(b)}  ${a && b && dec(a) === dec(b) ? "same" : "DIFFERENT"}`);
' "$out/fb-ref.json" "$out/fb-gpu.json" "$name" "$out/fb-err.txt" | tee -a "$out/seed-cuda.txt"
done
