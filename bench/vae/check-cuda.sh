#!/usr/bin/env bash
# The VAE decoder on one GPU, in one device call (none of it has run on a GPU yet: the conv and
# GroupNorm kernels, kernels/conv-igemm.ts and group-norm-silu.ts, are compile-checked only):
#   1. the tiny VAE decoders (tests/vae/*): `check --backend cuda` with fp32 and bf16 plans against
#      PyTorch's decode (tolerances 1e-3 and 5e-2; --debug-instrs on a failure names the first
#      instruction that diverges), and `decode --backend cuda` of each plan to a PNG, its PSNR
#      against PyTorch's decode mapped the pipeline's way (issue 15: >= 40 dB for bf16 plans);
#   2. unless FULL=0: the full-size FLUX.1-dev VAE decoder (bench/vae/full_decode.py export: seeded
#      random weights, latent 1x16x128x128 -> 1024x1024) compiled to a bf16 plan, `run --compare
#      --bench N` (rel L2 against PyTorch's fp32 decode, median of N CUDA-graph replays) with the
#      GPU memory sampled by nvidia-smi, `decode` to a PNG and its PSNR, then diffusers'
#      AutoencoderKL.decode eager and torch.compile (bf16, same weights, CUDA events) in the same call.
# Prepare here: `bash scripts/pack-gpu.sh; mkdir -p .gpu-work/baselines && cp ../shared/baselines/anchor_py.tar.xz
# .gpu-work/baselines/`. On the device (carry [".gpu", ".gpu-work/baselines"]; tests/vae and bench/
# travel with the working tree): `bash bench/vae/check-cuda.sh` (STEPS=N replays, default 20).
# Logs to $OUT/vae.log (OUT default /tmp/paradit-vae), the summary to stdout and $OUT/vae.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
command -v node >/dev/null || . .gpu/setup.sh
out=${OUT:-/tmp/paradit-vae}
W=${WORK:-/tmp/paradit-vae-work}
mkdir -p "$out" "$W"
L="$out/vae.log"
P="node .gpu/paradit.cjs"
PY=bench/vae/full_decode.py
N=${STEPS:-20}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$L"
if [ -f .gpu-work/baselines/anchor_py.tar.xz ]; then mkdir -p /tmp/anchor && tar -xJf .gpu-work/baselines/anchor_py.tar.xz -C /tmp/anchor; fi
status=0
: >"$W/summary.txt"

for dir in tests/vae/*/; do
  d=${dir%/}
  for dtype in fp32 bf16; do
    echo "== $d $dtype" | tee -a "$L"
    if ! $P check "$d" --backend cuda --dtype "$dtype" 2>&1 | tee -a "$L"; then
      status=1
      $P check "$d" --backend cuda --dtype "$dtype" --debug-instrs 2>&1 | tail -20 | tee -a "$L"
    fi
    plan="$W/$(basename "$d")-$dtype"
    $P compile "$d" -o "$plan" --dtype "$dtype" --no-progress >>"$L" 2>&1 || { status=1; continue; }
    if $P decode "$plan" --latents "$d/test_data_set_0/input_0.pb" -o "$out/$(basename "$d")-$dtype.png" --no-latent-scaling --backend cuda 2>&1 | tee -a "$L"; then
      python3 "$PY" psnr "$out/$(basename "$d")-$dtype.png" "$d/test_data_set_0/output_0.pb" | tee -a "$L" "$W/summary.txt"
    else
      status=1
    fi
    rm -rf "$plan"
  done
done

if [ "${FULL:-1}" != 0 ]; then
  echo "== full-size FLUX.1-dev VAE decode (1024x1024)" | tee -a "$L"
  FULL_DIR="$W/flux_vae_full"
  [ -f "$FULL_DIR/model.onnx" ] || python3 "$PY" export "$W" 2>&1 | tee -a "$L"
  t=$(date +%s)
  $P compile "$FULL_DIR" -o "$W/full-plan" --dtype bf16 --no-progress 2>&1 | tee -a "$L"
  echo "compile $(($(date +%s) - t)) s" | tee -a "$L"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$W/mem.txt" 2>/dev/null &
  mem=$!
  $P run "$W/full-plan" --inputs "$FULL_DIR" --compare --bench "$N" --backend cuda --no-verify-weights --json >"$W/run.json" 2>>"$L" || status=1
  kill "$mem" 2>/dev/null
  cat "$W/run.json" | tee -a "$L"
  $P decode "$W/full-plan" --latents "$FULL_DIR/test_data_set_0/input_0.pb" -o "$out/flux_vae_full-bf16.png" --no-latent-scaling --backend cuda 2>&1 | tee -a "$L" &&
    python3 "$PY" psnr "$out/flux_vae_full-bf16.png" "$FULL_DIR/test_data_set_0/output_0.pb" | tee -a "$L" "$W/summary.txt"
  timeout "${TORCH_TIMEOUT:-400}" python3 "$PY" bench 10 >"$W/torch.out" 2>>"$L"
  cat "$W/torch.out" >>"$L"
  node -e '
const fs = require("fs");
const rd = (f) => { try { const l = fs.readFileSync(f, "utf8").trim().split("\n").filter((x) => x.includes("{")).pop(); return JSON.parse(l.slice(l.indexOf("{"))); } catch { return {}; } };
const run = rd(process.argv[1]), th = rd(process.argv[2]);
const plan = JSON.parse(fs.readFileSync(process.argv[3] + "/plan.json", "utf8"));
const mem = (() => { try { return Math.max(...fs.readFileSync(process.argv[4], "utf8").trim().split("\n").map(Number).filter((x) => x > 0)); } catch { return null; } })();
const res = { paraditMs: run.bench && run.bench.medianMs, relL2: run.checks && run.checks[0] && run.checks[0].relL2, paraditPeakActivationBytes: plan.stats.peakActivationBytes, nvidiaSmiPeakMiB: mem,
  eagerMs: th.eager && th.eager.medianMs, compileMs: th.compile && th.compile.medianMs, eagerPeakActivationBytes: th.eager && th.eager.peakActivationBytes, compilePeakActivationBytes: th.compile && th.compile.peakActivationBytes, device: th.device };
fs.writeFileSync(process.argv[5], JSON.stringify(res, null, 1));
const f = (x) => (typeof x === "number" ? x.toFixed(2).padStart(9) : "        -");
const g = (x) => (typeof x === "number" ? (x / 2 ** 30).toFixed(2) + " GiB" : "-");
console.log(`full FLUX.1-dev VAE decode bf16, 1x16x128x128 -> 1x3x1024x1024 (${res.device || "?"}), median ms:`);
console.log(`  paradit plan            ${f(res.paraditMs)}   rel L2 vs fp32 torch ${res.relL2 ?? "-"}, peak activations ${g(res.paraditPeakActivationBytes)} (nvidia-smi peak ${mem ?? "-"} MiB)`);
console.log(`  diffusers eager         ${f(res.eagerMs)}   peak activations ${g(res.eagerPeakActivationBytes)}`);
console.log(`  diffusers torch.compile ${f(res.compileMs)}   peak activations ${g(res.compilePeakActivationBytes)}`);
console.log(`  speedup vs compile      ${res.paraditMs && res.compileMs ? (res.compileMs / res.paraditMs).toFixed(2) + "x" : "-"} (goal >= 1.3x)`);
' "$W/run.json" "$W/torch.out" "$W/full-plan" "$W/mem.txt" "$out/vae.json" | tee -a "$L"
  rm -rf "$W/full-plan"
fi
echo "PSNR (dB):" && cat "$W/summary.txt"
echo "exit $status"
exit $status
