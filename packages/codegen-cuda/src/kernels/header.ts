/**
 * The helper header every emitted non-GEMM kernel source starts with (the lowering deduplicates
 * it across kernels of a module: it is one constant string). Only cuda_bf16.h and cuda_fp16.h are
 * included so the same text builds with nvcc and NVRTC. Helpers: rounding to narrow floats,
 * NaN-propagating max/min, GELU forms, 16-byte vector load/store of float lanes (stores through
 * inline PTX st.global.v4), and row
 * reductions over a power-of-two group of T threads (shuffles, plus shared memory above a warp).
 */
export const KERNEL_HEADER_GUARD = 'PARADIT_KERNEL_HEADER';

export const KERNEL_HEADER = `#ifndef ${KERNEL_HEADER_GUARD}
#define ${KERNEL_HEADER_GUARD}
#include <cuda_bf16.h>
#include <cuda_fp16.h>

__device__ __forceinline__ float pdt_round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }
__device__ __forceinline__ float pdt_round_f16(float x) { return __half2float(__float2half_rn(x)); }

template <typename T> __device__ __forceinline__ T pdt_max(T a, T b) { return (a > b || a != a) ? a : b; }
template <typename T> __device__ __forceinline__ T pdt_min(T a, T b) { return (a < b || a != a) ? a : b; }
template <typename T> __device__ __forceinline__ T pdt_pymod(T a, T b) {
  if (b == 0) return (T)0;
  T r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? (T)(r + b) : r;
}

__device__ __forceinline__ float pdt_gelu_tanh(float x) {
  return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}
__device__ __forceinline__ float pdt_gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f)); }
__device__ __forceinline__ double pdt_gelu_tanh_d(double x) {
  return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}
__device__ __forceinline__ double pdt_gelu_erf_d(double x) { return 0.5 * x * (1.0 + erf(x * 0.7071067811865476)); }

template <typename T> __device__ __forceinline__ float pdt_to_f(T x);
template <> __device__ __forceinline__ float pdt_to_f<float>(float x) { return x; }
template <> __device__ __forceinline__ float pdt_to_f<__half>(__half x) { return __half2float(x); }
template <> __device__ __forceinline__ float pdt_to_f<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T pdt_from_f(float x);
template <> __device__ __forceinline__ float pdt_from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ __half pdt_from_f<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 pdt_from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

/* N consecutive elements at p (aligned to N * sizeof(T) bytes, capped at 16) as float lanes. */
template <typename T, int N, typename W> __device__ __forceinline__ void pdt_ldw(const T* __restrict__ p, float* out) {
  constexpr int E = (int)(sizeof(W) / sizeof(T));
#pragma unroll
  for (int q = 0; q < N / E; q++) {
    W w = reinterpret_cast<const W*>(p)[q];
    const T* e = reinterpret_cast<const T*>(&w);
#pragma unroll
    for (int i = 0; i < E; i++) out[q * E + i] = pdt_to_f<T>(e[i]);
  }
}
template <typename T, int N> __device__ __forceinline__ void pdt_ldv(const T* __restrict__ p, float* out) {
  constexpr int B = N * (int)sizeof(T);
  if constexpr (B % 16 == 0) pdt_ldw<T, N, uint4>(p, out);
  else if constexpr (B % 8 == 0) pdt_ldw<T, N, uint2>(p, out);
  else if constexpr (B % 4 == 0) pdt_ldw<T, N, unsigned int>(p, out);
  else {
#pragma unroll
    for (int i = 0; i < N; i++) out[i] = pdt_to_f<T>(p[i]);
  }
}
/* Stores pack the lanes into 32-bit words with bit operations (not through a T array that
   aliases the vector), so the compiler keeps one 16-byte store per vector. */
template <typename T> __device__ __forceinline__ unsigned int pdt_bits(float x);
template <> __device__ __forceinline__ unsigned int pdt_bits<float>(float x) { return __float_as_uint(x); }
template <> __device__ __forceinline__ unsigned int pdt_bits<__half>(float x) { return (unsigned int)__half_as_ushort(__float2half_rn(x)); }
template <> __device__ __forceinline__ unsigned int pdt_bits<__nv_bfloat16>(float x) { return (unsigned int)__bfloat16_as_ushort(__float2bfloat16_rn(x)); }
template <typename T> __device__ __forceinline__ unsigned int pdt_word(const float* in, int w) {
  if constexpr (sizeof(T) == 4) return pdt_bits<T>(in[w]);
  else return pdt_bits<T>(in[2 * w]) | (pdt_bits<T>(in[2 * w + 1]) << 16);
}
template <typename T, int N> __device__ __forceinline__ void pdt_stv(T* __restrict__ p, const float* in) {
  constexpr int B = N * (int)sizeof(T);
  if constexpr (B % 16 == 0) {
#pragma unroll
    for (int q = 0; q < B / 16; q++) {
      /* Inline PTX: NVVM may split a uint4 store into 32-bit stores when it cannot prove the
         alignment of a kernel parameter; the emitter guarantees 16-byte alignment here. */
      asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(reinterpret_cast<uint4*>(p) + q), "r"(pdt_word<T>(in, 4 * q)),
                   "r"(pdt_word<T>(in, 4 * q + 1)), "r"(pdt_word<T>(in, 4 * q + 2)), "r"(pdt_word<T>(in, 4 * q + 3)));
    }
  } else if constexpr (B % 8 == 0) {
#pragma unroll
    for (int q = 0; q < B / 8; q++) reinterpret_cast<uint2*>(p)[q] = make_uint2(pdt_word<T>(in, 2 * q), pdt_word<T>(in, 2 * q + 1));
  } else if constexpr (B % 4 == 0) {
#pragma unroll
    for (int q = 0; q < B / 4; q++) reinterpret_cast<unsigned int*>(p)[q] = pdt_word<T>(in, q);
  } else {
#pragma unroll
    for (int i = 0; i < N; i++) p[i] = pdt_from_f<T>(in[i]);
  }
}

/* Sum / max over a group of T threads (T a power of two; groups are T-aligned in the block).
   Every thread of the block must call it. red: shared scratch of blockDim.x / 32 floats. */
template <int T> __device__ __forceinline__ float pdt_row_sum(float v, float* red) {
#pragma unroll
  for (int o = (T < 32 ? T : 32) / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if constexpr (T > 32) {
    const int w = threadIdx.x >> 5;
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[w] = v;
    __syncthreads();
    const int first = (threadIdx.x / T) * (T / 32);
    v = 0.0f;
#pragma unroll
    for (int i = 0; i < T / 32; i++) v += red[first + i];
  }
  return v;
}
template <int T> __device__ __forceinline__ float pdt_row_max(float v, float* red) {
#pragma unroll
  for (int o = (T < 32 ? T : 32) / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if constexpr (T > 32) {
    const int w = threadIdx.x >> 5;
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[w] = v;
    __syncthreads();
    const int first = (threadIdx.x / T) * (T / 32);
    v = red[first];
#pragma unroll
    for (int i = 1; i < T / 32; i++) v = fmaxf(v, red[first + i]);
  }
  return v;
}
#endif
`;
