#!/usr/bin/env bash
# GPU conformance of the ONNX node tests: on the GPU machine, every case the interpreter passes
# (packed here by `node bench/conformance/pack.mjs`) goes through `paradit check --backend cuda`.
# Carry .gpu and .gpu-work/conformance.tar.xz (or the .gpu-work/conformance folder).
# Usage: bash bench/conformance/run-gpu.sh [JOBS] [SHARD i/n]
set -u -o pipefail
. .gpu/setup.sh
dir=.gpu-work/conformance
if [ -f .gpu-work/conformance.tar.xz ]; then
  dir=/tmp/paradit-conformance-cases
  mkdir -p "$dir" && xz -dc .gpu-work/conformance.tar.xz | tar xf - -C "$dir"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
OUT=${OUT:-/tmp/paradit-conformance} node bench/conformance/gpu-run.mjs "$dir" --jobs "${1:-12}" --shard "${2:-0/1}" --timeout "${TIMEOUT:-240}"
