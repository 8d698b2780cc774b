/**
 * The runtime's own small kernels:
 *  - paradit_set_conditional (PTX, JIT-compiled by the driver): reads a plan `branch` condition
 *    (bool/u8 byte) on the device and sets the conditional graph node's value, so a captured step
 *    takes the branch without the host. It is PTX because cudaGraphSetConditional is a device
 *    runtime builtin that ptxas resolves; the PTX is what nvcc 13.0 emits for
 *      extern "C" __global__ void paradit_set_conditional(cudaGraphConditionalHandle h, const unsigned char* c)
 *      { cudaGraphSetConditional(h, c[0] != 0 ? 1u : 0u); }
 *    (compute_80, PTX ISA lowered to 8.4 = CUDA 12.4, the first with conditional nodes).
 *  - paradit_post_<op>_<dtype> (CUDA C++, NVRTC): epilogues cuBLASLt does not have (exact-erf GELU,
 *    SiLU), applied in place over a gemm's strided, batched output.
 *  - paradit_reduce_<sum|mean|max>_<dtype>: the all_reduce of ranks sharing one GPU (in-process.ts):
 *    out[i] = reduce over m of in[m*n + i]. It accumulates in double, in member order, then rounds
 *    to float and then to the dtype: the same operations, in the same order, as collectiveOverGroup
 *    (plan/collectives.ts, float64 then Float32Array then the dtype), so the bytes agree exactly.
 *    max propagates NaN and prefers +0 over -0, as Math.max does.
 *  - paradit_scale_<dtype>: p[i] *= s, the mean of an all_reduce on an NCCL without ncclAvg (< 2.10).
 *  - paradit_fp8_epilogue_<dtype>: the FP8 gemm's scale epilogue when cuBLASLt has no
 *    outer-vector-scaled algorithm (fp8-fallback.ts).
 */
import { FP8_EPILOGUE_SOURCE } from './fp8-fallback';
export const SET_CONDITIONAL_PTX = `.version 8.4
.target sm_80
.address_size 64
.extern .func cudaGraphSetConditional
(
  .param .b64 cudaGraphSetConditional_param_0,
  .param .b32 cudaGraphSetConditional_param_1
)
;
.visible .entry paradit_set_conditional(
  .param .u64 paradit_set_conditional_param_0,
  .param .u64 paradit_set_conditional_param_1
)
{
  .reg .pred %p<2>;
  .reg .b16 %rs<2>;
  .reg .b32 %r<2>;
  .reg .b64 %rd<4>;
  ld.param.u64 %rd1, [paradit_set_conditional_param_0];
  ld.param.u64 %rd2, [paradit_set_conditional_param_1];
  cvta.to.global.u64 %rd3, %rd2;
  ld.global.u8 %rs1, [%rd3];
  setp.ne.s16 %p1, %rs1, 0;
  selp.u32 %r1, 1, 0, %p1;
  {
  .param .b64 param0;
  st.param.b64 [param0+0], %rd1;
  .param .b32 param1;
  st.param.b32 [param1+0], %r1;
  call.uni cudaGraphSetConditional, (param0, param1);
  }
  ret;
}
`;

export const HELPER_KERNELS_SOURCE = String.raw`
#include <cuda_fp16.h>
#include <cuda_bf16.h>

__device__ __forceinline__ float paradit_gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
__device__ __forceinline__ float paradit_silu(float x) { return x / (1.0f + expf(-x)); }

__device__ __forceinline__ float paradit_load(const float* p) { return *p; }
__device__ __forceinline__ float paradit_load(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ float paradit_load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void paradit_store(float* p, float v) { *p = v; }
__device__ __forceinline__ void paradit_store(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void paradit_store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

#define PARADIT_POST(NAME, T, FN)                                                                   \
  extern "C" __global__ void NAME(T* out, long long rows, long long cols, long long ld,           \
                                  long long batchStride, long long batch) {                        \
    long long total = rows * cols * batch;                                                         \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;                \
         i += (long long)gridDim.x * blockDim.x) {                                                  \
      long long c = i % cols, r = (i / cols) % rows, b = i / (cols * rows);                        \
      T* p = out + b * batchStride + r * ld + c;                                                   \
      paradit_store(p, FN(paradit_load(p)));                                                       \
    }                                                                                              \
  }

PARADIT_POST(paradit_post_gelu_erf_f32, float, paradit_gelu_erf)
PARADIT_POST(paradit_post_gelu_erf_f16, __half, paradit_gelu_erf)
PARADIT_POST(paradit_post_gelu_erf_bf16, __nv_bfloat16, paradit_gelu_erf)
PARADIT_POST(paradit_post_silu_f32, float, paradit_silu)
PARADIT_POST(paradit_post_silu_f16, __half, paradit_silu)
PARADIT_POST(paradit_post_silu_bf16, __nv_bfloat16, paradit_silu)

__device__ __forceinline__ double paradit_max_js(double a, double x) {
  if (a != a || x != x) return __longlong_as_double(0x7ff8000000000000LL);
  if (x > a || (x == a && __double_as_longlong(a) < 0 && __double_as_longlong(x) >= 0)) return x;
  return a;
}

#define PARADIT_REDUCE(NAME, T, INIT, STEP, FINISH)                                                 \
  extern "C" __global__ void NAME(T* out, const T* in, int members, long long n) {                 \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;                    \
         i += (long long)gridDim.x * blockDim.x) {                                                  \
      double acc = INIT;                                                                           \
      for (int m = 0; m < members; m++) {                                                          \
        double x = (double)paradit_load(in + (long long)m * n + i);                                \
        acc = STEP;                                                                                \
      }                                                                                            \
      paradit_store(out + i, (float)(FINISH));                                                     \
    }                                                                                              \
  }

#define PARADIT_REDUCE_ALL(T, SUFFIX)                                                               \
  PARADIT_REDUCE(paradit_reduce_sum_##SUFFIX, T, 0.0, acc + x, acc)                                \
  PARADIT_REDUCE(paradit_reduce_mean_##SUFFIX, T, 0.0, acc + x, acc / members)                     \
  PARADIT_REDUCE(paradit_reduce_max_##SUFFIX, T, -__longlong_as_double(0x7ff0000000000000LL), paradit_max_js(acc, x), acc)          \
  extern "C" __global__ void paradit_scale_##SUFFIX(T* p, float s, long long n) {                  \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;                    \
         i += (long long)gridDim.x * blockDim.x)                                                    \
      paradit_store(p + i, paradit_load(p + i) * s);                                               \
  }

PARADIT_REDUCE_ALL(float, f32)
PARADIT_REDUCE_ALL(__half, f16)
PARADIT_REDUCE_ALL(__nv_bfloat16, bf16)
${FP8_EPILOGUE_SOURCE}`;

export type ReduceDType = 'f32' | 'f16' | 'bf16';

export function reduceKernelName(op: 'sum' | 'mean' | 'max', dtype: ReduceDType): string {
  return `paradit_reduce_${op}_${dtype}`;
}

export function scaleKernelName(dtype: ReduceDType): string {
  return `paradit_scale_${dtype}`;
}

export function postOpKernelName(op: 'gelu_erf' | 'silu', dtype: 'f32' | 'f16' | 'bf16'): string {
  return `paradit_post_${op}_${dtype}`;
}
