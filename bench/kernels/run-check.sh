#!/usr/bin/env bash
# GPU check of the non-GEMM kernels: builds the driver, compiles each case's kernels.cu to an
# sm_90a cubin, runs it, and prints a pass/fail table (errors against the CPU interpreter or
# PyTorch) with kernel time and bandwidth next to a PyTorch baseline for the FLUX-sized cases.
# Usage (on the GPU machine): bash bench/kernels/run-check.sh [.gpu-work/kernels-check]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-.gpu-work/kernels-check}"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
export LD_LIBRARY_PATH="/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
"$NVCC" -O2 -std=c++17 -o "$dir/driver" "$here/driver.cpp" -L/usr/local/cuda/lib64 -L/usr/local/cuda/lib64/stubs -lcuda
status=0
while read -r name; do
  [ -n "$name" ] || continue
  c="$dir/$name"
  if ! "$NVCC" -gencode arch=compute_90a,code=sm_90a -std=c++17 -cubin -o "$c/kernels.cubin" "$c/kernels.cu" 2> "$c/nvcc.log"; then
    echo "COMPILE FAILED: $name"; head -20 "$c/nvcc.log"; status=1; continue
  fi
  if ! "$dir/driver" "$c" > "$c/driver.log" 2>&1; then echo "RUN FAILED: $name"; cat "$c/driver.log"; status=1; fi
done < "$dir/cases.txt"
python3 "$here/compare.py" "$dir" || status=1
exit $status
