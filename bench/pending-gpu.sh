#!/usr/bin/env bash
# The one-GPU checks that are written but have not run on a GPU yet, in priority order, each
# bounded so that one device call (<= 600 s) ends with whatever finished. Prepare here:
#   bash scripts/pack-gpu.sh; node bench/multi-gpu/build.mjs; node bench/flux/build.mjs;
#   node bench/flux-full/build.mjs; node bench/fp8/build.mjs; mkdir -p .gpu-work/fixtures .gpu-work/baselines;
#   cp -r ../shared/fixtures/flux-dev-2x4 .gpu-work/fixtures/; cp ../shared/baselines/anchor_* .gpu-work/baselines/
#   (xz the .cjs bundles in .gpu-work/*/ to stay under the 64 MiB carry; this script unpacks them)
# Carry [".gpu", ".gpu-work/multi-gpu", ".gpu-work/flux", ".gpu-work/fixtures", ".gpu-work/flux-full",
# ".gpu-work/baselines"] (+ ".gpu-work/fp8" for `third`). Usage: bash bench/pending-gpu.sh
# [first|second|third]: `first` = fill check, seed exports, VAE (tiny fixtures, full-size decode
# beside diffusers), launched ranks; `second` = full FLUX.1-dev with diffusers beside it, then
# flux-dev-2x4 U2/R2 vs one GPU; `third` = fp8 plans (fixtures, flux-dev-2x4 fp8 vs bf16 step,
# the FP8 GEMM, the quality report). Summaries go to $OUT/*.txt, everything to $OUT/pending.tgz.
set -u -o pipefail
for f in .gpu-work/*/*.xz; do [ -f "$f" ] && xz -d -f "$f"; done
. .gpu/setup.sh
export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
R=/tmp/pending; mkdir -p $R
left() { local l=$(( $1 - SECONDS )); [ $l -lt 10 ] && l=10; echo $l; }
case "${1:-first}" in
  first)
    OUT=$R/gen timeout $(left 70) bash bench/flux-full/gen-check.sh > $R/gen.txt 2>&1
    OUT=$R/seed timeout $(left 200) bash bench/seed/seed-cuda-gpu.sh > $R/seed.txt 2>&1
    timeout $(left 260) bash bench/vae/check-cuda.sh > $R/vae.txt 2>&1
    MODEL=tests/seed/flux_dynamo18 OUT=$R/launch CHECK_TIMEOUT=40 timeout $(left 380) bash bench/multi-gpu/launch-gpu.sh > $R/launch.txt 2>&1
    OUT=$R/smoke SMOKE_TIMEOUT=120 timeout $(left 560) bash bench/multi-gpu/run-gpu.sh all > $R/smoke.txt 2>&1
    ;;
  second)
    OUT=$R/full STEPS=20 TORCH_TIMEOUT=240 timeout $(left 480) bash bench/flux/full-run.sh > $R/full.txt 2>&1
    OUT=$R/flux STEPS=20 timeout $(left 585) bash bench/multi-gpu/flux-sharded-gpu.sh > $R/flux.txt 2>&1
    ;;
  third)
    OUT=$R/fp8 STEPS=20 timeout $(left 585) bash bench/fp8/run-gpu.sh > $R/fp8.txt 2>&1
    ;;
esac
mkdir -p "${OUT:-/tmp/out}"; cp $R/*.txt "${OUT:-/tmp/out}"/ 2>/dev/null; tar -C /tmp -czf "${OUT:-/tmp/out}/pending.tgz" pending
