#!/usr/bin/env bash
# GPU conformance of the ONNX node tests: on the GPU machine, every case the interpreter passes
# (packed here by `node bench/conformance/pack.mjs`) goes through `paradit check --backend cuda`.
# Carry .gpu and .gpu-work/conformance. Usage: bash bench/conformance/run-gpu.sh [JOBS] [SHARD i/n]
set -u -o pipefail
. .gpu/setup.sh
OUT=${OUT:-/tmp/paradit-conformance} node bench/conformance/gpu-run.mjs .gpu-work/conformance --jobs "${1:-12}" --shard "${2:-0/1}" --timeout "${TIMEOUT:-240}"
