/**
 * FP8 GEMM micro-benchmark (issue 16: >= 1300 TFLOP/s on 4608x3072x12288): the runtime's FP8
 * cuBLASLt path exactly as a plan's linear_fp8 gemm takes it (toColumnMajor with scaleA/scaleB:
 * e4m3 A/B in the TN form, outer-vector per-token x per-channel f32 scales, bf16 D, fp32 compute,
 * heuristic + tuneGemms), against the bf16 gemm of the same shape in the same run; CUDA events,
 * median of 30 after 10 warm-ups. A sample of outputs is checked against a float64 host product
 * of the same e4m3 bytes and scales.
 *   node .gpu-work/fp8/gemm-fp8.cjs [M K N]      (default 4608 3072 12288; K is the reduction)
 * UNVERIFIED: written without a GPU (docs/fp8.md); run it in the next GPU session (run-gpu.sh).
 */
import { bf16BitsToF32, fp8BitsToF32 } from '@paradit/ir';
import { loadCudaRuntime } from '../../packages/runtime/src/index';
import type { GemmSpec } from '../../packages/runtime/src/cuda/gemm-layout';

const rt = loadCudaRuntime();
const WARMUP = 10;
const REPS = 30;

/** Random e4m3 bytes in [-4, 4] (finite codes only), random bf16 in [-1, 1), f32 scales near 1/64. */
const FILL_SRC = `#include <cuda_bf16.h>
__device__ unsigned pdt_hash(unsigned i, unsigned seed) { unsigned h = i * 2654435761u ^ seed; h ^= h >> 15; h *= 2246822519u; h ^= h >> 13; h *= 3266489917u; return h ^ (h >> 16); }
extern "C" __global__ void fill_e4m3(unsigned char* p, long long n, unsigned seed) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
    unsigned h = pdt_hash((unsigned)i, seed);
    p[i] = (unsigned char)((h & 0x80u) | ((h >> 8) % 0x48u)); /* sign | exponent/mantissa up to 4.0 */
  }
}
extern "C" __global__ void fill_bf16(__nv_bfloat16* p, long long n, unsigned seed) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    p[i] = __float2bfloat16_rn((pdt_hash((unsigned)i, seed) >> 8) * (2.0f / 16777216.0f) - 1.0f);
}
extern "C" __global__ void fill_scale(float* p, long long n, unsigned seed) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
    p[i] = (0.5f + (pdt_hash((unsigned)i, seed) >> 8) * (1.0f / 16777216.0f)) / 64.0f;
}`;

function main(): void {
  const [M, K, N] = process.argv.length >= 5 ? process.argv.slice(2, 5).map(Number) as [number, number, number] : [4608, 3072, 12288];
  const d = rt.cudaDriver();
  const ctx = new rt.DeviceContext(d, 0);
  const lt = rt.cublasLt();
  const arch = rt.archForDevice(ctx.info.major, ctx.info.minor);
  const mod = d.moduleLoad(rt.nvrtc().compile(FILL_SRC, 'fill.cu', rt.nvrtcOptions(arch, [])).cubin, 'fill kernels');
  const stream = d.streamCreate();
  const ws = d.memAlloc(rt.GEMM_WORKSPACE_BYTES, 'workspace');
  const e0 = d.eventCreate();
  const e1 = d.eventCreate();
  const params = new rt.NativeBlock(64);
  const fill = (name: string, p: bigint, n: number, seed: number): void => {
    const f = d.getFunction(mod, name);
    params.view.setBigUint64(0, p, true);
    params.view.setBigInt64(8, BigInt(n), true);
    params.view.setUint32(16, seed, true);
    for (let i = 0; i < 3; i++) params.view.setBigUint64(24 + 8 * i, params.addr + BigInt([0, 8, 16][i]!), true);
    d.call('cuLaunchKernel', [f, 132 * 8, 1, 1, 256, 1, 1, 0, stream, params.addr + 24n, null]);
    d.sync(stream);
  };
  const median = (g: InstanceType<typeof rt.PreparedGemm>): number => {
    for (let i = 0; i < WARMUP; i++) g.launch(stream);
    d.sync(stream);
    const t: number[] = [];
    for (let i = 0; i < REPS; i++) {
      d.call('cuEventRecord', [e0, stream]);
      g.launch(stream);
      d.call('cuEventRecord', [e1, stream]);
      d.call('cuEventSynchronize', [e1]);
      t.push(d.elapsedMs(e0, e1));
    }
    return t.sort((x, y) => x - y)[REPS >> 1]!;
  };
  console.log(`device: ${ctx.info.name}; cuBLASLt ${lt.version()}; M=${M} K=${K} N=${N}`);
  const q = d.memAlloc(M * K, 'q');
  const w = d.memAlloc(N * K, 'wq');
  const s = d.memAlloc(M * 4, 's');
  const sw = d.memAlloc(N * 4, 'ws');
  const out = d.memAlloc(M * N * 2, 'out');
  fill('fill_e4m3', q, M * K, 1);
  fill('fill_e4m3', w, N * K, 2);
  fill('fill_scale', s, M, 3);
  fill('fill_scale', sw, N, 4);
  const fp8: GemmSpec = {
    m: M, n: N, k: K, batch: 1,
    a: { ptr: q, dtype: 'f8e4m3fn', rows: M, cols: K, ld: K, batchStride: 0 }, transA: false,
    b: { ptr: w, dtype: 'f8e4m3fn', rows: N, cols: K, ld: K, batchStride: 0 }, transB: true,
    out: { ptr: out, dtype: 'bf16', rows: M, cols: N, ld: N, batchStride: 0 },
    epilogue: 'none', alpha: 1, scaleA: s, scaleB: sw,
  };
  const g8 = lt.prepare(rt.toColumnMajor(fp8), ws, rt.GEMM_WORKSPACE_BYTES);
  rt.tuneGemms(d, stream, [g8], { minFlops: 0 });
  g8.launch(stream);
  d.sync(stream);
  // Check 64 sampled outputs against a float64 host product of the same bytes.
  const hq = new Uint8Array(M * K), hw = new Uint8Array(N * K), hs = new Float32Array(M), hsw = new Float32Array(N), ho = new Uint16Array(M * N);
  d.dtoh(hq, q);
  d.dtoh(hw, w);
  d.dtoh(new Uint8Array(hs.buffer), s);
  d.dtoh(new Uint8Array(hsw.buffer), sw);
  d.dtoh(new Uint8Array(ho.buffer), out);
  let num = 0, den = 0;
  for (let t = 0; t < 64; t++) {
    const i = (t * 7919) % M, j = (t * 104729) % N;
    let acc = 0;
    for (let k = 0; k < K; k++) acc += fp8BitsToF32('f8e4m3fn', hq[i * K + k]!) * fp8BitsToF32('f8e4m3fn', hw[j * K + k]!);
    const want = acc * hs[i]! * hsw[j]!;
    const got = bf16BitsToF32(ho[i * N + j]!);
    num += (got - want) ** 2;
    den += want ** 2;
  }
  const t8 = median(g8);
  const bf = d.memAlloc(M * K * 2, 'a bf16');
  const bw = d.memAlloc(N * K * 2, 'w bf16');
  fill('fill_bf16', bf, M * K, 5);
  fill('fill_bf16', bw, N * K, 6);
  const g16 = lt.prepare(rt.toColumnMajor({ ...fp8, a: { ...fp8.a, ptr: bf, dtype: 'bf16' }, b: { ...fp8.b, ptr: bw, dtype: 'bf16' }, scaleA: undefined, scaleB: undefined }), ws, rt.GEMM_WORKSPACE_BYTES);
  rt.tuneGemms(d, stream, [g16], { minFlops: 0 });
  const t16 = median(g16);
  const tf = (ms: number): number => (2 * M * N * K) / (ms * 1e-3) / 1e12;
  const res = { device: ctx.info.name, m: M, k: K, n: N, fp8Ms: t8, fp8Tflops: tf(t8), bf16Ms: t16, bf16Tflops: tf(t16), speedup: t16 / t8, sampleRelL2: Math.sqrt(num / den), fp8Candidates: g8.candidates };
  console.log(`FP8  ${t8.toFixed(3)} ms  ${res.fp8Tflops.toFixed(0)} TFLOP/s (sample rel L2 ${res.sampleRelL2.toExponential(2)}, ${g8.candidates} candidates)`);
  console.log(`bf16 ${t16.toFixed(3)} ms  ${res.bf16Tflops.toFixed(0)} TFLOP/s; FP8 speedup ${res.speedup.toFixed(2)}x`);
  console.log(JSON.stringify(res));
}

main();
