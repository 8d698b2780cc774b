#!/usr/bin/env bash
# The tiny VAE decoders (tests/vae/*) on the GPU: `check --backend cuda` with fp32 and bf16 plans
# against PyTorch's decode (tolerances 1e-3 and 5e-2), and --debug-instrs on a failure to name the
# first instruction that diverges. Prepare here: `bash scripts/pack-gpu.sh`. On the device (carry
# `.gpu`; tests/vae travels with the working tree): `. .gpu/setup.sh; bash bench/vae/check-cuda.sh`.
set -uo pipefail
cd "$(dirname "$0")/../.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
status=0
for dir in tests/vae/*/; do
  for dtype in fp32 bf16; do
    echo "== ${dir%/} ${dtype}"
    if ! node .gpu/paradit.cjs check "${dir%/}" --backend cuda --dtype "$dtype"; then
      status=1
      node .gpu/paradit.cjs check "${dir%/}" --backend cuda --dtype "$dtype" --debug-instrs | tail -20
    fi
  done
done
echo "exit $status"
exit $status
