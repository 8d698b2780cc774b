#!/usr/bin/env bash
# Launched ranks on the GPU machine (issue 10 items 4-5): the launcher environments reach the NCCL
# path, world checks refuse, and on 2+ GPUs `paradit launch` / torchrun-style ranks run a sharded
# plan on one process per GPU and survive the fault drills.
#
# Prepare here:  bash scripts/pack-gpu.sh
#                mkdir -p .gpu-work/launcher && cp -r ../shared/fixtures/flux-dynamo18 .gpu-work/launcher/model
# Device call:   carry [".gpu", ".gpu-work/launcher"], command `bash bench/multi-gpu/launch-gpu.sh`
#                (kind nvidia-h100-x2 for the 2-GPU part; on one GPU it is skipped and says so).
# Prints one PASS/FAIL line per check and a summary; logs go to $OUT (or /tmp/paradit-launch).
set -u -o pipefail
. .gpu/setup.sh
out=${OUT:-/tmp/paradit-launch}
mkdir -p "$out"
M=${MODEL:-.gpu-work/launcher/model}
W=$(mktemp -d /tmp/paradit-launch-XXXX)
P="node .gpu/paradit.cjs"
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
echo "GPUs: $gpus"
pass=0
fail=0
# check NAME EXPECTED_RC GREP_PATTERN -- COMMAND...: runs COMMAND (bounded), compares rc (a number,
# or 'nonzero') and output; with MAX_S set, it must also end within MAX_S seconds.
check() {
  local name=$1 want=$2 pat=$3
  shift 4
  local t0=$(date +%s.%N)
  timeout -k 5 ${CHECK_TIMEOUT:-240} "$@" >"$out/$name.out" 2>"$out/$name.err"
  local rc=$?
  local dt=$(echo "$(date +%s.%N) - $t0" | bc)
  local rc_ok=0
  if [ "$rc" = "$want" ] || { [ "$want" = nonzero ] && [ "$rc" != 0 ]; }; then rc_ok=1; fi
  if [ -n "${MAX_S:-}" ] && [ "$(echo "$dt > $MAX_S" | bc)" = 1 ]; then rc_ok=0; fi
  if [ "$rc_ok" = 1 ] && grep -Eq -- "$pat" "$out/$name.out" "$out/$name.err"; then
    pass=$((pass + 1)); echo "PASS $name (rc $rc, ${dt} s)"
  else
    fail=$((fail + 1)); echo "FAIL $name (rc $rc, want $want and /$pat/, ${dt} s)"; tail -5 "$out/$name.err" | sed 's/^/    /'
  fi
}
free_port() { node -e 'const s=require("net").createServer().listen(0,()=>{console.log(s.address().port);s.close()})'; }

$P compile "$M" -o "$W/plan1" --dtype bf16 >"$out/compile1.log" 2>&1 || { echo "FAIL compile (see $out/compile1.log)"; exit 1; }
# One GPU: every launcher form goes through the NCCL path (collectives 'nccl' in the load report).
check launch-nproc1-nccl 0 '"collectives":"nccl".*"ok":true|"ok":true.*"collectives":"nccl"' -- $P launch --nproc 1 -- run "$W/plan1" --inputs "$M" --backend cuda --compare --json
check torchrun-world1-nccl 0 '"collectives":"nccl"' -- env RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 $P run "$W/plan1" --inputs "$M" --backend cuda --compare --json
port=$(free_port)
check torchrun-world1-comm-id 0 '"collectives":"nccl"' -- env RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port $P run "$W/plan1" --inputs "$M" --backend cuda --compare --json
check slurm-world1-nccl 0 '"collectives":"nccl"' -- env SLURM_PROCID=0 SLURM_NTASKS=1 SLURM_LOCALID=0 SLURM_JOB_ID=4242 $P run "$W/plan1" --inputs "$M" --backend cuda --compare --json
check plain-run-no-nccl 0 '"collectives":"none"' -- $P run "$W/plan1" --inputs "$M" --backend cuda --compare --json
# World checks (before any GPU work): a one-rank plan on 2 ranks, every rank exits 2.
check world-mismatch 2 'rank 1\] paradit: error: .*compiled for mesh u1 r1 c1 = 1 rank, but the launched world is 2' -- $P launch --nproc 2 --timeout 60 -- run "$W/plan1" --inputs "$M" --backend cuda
$P compile "$M" -o "$W/u2" --dtype bf16 --ulysses 2 >"$out/compile-u2.log" 2>&1 || echo "FAIL compile u2 (see $out/compile-u2.log)"
$P compile "$M" -o "$W/r2" --dtype bf16 --ring 2 >"$out/compile-r2.log" 2>&1 || echo "FAIL compile r2 (see $out/compile-r2.log)"
if [ "$gpus" -lt 2 ]; then
  # NCCL refuses two ranks on one GPU: the runtime says so before trying (exit 2).
  check two-ranks-one-gpu 2 'NCCL cannot put two ranks on one GPU' -- $P launch --nproc 2 --timeout 60 -- run "$W/u2" --inputs "$M" --backend cuda
  echo "SKIP 2-GPU checks: this machine has $gpus GPU(s); run with kind nvidia-h100-x2"
else
  for k in u2 r2; do
    check launch2-$k 0 '"ok":true' -- $P launch --nproc 2 --timeout 120 -- run "$W/$k" --inputs "$M" --backend cuda --compare --json
  done
  port=$(free_port)
  (
    env RANK=1 WORLD_SIZE=2 LOCAL_RANK=1 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port $P run "$W/u2" --inputs "$M" --backend cuda --timeout 120 >"$out/torchrun2-rank1.out" 2>"$out/torchrun2-rank1.err" &
    env RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port $P run "$W/u2" --inputs "$M" --backend cuda --timeout 120 --compare --json
    rc=$?; wait; exit $rc
  ) >"$out/torchrun2.out" 2>"$out/torchrun2.err"
  if [ $? = 0 ] && grep -q '"ok":true' "$out/torchrun2.out"; then pass=$((pass + 1)); echo "PASS torchrun2-u2"; else fail=$((fail + 1)); echo "FAIL torchrun2-u2"; tail -5 "$out/torchrun2.err" "$out/torchrun2-rank1.err"; fi
  # Fault drills on rank 1, --timeout 20: every rank must exit non-zero naming rank 1 (within 30 s).
  for f in load step exit kill hang; do
    MAX_S=30 check fault-$f nonzero 'paradit launch: rank 1 failed' -- env PARADIT_FAULT=$f PARADIT_FAULT_RANK=1 $P launch --nproc 2 --timeout 20 -- run "$W/u2" --inputs "$M" --backend cuda
  done
fi
echo "launch-gpu: $pass passed, $fail failed (logs in $out)"
rm -rf "$W"
[ "$fail" = 0 ]
