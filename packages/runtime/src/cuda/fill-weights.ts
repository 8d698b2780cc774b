/**
 * Fills a plan's generated weights (`weights.generated`, plan version 3) on the GPU: one launch of
 * `paradit_fill_uniform` per recipe, after the tail of the weights space is zeroed. The kernel
 * reproduces packages/ir/src/onnx/random-weights.ts bit for bit, element by element:
 *
 *   h_i = J(J(i ^ lo) ^ hi)          J: Jenkins' six-shift hash, uint32 wrap-around
 *   c_i = (h_i >> 8) - 2^23          an integer in [-2^23, 2^23)
 *   x_i = f32(c_i * 2^-23 * B)       B = f32(1 / sqrt(fanIn)): c_i * 2^-23 is exact in float, so
 *                                    one correctly rounded float multiply (__fmul_rn) gives x_i
 *
 * then x_i is rounded to the model's dtype (`from`) and encoded in the plan dtype, both round to
 * nearest even with the integer code below (no intrinsics, so a host build of the same text, used by
 * the tests, takes the same path). B is computed in double (IEEE sqrt and division, correctly
 * rounded on the GPU as in JS) and rounded to float once.
 *
 * The source is plain C with a few macros so that it also compiles as a host program
 * (PARADIT_FILL_HOST defines the entry, the block/thread indices and the bit casts): tests evaluate
 * this exact text with g++ against randomTensor for many seeds, shapes and dtypes.
 */
import type { GeneratedWeight, Plan } from '../plan/schema';
import type { Driver } from './driver';
import type { InstrContext } from './errors';
import type { NativeBlock, Ptr } from './ffi';
import { helperGrid, launchOn, packLaunch } from './launch';

export const FILL_KERNEL_NAME = 'paradit_fill_uniform';

/** Dtype codes of the kernel's `from` and `to` arguments. */
const FILL_DTYPE_CODES: Readonly<Record<GeneratedWeight['dtype'], number>> = { f32: 0, bf16: 1, f16: 2 };

export const FILL_KERNEL_SOURCE = String.raw`
#ifndef PARADIT_FILL_HOST
#define PARADIT_FILL_ENTRY extern "C" __global__ void
#define PARADIT_FILL_FN static __device__ __forceinline__
#define PARADIT_F2U(x) __float_as_uint(x)
#define PARADIT_U2F(x) __uint_as_float(x)
#define PARADIT_FMUL(a, b) __fmul_rn(a, b)
#endif

PARADIT_FILL_FN unsigned int paradit_jenkins32(unsigned int a) {
  a = (a + 0x7ed55d16u) + (a << 12);
  a = (a ^ 0xc761c23cu) ^ (a >> 19);
  a = (a + 0x165667b1u) + (a << 5);
  a = (a + 0xd3a2646cu) ^ (a << 9);
  a = (a + 0xfd7046c5u) + (a << 3);
  return (a ^ 0xb55a4f09u) ^ (a >> 16);
}

/* float -> bf16 bits, round to nearest even (NaN stays a quiet NaN). */
PARADIT_FILL_FN unsigned int paradit_to_bf16(float x) {
  unsigned int b = PARADIT_F2U(x);
  if ((b & 0x7f800000u) == 0x7f800000u && (b & 0x7fffffu) != 0u) return ((b >> 16) | 0x40u) & 0xffffu;
  return ((b + 0x7fffu + ((b >> 16) & 1u)) >> 16) & 0xffffu;
}

/* float -> IEEE binary16 bits, round to nearest even, subnormals, overflow to inf. */
PARADIT_FILL_FN unsigned int paradit_to_f16(float x) {
  unsigned int b = PARADIT_F2U(x);
  unsigned int sign = (b >> 16) & 0x8000u;
  int exp = (int)((b >> 23) & 0xffu);
  unsigned int mant = b & 0x7fffffu;
  if (exp == 0xff) return sign | 0x7c00u | (mant != 0u ? 0x200u : 0u);
  int e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00u;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000u;
    int shift = 14 - e;
    unsigned int half = 1u << (shift - 1);
    unsigned int rem = mant & ((1u << shift) - 1u);
    unsigned int h = mant >> shift;
    if (rem > half || (rem == half && (h & 1u) == 1u)) h += 1u;
    return sign | h;
  }
  unsigned int rem = mant & 0x1fffu;
  unsigned int h = ((unsigned int)e << 10) | (mant >> 13);
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) == 1u)) h += 1u;
  return sign | h;
}

PARADIT_FILL_FN float paradit_from_bf16(unsigned int h) { return PARADIT_U2F((h & 0xffffu) << 16); }

/* binary16 bits -> float (exact). */
PARADIT_FILL_FN float paradit_from_f16(unsigned int h) {
  unsigned int sign = (h & 0x8000u) << 16;
  unsigned int exp = (h >> 10) & 0x1fu;
  unsigned int mant = h & 0x3ffu;
  if (exp == 0u) {
    float v = PARADIT_FMUL((float)mant, 5.9604644775390625e-8f); /* mant * 2^-24, exact */
    return PARADIT_U2F(PARADIT_F2U(v) | sign);
  }
  if (exp == 0x1fu) return PARADIT_U2F(sign | 0x7f800000u | (mant << 13));
  return PARADIT_U2F(sign | ((exp + 112u) << 23) | (mant << 13));
}

/*
 * out[i] for i in [0, n): the generator's x_i for (lo, hi) = the 53-bit seed's two halves and
 * fan-in fanIn, rounded to dtype 'from' and stored as dtype 'to' (0 f32, 1 bf16, 2 f16).
 */
PARADIT_FILL_ENTRY paradit_fill_uniform(void* out, long long n, int lo, int hi, int fanIn, int from, int to) {
  const float bound = (float)(1.0 / sqrt((double)(fanIn > 1 ? fanIn : 1)));
  const float unit = 1.1920928955078125e-7f; /* 2^-23 */
  long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    unsigned int h = paradit_jenkins32(paradit_jenkins32((unsigned int)i ^ (unsigned int)lo) ^ (unsigned int)hi);
    int c = (int)(h >> 8) - 8388608;
    float x = PARADIT_FMUL(PARADIT_FMUL((float)c, unit), bound);
    if (from == 1) x = paradit_from_bf16(paradit_to_bf16(x));
    else if (from == 2) x = paradit_from_f16(paradit_to_f16(x));
    if (to == 0) ((float*)out)[i] = x;
    else if (to == 1) ((unsigned short*)out)[i] = (unsigned short)paradit_to_bf16(x);
    else ((unsigned short*)out)[i] = (unsigned short)paradit_to_f16(x);
  }
}
`;

/**
 * Host stand-ins for what the kernel takes from CUDA (valid C and C++): prepended to
 * FILL_KERNEL_SOURCE, the text builds with g++/gcc, for the tests (fill-weights.test.ts and the
 * stand-in libcuda). Not used at run time.
 */
export const FILL_HOST_SHIM = String.raw`
#include <math.h>
#include <string.h>
#define PARADIT_FILL_HOST 1
#define PARADIT_FILL_ENTRY static void
#define PARADIT_FILL_FN static inline
static inline unsigned int paradit_host_f2u(float x) { unsigned int u; memcpy(&u, &x, 4); return u; }
static inline float paradit_host_u2f(unsigned int u) { float x; memcpy(&x, &u, 4); return x; }
#define PARADIT_F2U(x) paradit_host_f2u(x)
#define PARADIT_U2F(x) paradit_host_u2f(x)
#define PARADIT_FMUL(a, b) ((float)((float)(a) * (float)(b)))
struct paradit_dim { unsigned int x; };
static struct paradit_dim gridDim, blockDim, blockIdx, threadIdx;
`;

/** The kernel's arguments for one recipe, in parameter order (lo/hi are the seed's uint32 halves as int32 bits). */
export function fillKernelArgs(g: GeneratedWeight): { n: number; lo: number; hi: number; fanIn: number; from: number; to: number } {
  return { n: g.count, lo: g.seed % 2 ** 32 | 0, hi: Math.floor(g.seed / 2 ** 32) | 0, fanIn: g.fanIn, from: FILL_DTYPE_CODES[g.from], to: FILL_DTYPE_CODES[g.dtype] };
}

interface FillEnv {
  readonly d: Driver;
  /** The fill kernel (compiled on first use). */
  readonly fn: () => Ptr;
  readonly weights: Ptr;
  readonly stream: Ptr;
  readonly blocks: NativeBlock[];
}

/** Zeroes the weights space after weights.bin and fills every generated weight; returns the launches made. */
export function fillGeneratedWeightsOnDevice(plan: Plan, env: FillEnv): number {
  const gen = plan.weights.generated;
  const tail = plan.spaces.weights - plan.weights.bytes;
  if (gen.length === 0) return 0;
  if (tail > 0) env.d.memsetD8(env.weights + BigInt(plan.weights.bytes), 0, tail);
  const byId = new Map(plan.buffers.map((b) => [b.id, b]));
  const fn = env.fn();
  for (const [k, g] of gen.entries()) {
    const b = byId.get(g.buf)!;
    if (g.count === 0) continue;
    const a = fillKernelArgs(g);
    const l = packLaunch(env.blocks, fn, helperGrid(g.count), [256, 1, 1], 0, [
      { kind: 'ptr', value: env.weights + BigInt(b.offset) },
      { kind: 'i64', value: BigInt(a.n) },
      { kind: 'i32', value: a.lo },
      { kind: 'i32', value: a.hi },
      { kind: 'i32', value: a.fanIn },
      { kind: 'i32', value: a.from },
      { kind: 'i32', value: a.to },
    ]);
    const ctx: InstrContext = { index: `weights.generated[${k}]`, op: 'kernel', kernel: FILL_KERNEL_NAME, origin: [b.name] };
    launchOn(env.d, l, env.stream, ctx);
  }
  return gen.length;
}
