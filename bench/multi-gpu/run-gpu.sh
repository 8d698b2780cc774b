#!/usr/bin/env bash
# On the device machine (after `bash scripts/pack-gpu.sh && node bench/multi-gpu/build.mjs` here,
# with carry [".gpu", ".gpu-work/multi-gpu"]): the multi-GPU smoke test on one GPU, or with
# `ranks N` one NCCL process per GPU on an N-GPU machine. Logs go to $OUT when set.
# Usage: bash bench/multi-gpu/run-gpu.sh [all|nccl1|inproc|bench|ranks N]
set -o pipefail
. .gpu/setup.sh
out=${OUT:-/tmp}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv,noheader || true
ls /usr/lib/x86_64-linux-gnu/libnccl.so* 2>/dev/null || echo "libnccl not in /usr/lib/x86_64-linux-gnu (set NCCL_LIBRARY)"
# NVLink multicast stays off on these machines (the runtime defaults it off too; explicit here).
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
# Bounded: a hang (e.g. an NCCL abort that does not return) still leaves the PASS/FAIL lines
# printed so far in the log, and rc 124 says it timed out.
timeout -k 10 ${SMOKE_TIMEOUT:-540} node .gpu-work/multi-gpu/smoke.cjs "$@" 2>&1 | tee "$out/multi-gpu-smoke.log"
