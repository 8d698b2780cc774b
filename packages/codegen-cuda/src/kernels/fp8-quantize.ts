/**
 * The row-quantize kernel of fp8 plans: quantize_fp8_rows (ops/paradit-fp8.ts in @paradit/ir) as
 * one CUDA kernel, one thread block per row: a block-wide absolute maximum (a NaN or infinity
 * anywhere in the row makes the scale NaN, as the reference says), s = amax / 448 with IEEE
 * division (1 for a zero row), then q = e4m3(x / s) through PTX `cvt.rn.satfinite.e4m3x2.f32`
 * (round to nearest even, saturating at +-448, NaN stays NaN: the reference's rounding). No
 * cuda_fp8.h, so the text builds with NVRTC as well as nvcc.
 *
 * Standalone for now: fusing the quantization into the producing norm / modulate / activation
 * kernel (the goal) needs the fragment emitter to write a second, e4m3 output and a
 * per-row scale; docs/fp8.md lists it as the next step. This kernel reads x once more from L2.
 */
import type { Node } from '@paradit/ir';
import type { EmittedKernel } from '../kernel-types';
import { KERNEL_HEADER } from './header';
import { CodegenError } from './codegen-error';

const THREADS = 256;

const C_TYPE: Readonly<Record<string, string>> = { f32: 'float', bf16: '__nv_bfloat16', f16: '__half' };

/** The device helpers (one constant string: the module deduplicates it). */
export const FP8_QUANTIZE_HELPERS = `#ifndef PARADIT_FP8_QUANTIZE
#define PARADIT_FP8_QUANTIZE
/* fp32 -> e4m3 (OCP "fn") bits: round to nearest even, saturate to +-448, NaN -> 0x7f. */
__device__ __forceinline__ unsigned char pdt_e4m3(float v) {
  unsigned short r;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(0.0f), "f"(v));
  return (unsigned char)(r & 0xff);
}
/* Block-wide max of a (non-negative) and OR of bad over ${THREADS} threads; every thread gets the result. */
__device__ __forceinline__ void pdt_block_amax(float& a, int& bad) {
  __shared__ float sa[32];
  __shared__ int sb[32];
  for (int o = 16; o > 0; o >>= 1) {
    a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
    bad |= __shfl_xor_sync(0xffffffffu, bad, o);
  }
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
  if (l == 0) { sa[w] = a; sb[w] = bad; }
  __syncthreads();
  if (w == 0) {
    const int nw = (int)(blockDim.x >> 5);
    a = l < nw ? sa[l] : 0.0f;
    bad = l < nw ? sb[l] : 0;
    for (int o = 16; o > 0; o >>= 1) {
      a = fmaxf(a, __shfl_xor_sync(0xffffffffu, a, o));
      bad |= __shfl_xor_sync(0xffffffffu, bad, o);
    }
    if (l == 0) { sa[0] = a; sb[0] = bad; }
  }
  __syncthreads();
  a = sa[0];
  bad = sb[0];
}
#endif
`;

/** The kernel source for input element type `ct` and entry `entry`. */
export function fp8QuantizeSource(entry: string, ct: string): string {
  return `${KERNEL_HEADER}
${FP8_QUANTIZE_HELPERS}
/* quantize_fp8_rows: x [rows, K] (${ct}) -> q [rows, K] e4m3, s [rows] f32; grid = rows, block = ${THREADS}. */
extern "C" __global__ void __launch_bounds__(${THREADS}) ${entry}(const ${ct}* __restrict__ x, unsigned char* __restrict__ q, float* __restrict__ s, int K) {
  const long long row = blockIdx.x;
  const ${ct}* xr = x + row * K;
  unsigned char* qr = q + row * K;
  float a = 0.0f;
  int bad = 0;
  for (int i = threadIdx.x; i < K; i += blockDim.x) {
    const float v = fabsf(pdt_to_f<${ct}>(xr[i]));
    if (!(v <= 3.402823466e38f)) bad = 1; /* NaN or infinity */
    else a = fmaxf(a, v);
  }
  pdt_block_amax(a, bad);
  const float sc = bad ? __int_as_float(0x7fc00000) : (a == 0.0f ? 1.0f : __fdiv_rn(a, 448.0f));
  if (threadIdx.x == 0) s[row] = sc;
  for (int i = threadIdx.x; i < K; i += blockDim.x) qr[i] = pdt_e4m3(__fdiv_rn(pdt_to_f<${ct}>(xr[i]), sc));
}
`;
}

/** The kernel computing one quantize_fp8_rows node. */
export function emitFp8Quantize(node: Node): EmittedKernel {
  const x = node.inputs[0]!;
  const [q, s] = node.outputs as [typeof x, typeof x];
  const ct = C_TYPE[x.dtype];
  if (!ct) throw CodegenError.at(node, `x is ${x.dtype}; the row-quantize kernel reads f32, bf16 or f16`);
  const shape = x.shape as number[];
  const K = shape[shape.length - 1]!;
  const rows = shape.slice(0, -1).reduce((p, d) => p * d, 1);
  if (rows > 2147483647 || K > 2147483647) throw CodegenError.at(node, `${rows} rows of ${K} exceed the grid`);
  const entry = `pdt_fp8_quantize_rows_${x.dtype}`;
  return {
    entry,
    source: fp8QuantizeSource(entry, ct),
    grid: [Math.max(1, rows), 1, 1],
    block: [THREADS, 1, 1],
    smem: 0,
    args: [
      { kind: 'value', value: x },
      { kind: 'value', value: q },
      { kind: 'value', value: s },
      { kind: 'i32', v: K },
    ],
    covers: [node],
    reads: [x],
    writes: [q, s],
  };
}

const DEQUANT_THREADS = 256;

/**
 * The dequantize kernel source (--comm-dtype fp8: the receiving side of an e4m3 collective): one
 * thread per element, y = (out type)(e4m3_to_f32(q) * s[row]). e4m3 -> f16 is exact (PTX
 * `cvt.rn.f16x2.e4m3x2`, sm_89+), so the only roundings are the fp32 product and the output cast,
 * the reference's two.
 */
export function fp8DequantizeSource(entry: string, ot: string): string {
  return `${KERNEL_HEADER}
#ifndef PARADIT_FP8_DEQUANTIZE
#define PARADIT_FP8_DEQUANTIZE
__device__ __forceinline__ float pdt_e4m3_to_f(unsigned char b) {
  unsigned int r;
  const unsigned short in = b;
  asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(r) : "h"(in));
  return __half2float(__ushort_as_half((unsigned short)(r & 0xffffu)));
}
#endif
/* dequantize_fp8_rows: q [rows, K] e4m3, s [rows] f32 -> y [rows, K] (${ot}); one thread per element. */
extern "C" __global__ void __launch_bounds__(${DEQUANT_THREADS}) ${entry}(const unsigned char* __restrict__ q, const float* __restrict__ s, ${ot}* __restrict__ y, long long n, int K) {
  const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  y[i] = pdt_from_f<${ot}>(__fmul_rn(pdt_e4m3_to_f(q[i]), s[i / K]));
}
`;
}

/** The kernel computing one dequantize_fp8_rows node. */
export function emitFp8Dequantize(node: Node): EmittedKernel {
  const [q, s] = node.inputs as [typeof node.outputs[0], typeof node.outputs[0]];
  const y = node.outputs[0]!;
  const ot = C_TYPE[y.dtype];
  if (!ot) throw CodegenError.at(node, `y is ${y.dtype}; the dequantize kernel writes f32, bf16 or f16`);
  const shape = q.shape as number[];
  const K = shape[shape.length - 1]!;
  const n = shape.reduce((p, d) => p * d, 1);
  const blocks = Math.ceil(n / DEQUANT_THREADS);
  if (blocks > 2147483647 || K > 2147483647 || K < 1) throw CodegenError.at(node, `${n} elements in rows of ${K} do not fit the grid`);
  const entry = `pdt_fp8_dequantize_rows_${y.dtype}`;
  return {
    entry,
    source: fp8DequantizeSource(entry, ot),
    grid: [Math.max(1, blocks), 1, 1],
    block: [DEQUANT_THREADS, 1, 1],
    smem: 0,
    args: [
      { kind: 'value', value: q },
      { kind: 'value', value: s },
      { kind: 'value', value: y },
      { kind: 'i64', v: n },
      { kind: 'i32', v: K },
    ],
    covers: [node],
    reads: [q, s],
    writes: [y],
  };
}
