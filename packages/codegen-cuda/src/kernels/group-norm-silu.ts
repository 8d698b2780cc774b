/**
 * GroupNorm (+ per-channel affine, + optional SiLU) as one kernel: the pattern both torch exporters
 * write, Reshape [B,C,...] -> [B,G,N] -> InstanceNormalization(s, t) -> Reshape back -> Mul(gamma)
 * -> Add(beta) [-> silu], with N = C/G * (spatial size).
 *
 * One block of 1024 threads per (b, g); a group is N contiguous elements of the NCHW input. Two
 * passes of fp32 statistics (the mean, then the mean squared deviation: no E[x^2] - mean^2
 * cancellation), then one pass that writes y; 16-byte loads and stores of 8 elements where the
 * spatial size is a multiple of 8 and x, y are 16-byte aligned (checked at run time). Each step
 * rounds to the storage dtype where the unfused nodes would (InstanceNormalization's output, the
 * Mul, the Add), so a bf16 plan stays close to its per-node reference; fp32 plans round nowhere.
 */
import { KERNEL_HEADER } from './header';

export interface GroupNormSpec {
  readonly dtype: 'f32' | 'bf16' | 'f16';
  /** B * G blocks. */
  readonly B: number;
  readonly G: number;
  /** Channels per group and the spatial size: N = CPG * HW. */
  readonly CPG: number;
  readonly HW: number;
  readonly eps: number;
  readonly silu: boolean;
}

export const GROUP_NORM_THREADS = 1024;

const GN_GUARD = 'PARADIT_GROUP_NORM_SILU';

export const GROUP_NORM_HEADER = `#ifndef ${GN_GUARD}
#define ${GN_GUARD}
template <typename T> __device__ __forceinline__ float pdt_gn_rnd(float x) { return pdt_to_f<T>(pdt_from_f<T>(x)); }
/* x, y: [B, G, CPG * HW]; s, t: [G] (InstanceNormalization's scale and bias); gamma, beta: [G * CPG]. */
template <typename T, int G, int CPG, int HW, bool SILU, bool VEC>
__device__ __forceinline__ void pdt_group_norm_body(const T* __restrict__ x, const T* __restrict__ s, const T* __restrict__ t,
                                                    const T* __restrict__ gamma, const T* __restrict__ beta, T* __restrict__ y,
                                                    float eps) {
  constexpr long long N = (long long)CPG * HW;
  constexpr int NT = ${GROUP_NORM_THREADS};
  __shared__ float red[NT / 32];
  const long long base = (long long)blockIdx.x * N;
  const int g = blockIdx.x % G;
  const T* xg = x + base;
  /* VEC: 8 consecutive elements per load and store, all of one channel (HW % 8 == 0); a group
     starts at a multiple of N elements, so x and y 16-byte aligned keep every group aligned. */
  constexpr int V = VEC ? 8 : 1;
  float acc = 0.0f;
  for (long long i = (long long)threadIdx.x * V; i < N; i += (long long)NT * V) {
    float v[V];
    if constexpr (VEC) pdt_ldv<T, 8>(xg + i, v); else v[0] = pdt_to_f<T>(xg[i]);
#pragma unroll
    for (int j = 0; j < V; j++) acc += v[j];
  }
  const float mean = pdt_row_sum<NT>(acc, red) / (float)N;
  float dev = 0.0f;
  for (long long i = (long long)threadIdx.x * V; i < N; i += (long long)NT * V) {
    float v[V];
    if constexpr (VEC) pdt_ldv<T, 8>(xg + i, v); else v[0] = pdt_to_f<T>(xg[i]);
#pragma unroll
    for (int j = 0; j < V; j++) dev += (v[j] - mean) * (v[j] - mean);
  }
  const float var = pdt_row_sum<NT>(dev, red) / (float)N;
  const float rstd = rsqrtf(var + eps);
  const float sg = pdt_to_f<T>(s[g]) * rstd, tg = pdt_to_f<T>(t[g]);
  for (long long i = (long long)threadIdx.x * V; i < N; i += (long long)NT * V) {
    const int c = g * CPG + (int)(i / HW);
    const float gc = pdt_to_f<T>(gamma[c]), bc = pdt_to_f<T>(beta[c]);
    float v[V];
    if constexpr (VEC) pdt_ldv<T, 8>(xg + i, v); else v[0] = pdt_to_f<T>(xg[i]);
#pragma unroll
    for (int j = 0; j < V; j++) {
      float u = pdt_gn_rnd<T>((v[j] - mean) * sg + tg);
      u = pdt_gn_rnd<T>(u * gc);
      u = pdt_gn_rnd<T>(u + bc);
      if constexpr (SILU) u = u / (1.0f + expf(-u));
      v[j] = u;
    }
    if constexpr (VEC) pdt_stv<T, 8>(y + base + i, v); else y[base + i] = pdt_from_f<T>(v[0]);
  }
}
template <typename T, int G, int CPG, int HW, bool SILU>
__device__ __forceinline__ void pdt_group_norm_silu(const T* __restrict__ x, const T* __restrict__ s, const T* __restrict__ t,
                                                    const T* __restrict__ gamma, const T* __restrict__ beta, T* __restrict__ y,
                                                    float eps) {
  if constexpr (HW % 8 == 0) {
    if ((((unsigned long long)x | (unsigned long long)y) & 15ull) == 0) {
      pdt_group_norm_body<T, G, CPG, HW, SILU, true>(x, s, t, gamma, beta, y, eps);
      return;
    }
  }
  pdt_group_norm_body<T, G, CPG, HW, SILU, false>(x, s, t, gamma, beta, y, eps);
}
#endif
`;

const CTYPE = { f32: 'float', bf16: '__nv_bfloat16', f16: '__half' } as const;

/** Pointer parameters in order: x, s, t, gamma, beta, y; then the f32 epsilon. */
export function emitGroupNormKernel(name: string, s: GroupNormSpec): { entry: string; source: string; grid: readonly [number, number, number]; block: readonly [number, number, number] } {
  const T = CTYPE[s.dtype];
  const body =
    `extern "C" __global__ void __launch_bounds__(${GROUP_NORM_THREADS}) ${name}(const ${T}* __restrict__ x, const ${T}* __restrict__ s, ` +
    `const ${T}* __restrict__ t, const ${T}* __restrict__ gamma, const ${T}* __restrict__ beta, ${T}* __restrict__ y, float eps) {\n` +
    `  pdt_group_norm_silu<${T}, ${s.G}, ${s.CPG}, ${s.HW}, ${s.silu}>(x, s, t, gamma, beta, y, eps);\n}\n`;
  return { entry: name, source: `${KERNEL_HEADER}\n${GROUP_NORM_HEADER}\n${body}`, grid: [s.B * s.G, 1, 1], block: [GROUP_NORM_THREADS, 1, 1] };
}
