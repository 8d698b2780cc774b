/**
 * A hand-built plan that exercises every instruction kind of the CUDA runtime, with a host
 * reference (float64 math, rounded to the plan dtype at every buffer, as the device stores it):
 *   0 kernel smoke_affine  t = 2*x + 0.5            (64 KiB dynamic smem: the >48 KiB opt-in path)
 *   1 gemm                 y = gelu_tanh(t @ W + bias)            (cuBLASLt GELU_BIAS epilogue)
 *   2 branch on flag       then: out = y + st; st <- y (copy)    (state persists across steps)
 *                          else: out = silu(0.5 * t @ V^T)       (transB, alpha, SiLU post-kernel)
 *   3 gemm, batch 2        z[b] = gelu_erf(x[:, 32b:32b+32] @ U[b]) (ld != cols, batch strides)
 * Used by bench/runtime/smoke.ts on the GPU and by packages/runtime/test/cuda-backend.test.ts.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { bf16BitsToF32, f32ToBf16Bits } from '@paradit/ir';
import { PLAN_FORMAT, PLAN_VERSION, Plan, planSchema } from '../../packages/runtime/src/plan/schema';

export const M = 32;
export const K = 64;
export const N = 96;
export const KB = 32;
export const NZ = 16;
export type SmokeDType = 'f32' | 'bf16';

export function roundTo(dtype: SmokeDType, v: number): number {
  return dtype === 'f32' ? Math.fround(v) : bf16BitsToF32(f32ToBf16Bits(v));
}

/** Deterministic uniform values in [-scale, scale). */
export function seeded(n: number, seed: number, scale: number, dtype: SmokeDType): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = roundTo(dtype, (((s >>> 0) / 2 ** 32) * 2 - 1) * scale);
  }
  return out;
}

export interface SmokeWeights {
  readonly W: Float32Array; // [K, N]
  readonly bias: Float32Array; // [N]
  readonly V: Float32Array; // [N, K]
  readonly U: Float32Array; // [2, KB, NZ]
}

export function smokeWeights(dtype: SmokeDType): SmokeWeights {
  return {
    W: seeded(K * N, 11, 1 / Math.sqrt(K), dtype),
    bias: seeded(N, 12, 0.5, dtype),
    V: seeded(N * K, 13, 1 / Math.sqrt(K), dtype),
    U: seeded(2 * KB * NZ, 14, 1 / Math.sqrt(KB), dtype),
  };
}

const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
const silu = (x: number) => x / (1 + Math.exp(-x));
/** erf by its Maclaurin series (accurate to ~1e-9 for |x| < 4; erfc(4) < 2e-8 beyond). */
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax >= 4) return Math.sign(x);
  let sum = ax;
  let term = ax;
  for (let n = 1; n < 120; n++) {
    term *= (-ax * ax) / n;
    sum += term / (2 * n + 1);
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
}
const geluErf = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

/** One reference step: returns {out, z} and the next state. */
export function smokeReference(dtype: SmokeDType, w: SmokeWeights, x: Float32Array, flag: boolean, st: Float32Array): { out: Float32Array; z: Float32Array; st: Float32Array } {
  const r = (v: number) => roundTo(dtype, v);
  const t = x.map((v) => r(2 * v + 0.5));
  const y = new Float32Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += t[i * K + k]! * w.W[k * N + j]!;
      y[i * N + j] = r(geluTanh(acc + w.bias[j]!));
    }
  const out = new Float32Array(M * N);
  let next = st;
  if (flag) {
    for (let i = 0; i < M * N; i++) out[i] = r(y[i]! + st[i]!);
    next = y;
  } else {
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += t[i * K + k]! * w.V[j * K + k]!;
        out[i * N + j] = r(silu(r(0.5 * acc)));
      }
  }
  const z = new Float32Array(2 * M * NZ);
  for (let b = 0; b < 2; b++)
    for (let i = 0; i < M; i++)
      for (let j = 0; j < NZ; j++) {
        let acc = 0;
        for (let k = 0; k < KB; k++) acc += x[i * K + b * KB + k]! * w.U[b * KB * NZ + k * NZ + j]!;
        z[b * M * NZ + i * NZ + j] = r(geluErf(r(acc)));
      }
  return { out, z, st: next };
}

export function smokeSource(dtype: SmokeDType): string {
  const T = dtype === 'f32' ? 'float' : '__nv_bfloat16';
  return `#include <cuda_bf16.h>
typedef ${T} T;
__device__ __forceinline__ float toF(float v) { return v; }
__device__ __forceinline__ float toF(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void put(float* p, float v) { *p = v; }
__device__ __forceinline__ void put(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

extern "C" __global__ void smoke_affine(T* t, const T* x, int n, float a, float b) {
  extern __shared__ float scratch[];
  if (threadIdx.x == 0) scratch[16383] = a; // the last float of 64 KiB: faults unless the opt-in worked
  __syncthreads();
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) put(t + i, scratch[16383] * toF(x[i]) + b);
}

extern "C" __global__ void smoke_add(T* out, const T* y, const T* s, long long n) {
  long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
  if (i < n) put(out + i, toF(y[i]) + toF(s[i]));
}
`;
}

function bytesOf(dtype: SmokeDType, values: Float32Array): Uint8Array {
  if (dtype === 'f32') return new Uint8Array(values.buffer.slice(0));
  const o = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) o[i] = f32ToBf16Bits(values[i]!);
  return new Uint8Array(o.buffer);
}

export interface SmokePlanOptions {
  readonly arch?: string;
  readonly backend?: 'cuda' | 'cpu';
  /** Rename a kernel in the program only (the source keeps its name): an error-path test. */
  readonly wrongKernelName?: boolean;
  readonly cubin?: Uint8Array;
  /** Leave the branch's else side empty (an empty conditional body graph). */
  readonly emptyElse?: boolean;
}

/** Writes the plan directory and returns its plan.json contents. */
export function writeSmokePlan(dir: string, dtype: SmokeDType, opts: SmokePlanOptions = {}): Plan {
  const es = dtype === 'f32' ? 4 : 2;
  const w = smokeWeights(dtype);
  const spaces = { weights: 0, io: 0, state: 0, arena: 0 };
  const buffers: Plan['buffers'] = [];
  const add = (name: string, space: keyof typeof spaces, shape: number[], d: 'f32' | 'bf16' | 'bool' = dtype): number => {
    const bytes = shape.reduce((a, b) => a * b, 1) * (d === 'bool' ? 1 : d === 'f32' ? 4 : 2);
    const id = buffers.length;
    buffers.push({ id, name, dtype: d, shape, space, offset: spaces[space], bytes });
    spaces[space] += Math.ceil(bytes / 256) * 256;
    return id;
  };
  const W = add('W', 'weights', [K, N]);
  const bias = add('bias', 'weights', [N]);
  const V = add('V', 'weights', [N, K]);
  const U = add('U', 'weights', [2, KB, NZ]);
  const x = add('x', 'io', [M, K]);
  const flag = add('flag', 'io', [1], 'bool');
  const out = add('out', 'io', [M, N]);
  const z = add('z', 'io', [2, M, NZ]);
  const st = add('st', 'state', [M, N]);
  const t = add('t', 'arena', [M, K]);
  const y = add('y', 'arena', [M, N]);
  const weights = new Uint8Array(spaces.weights);
  for (const [id, v] of [[W, w.W], [bias, w.bias], [V, w.V], [U, w.U]] as const) weights.set(bytesOf(dtype, v), buffers[id]!.offset);
  const view = (buf: number, rows: number, cols: number, ld = cols, batchStride = 0, elemOffset = 0) => ({ buf, rows, cols, ld, batchStride, elemOffset });
  const program: Plan['program'] = [
    { op: 'kernel', kernel: opts.wrongKernelName ? 'smoke_affine_missing' : 'smoke_affine', grid: [Math.ceil((M * K) / 128), 1, 1], block: [128, 1, 1], smem: 65536,
      args: [{ buf: t }, { buf: x }, { i32: M * K }, { f32: 2 }, { f32: 0.5 }], origin: ['/smoke/Mul', '/smoke/Add'] },
    { op: 'gemm', m: M, n: N, k: K, batch: 1, a: view(t, M, K), transA: false, b: view(W, K, N), transB: false, out: view(y, M, N), bias, epilogue: 'gelu_tanh', alpha: 1, origin: ['/smoke/MatMul', '/smoke/Gelu'] },
    { op: 'branch', cond: flag, origin: ['/smoke/If'],
      then: [
        { op: 'kernel', kernel: 'smoke_add', grid: [Math.ceil((M * N) / 256), 1, 1], block: [256, 1, 1], smem: 0, args: [{ buf: out }, { buf: y }, { buf: st }, { i64: M * N }], origin: ['/smoke/then/Add'] },
        { op: 'copy', src: y, dst: st, origin: ['/smoke/then/Identity'] },
      ],
      else: opts.emptyElse ? [] : [{ op: 'gemm', m: M, n: N, k: K, batch: 1, a: view(t, M, K), transA: false, b: view(V, N, K), transB: true, out: view(out, M, N), epilogue: 'silu', alpha: 0.5, origin: ['/smoke/else/MatMul'] }] },
    { op: 'gemm', m: M, n: NZ, k: KB, batch: 2, a: view(x, M, KB, K, KB), transA: false, b: view(U, KB, NZ, NZ, KB * NZ), transB: false, out: view(z, M, NZ, NZ, M * NZ), epilogue: 'gelu_erf', alpha: 1, origin: ['/smoke/BatchMatMul'] },
  ];
  const plan: Plan = planSchema.parse({
    format: PLAN_FORMAT, version: PLAN_VERSION, streams: 1, events: 0,
    compiledFrom: { model: 'smoke (hand-built)', modelSha256: '0'.repeat(64), paradit: 'smoke', createdAt: new Date(0).toISOString() },
    target: { backend: opts.backend ?? 'cuda', arch: opts.arch ?? 'sm_90a', dtype, mesh: { cfg: 1, ring: 1, ulysses: 1 } },
    spaces,
    weights: { file: 'weights.bin', bytes: weights.byteLength, alignment: 256, sha256: crypto.createHash('sha256').update(weights).digest('hex'), generated: [] },
    kernels: { source: 'kernels/module.cu', cubin: opts.cubin ? 'kernels/module.cubin' : null, options: ['-std=c++17'] },
    files: {
      'kernels/module.cu': crypto.createHash('sha256').update(smokeSource(dtype)).digest('hex'),
      ...(opts.cubin ? { 'kernels/module.cubin': crypto.createHash('sha256').update(opts.cubin).digest('hex') } : {}),
    },
    buffers,
    inputs: [{ name: 'x', buf: x }, { name: 'flag', buf: flag }],
    outputs: [{ name: 'out', buf: out }, { name: 'z', buf: z }],
    state: [{ name: 'st', buf: st, role: 'smoke.accumulator' }],
    program,
    stats: { elementBytes: es },
  });
  fs.mkdirSync(path.join(dir, 'kernels'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'weights.bin'), weights);
  fs.writeFileSync(path.join(dir, 'kernels/module.cu'), smokeSource(dtype));
  if (opts.cubin) fs.writeFileSync(path.join(dir, 'kernels/module.cubin'), opts.cubin);
  fs.writeFileSync(path.join(dir, 'plan.json'), JSON.stringify(plan, null, 1));
  return plan;
}

export function relL2(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < want.length; i++) {
    const d = got[i]! - want[i]!;
    num += d * d;
    den += want[i]! * want[i]!;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}
