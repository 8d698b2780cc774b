/**
 * The FP8 gemm's scale-epilogue fallback (docs/fp8.md). cuBLASLt's outer-vector scaling
 * (OUTER_VEC_32F: a scale per row of A and per column of B) may have no algorithm on some card or
 * library version; then the gemm runs as an unscaled e4m3 x e4m3 cuBLASLt matmul with an fp32 D
 * into a scratch buffer, and the runtime's helper kernel paradit_fp8_epilogue_<dtype> applies
 *
 *   out[i, j] = act(acc[i, j] * scaleA[i] * scaleB[j] + bias[j])     (fp32, rounded once to out)
 *
 * with acc row-major [m, n] (cuBLASLt's column-major [n x m] D with ld n). The reference is
 * linear_fp8 (ops/paradit-fp8.ts in @paradit/ir); fp8EpilogueHost below is the kernel's
 * arithmetic on the host, for the test against it. One scratch serves every fallback gemm of a
 * rank: gemms and their epilogues run back to back on the compute stream (refused elsewhere).
 */
import type { PlanDType } from '../plan/schema';
import type { LtGemm } from './gemm-layout';
import type { GemmEpilogue } from './gemm-layout';
import { CudaError } from './errors';

/** cudaDataType CUDA_R_32F. */
const CUDA_R_32F = 0;

/** The epilogue's activation argument (the kernel's `act`). */
export const FP8_EPILOGUE_ACT: { readonly [K in GemmEpilogue]: number } = { none: 0, gelu_tanh: 1, gelu_erf: 2, silu: 3 };

export type Fp8OutDType = 'f32' | 'f16' | 'bf16';

export function fp8EpilogueKernelName(dtype: Fp8OutDType): string {
  return `paradit_fp8_epilogue_${dtype}`;
}

/** True when `e` is the heuristic's "no algorithm" for a descriptor (cublaslt.ts pickAlgorithm). */
export function isNoAlgorithm(e: unknown): boolean {
  return e instanceof CudaError && e.call === 'cublasLtMatmulAlgoGetHeuristic' && e.statusName === 'CUBLAS_STATUS_NOT_SUPPORTED';
}

/**
 * The unscaled form of an FP8 LtGemm: same operands and algorithm search, no scale vectors, no
 * bias, no activation, D fp32 [n x m] column-major (ld n) at `scratch`.
 */
export function unscaledFp8Gemm(g: LtGemm, scratch: bigint): LtGemm {
  if (!g.scales) throw new Error('unscaledFp8Gemm: not an FP8 gemm (no scale vectors)');
  if (g.D.batch !== 1) throw new Error(`FP8 gemm fallback: batch must be 1, got ${g.D.batch}`);
  const { scales: _s, bias: _b, ...rest } = g;
  return {
    ...rest,
    epilogue: 1, // CUBLASLT_EPILOGUE_DEFAULT
    postOp: 'none',
    D: { type: CUDA_R_32F, rows: g.D.rows, cols: g.D.cols, ld: g.D.rows, batch: 1, batchStride: 0, ptr: scratch },
  };
}

/** Bytes of fp32 scratch an m x n FP8 gemm's fallback needs. */
export function fp8ScratchBytes(m: number, n: number): number {
  return m * n * 4;
}

const SQRT_2_OVER_PI = 0.7978845608028654;

function activate(act: number, x: number): number {
  const f = Math.fround;
  switch (act) {
    case 0:
      return x;
    case 1:
      return f(0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))));
    case 2:
      throw new Error('fp8 epilogue: exact-erf GELU is not modelled on the host (JavaScript has no erf); the kernel uses erff');
    case 3:
      return f(x / (1 + Math.exp(-x)));
    default:
      throw new Error(`fp8 epilogue: unknown activation ${act}`);
  }
}

/**
 * The epilogue kernel's arithmetic on the host, in its fp32 order: ((acc * sA) * sB + bias), then
 * the activation; the caller rounds to the output dtype (Tensor.normalized), as the kernel's store does.
 */
export function fp8EpilogueHost(acc: Float32Array, m: number, n: number, scaleA: Float32Array, scaleB: Float32Array, bias: Float32Array | undefined, act: number): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const v = f(f(f(acc[i * n + j]! * scaleA[i]!) * scaleB[j]!) + (bias ? bias[j]! : 0));
      out[i * n + j] = activate(act, v);
    }
  }
  return out;
}

/** The CUDA C++ of the epilogue kernels (appended to the runtime's helper module, NVRTC). */
export const FP8_EPILOGUE_SOURCE = String.raw`
__device__ __forceinline__ float paradit_fp8_act(int act, float x) {
  if (act == 1) return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
  if (act == 2) return paradit_gelu_erf(x);
  if (act == 3) return paradit_silu(x);
  return x;
}

#define PARADIT_FP8_EPILOGUE(NAME, T)                                                               \
  extern "C" __global__ void NAME(T* out, long long ldOut, const float* acc, const float* scaleA,  \
                                  const float* scaleB, const T* bias, int hasBias, int act,         \
                                  long long m, long long n) {                                       \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < m * n;                \
         i += (long long)gridDim.x * blockDim.x) {                                                  \
      long long r = i / n, c = i % n;                                                              \
      float v = __fadd_rn(__fmul_rn(__fmul_rn(acc[i], scaleA[r]), scaleB[c]),                      \
                          hasBias ? paradit_load(bias + c) : 0.0f);                                \
      paradit_store(out + r * ldOut + c, paradit_fp8_act(act, v));                                 \
    }                                                                                              \
  }

PARADIT_FP8_EPILOGUE(paradit_fp8_epilogue_f32, float)
PARADIT_FP8_EPILOGUE(paradit_fp8_epilogue_f16, __half)
PARADIT_FP8_EPILOGUE(paradit_fp8_epilogue_bf16, __nv_bfloat16)
`;

/** The output dtype an epilogue kernel exists for, or a clear error. */
export function fp8OutDType(d: PlanDType): Fp8OutDType {
  if (d === 'f32' || d === 'f16' || d === 'bf16') return d;
  throw new Error(`FP8 gemm fallback: output dtype ${d} has no epilogue kernel (f32, f16, bf16)`);
}
