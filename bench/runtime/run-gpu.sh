#!/usr/bin/env bash
# On the device machine (after `bash scripts/pack-gpu.sh && node bench/runtime/build.mjs` here, with
# carry [".gpu", ".gpu-work/runtime"]): the CUDA runtime smoke test, then the GEMM bench vs torch.
# Logs go to $OUT when set. Usage: bash bench/runtime/run-gpu.sh [smoke|gemm|all]
set -o pipefail
. .gpu/setup.sh
out=${OUT:-/tmp}
what=${1:-all}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader || true
rc=0
if [ "$what" = all ] || [ "$what" = smoke ]; then
  node .gpu-work/runtime/smoke.cjs /tmp/paradit-smoke 2>&1 | tee "$out/smoke.log" || rc=1
  # run-plan.cjs end to end on a plan directory written by the smoke test (with test data).
  node .gpu-work/runtime/run-plan.cjs /tmp/paradit-smoke/smoke-bf16 --data /tmp/paradit-smoke/smoke-bf16/test_data_set_0 --steps 1 --bench 50 2>&1 | tee "$out/run-plan.log" || rc=1
fi
if [ "$what" = all ] || [ "$what" = gemm ]; then
  node .gpu-work/runtime/gemm-bench.cjs --json "$out/gemm.json" 2>&1 | tee "$out/gemm.log" || rc=1
fi
exit $rc
