#!/bin/bash
# On the GPU machine, from the repository root: bash .gpu-work/attention/run.sh
set -o pipefail
dir=$(dirname "$0")
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
PYTHONUNBUFFERED=1 python3 "$dir/run.py" "$dir" 2>&1 | tee "${OUT:-/tmp}/attention-log.txt"
