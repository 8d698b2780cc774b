/**
 * Runs emitted fragment kernels on the host: the CUDA C++ that emitFragment produced is compiled
 * with g++ against a small shim (blockIdx/threadIdx as globals, the kernel header's helpers in
 * plain C++, cuda_bf16.h/cuda_fp16.h host conversions) and every kernel is launched by looping
 * over its grid and block in order. Valid for kernels whose threads do not talk to each other
 * (pointwise, loop, indexed and scatter kernels: no __shared__, no shuffles); row kernels are
 * refused. This checks the real emitted index math without a GPU.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { DType, Graph, Value } from '@paradit/ir';
import { Tensor, numel } from '@paradit/ir';
import { emitFragment } from '../src/kernels';
import { byteSizeOf, storageType } from '../src/kernels/c-types';
import { KERNEL_HEADER_GUARD } from '../src/kernels/header';

export const GXX = ['/usr/bin/g++', '/usr/local/bin/g++'].find((p) => fs.existsSync(p));
export const CUDA_INCLUDE = ['/usr/local/cuda/include'].find((p) => fs.existsSync(path.join(p, 'cuda_bf16.h')));
export const HOST_RUN_OK = GXX !== undefined && CUDA_INCLUDE !== undefined;
export const HOST_RUN_SKIP = 'host-run: skipped: needs g++ and /usr/local/cuda/include/cuda_bf16.h';

const SHIM = `#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#undef __global__
#undef __device__
#undef __forceinline__
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
struct pdt_dim3 { unsigned int x, y, z; };
static pdt_dim3 blockIdx, threadIdx;
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline unsigned int __float_as_uint(float f) { unsigned int i; std::memcpy(&i, &f, 4); return i; }
static inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
template <typename T> static inline T __ldcg(const T* p) { return *p; }
static inline void __threadfence() {}
static inline float pdt_round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }
static inline float pdt_round_f16(float x) { return __half2float(__float2half_rn(x)); }
template <typename T> static inline T pdt_max(T a, T b) { return (a > b || a != a) ? a : b; }
template <typename T> static inline T pdt_min(T a, T b) { return (a < b || a != a) ? a : b; }
template <typename T> static inline T pdt_pymod(T a, T b) {
  if (b == 0) return (T)0;
  T r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? (T)(r + b) : r;
}
static inline float pdt_gelu_tanh(float x) { return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x))); }
static inline float pdt_gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f)); }
static inline double pdt_gelu_tanh_d(double x) { return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
static inline double pdt_gelu_erf_d(double x) { return 0.5 * x * (1.0 + erf(x * 0.7071067811865476)); }
static inline float pdt_to_f(float x) { return x; }
static inline float pdt_to_f(__half x) { return __half2float(x); }
static inline float pdt_to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> static inline T pdt_from_f(float x);
template <> inline float pdt_from_f<float>(float x) { return x; }
template <> inline __half pdt_from_f<__half>(float x) { return __float2half_rn(x); }
template <> inline __nv_bfloat16 pdt_from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <typename T, int N> static inline void pdt_ldv(const T* p, float* out) { for (int i = 0; i < N; i++) out[i] = pdt_to_f(p[i]); }
template <typename T, int N> static inline void pdt_stv(T* p, const float* in) { for (int i = 0; i < N; i++) p[i] = pdt_from_f<T>(in[i]); }
#define ${KERNEL_HEADER_GUARD}
`;

interface Buffer {
  readonly id: number;
  readonly bytes: number;
}

/** Bytes of a tensor in the storage layout the kernels use. */
function encode(t: Tensor): Uint8Array {
  const n = t.data.length;
  const bytes = new Uint8Array(n * byteSizeOf(t.dtype));
  const dv = new DataView(bytes.buffer);
  for (let i = 0; i < n; i++) {
    const x = Number(t.data[i]);
    switch (t.dtype) {
      case 'f32': dv.setFloat32(i * 4, x, true); break;
      case 'f64': dv.setFloat64(i * 8, x, true); break;
      case 'bf16': dv.setUint16(i * 2, new Uint32Array(new Float32Array([x]).buffer)[0]! >>> 16, true); break; // values are bf16 already
      case 'f16': dv.setUint16(i * 2, f16Bits(x), true); break;
      case 'i64': dv.setBigInt64(i * 8, BigInt(Math.trunc(x)), true); break;
      case 'u64': dv.setBigUint64(i * 8, BigInt(Math.trunc(x)), true); break;
      case 'i32': dv.setInt32(i * 4, x, true); break;
      case 'u32': dv.setUint32(i * 4, x, true); break;
      case 'i16': dv.setInt16(i * 2, x, true); break;
      case 'u16': dv.setUint16(i * 2, x, true); break;
      case 'i8': dv.setInt8(i, x); break;
      case 'u8': case 'bool': dv.setUint8(i, x); break;
      default: throw new Error(`host-run: no encoding for ${t.dtype}`);
    }
  }
  return bytes;
}

function f16Bits(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  const mant = u & 0x7fffff;
  if (Number.isNaN(x)) return 0x7e00;
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) return sign | Math.round((mant | 0x800000) / 2 ** (14 - exp)) ;
  return sign | (exp << 10) | Math.round(mant / 8192);
}

function decode(dtype: DType, shape: readonly number[], bytes: Uint8Array): Tensor {
  const n = numel(shape as number[]);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const vals: number[] = [];
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case 'f32': vals.push(dv.getFloat32(i * 4, true)); break;
      case 'f64': vals.push(dv.getFloat64(i * 8, true)); break;
      case 'bf16': vals.push(new Float32Array(new Uint32Array([dv.getUint16(i * 2, true) << 16]).buffer)[0]!); break;
      case 'f16': vals.push(f16Value(dv.getUint16(i * 2, true))); break;
      case 'i64': vals.push(Number(dv.getBigInt64(i * 8, true))); break;
      case 'u64': vals.push(Number(dv.getBigUint64(i * 8, true))); break;
      case 'i32': vals.push(dv.getInt32(i * 4, true)); break;
      case 'u32': vals.push(dv.getUint32(i * 4, true)); break;
      case 'i16': vals.push(dv.getInt16(i * 2, true)); break;
      case 'u16': vals.push(dv.getUint16(i * 2, true)); break;
      case 'i8': vals.push(dv.getInt8(i)); break;
      case 'u8': case 'bool': vals.push(dv.getUint8(i)); break;
      default: throw new Error(`host-run: no decoding for ${dtype}`);
    }
  }
  return Tensor.from(dtype, [...shape], vals);
}

function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * Emits the fragment's kernels, runs them on the host and returns the fragment outputs. Throws
 * when a kernel needs cooperating threads (row kernels) or g++ fails (the source is kept).
 */
export function runFragmentOnHost(g: Graph, inputs: readonly Tensor[], opset = 0): Tensor[] {
  const lowering = emitFragment(g, { namePrefix: 'host', opset });
  const aliases = new Map(lowering.aliases.map((a) => [a.value, a]));
  const root = (v: Value): { v: Value; off: number } => {
    let off = 0;
    let cur = v;
    for (let a = aliases.get(cur); a; a = aliases.get(cur)) {
      off += a.byteOffset;
      cur = a.of;
    }
    return { v: cur, off };
  };
  const buffers = new Map<Value, Buffer>();
  const bufOf = (v: Value): Buffer => {
    let b = buffers.get(v);
    if (!b) {
      b = { id: buffers.size, bytes: Math.max(1, numel(v.shape as number[]) * byteSizeOf(v.dtype)) };
      buffers.set(v, b);
    }
    return b;
  };
  const init = new Map<Value, Uint8Array>();
  g.inputs.forEach((v, i) => init.set(v, encode(inputs[i]!)));
  let calls = '';
  const sources = new Set<string>();
  for (const k of lowering.kernels) {
    if (/__shared__|__shfl|__syncthreads/.test(k.source.replace(/#ifndef PARADIT_KERNEL_HEADER[\s\S]*?#endif\n/, ''))) {
      throw new Error(`host-run: kernel ${k.entry} needs cooperating threads (${k.covers.map((n) => n.label).join(', ')})`);
    }
    sources.add(k.source);
    const args = k.args.map((a) => {
      if (a.kind !== 'value') return String(a.v);
      const r = root(a.value);
      if (r.v.constant && !init.has(r.v)) init.set(r.v, encode(r.v.constant.tensor()));
      return `(${storageType(a.value.dtype)}*)(buf[${bufOf(r.v).id}] + ${r.off})`;
    });
    calls += `  for (unsigned int b = 0; b < ${k.grid[0]}; b++) for (unsigned int t = 0; t < ${k.block[0]}; t++) { blockIdx.x = b; threadIdx.x = t; ${k.entry}(${args.join(', ')}); }\n`;
  }
  for (const v of [...g.inputs, ...g.outputs]) bufOf(root(v).v);
  const list = [...buffers.entries()];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-host-'));
  const inFile = path.join(dir, 'in.bin');
  const parts: Uint8Array[] = [];
  for (const [v, b] of list) {
    const bytes = new Uint8Array(b.bytes);
    const src = init.get(v);
    if (src) bytes.set(src.subarray(0, b.bytes));
    parts.push(bytes);
  }
  fs.writeFileSync(inFile, Buffer.concat(parts));
  const outs = g.outputs.map((v) => root(v));
  const main = `
int main(int argc, char** argv) {
  static unsigned char* buf[${list.length}];
  const size_t sizes[${list.length}] = {${list.map(([, b]) => b.bytes).join(', ')}};
  FILE* f = fopen(argv[1], "rb");
  for (int i = 0; i < ${list.length}; i++) { buf[i] = (unsigned char*)calloc(sizes[i] + 16, 1); if (fread(buf[i], 1, sizes[i], f) != sizes[i]) return 3; }
  fclose(f);
${calls}  FILE* o = fopen(argv[2], "wb");
${outs.map((r, i) => `  fwrite(buf[${bufOf(r.v).id}] + ${r.off}, 1, ${numel(g.outputs[i]!.shape as number[]) * byteSizeOf(g.outputs[i]!.dtype)}, o);`).join('\n')}
  fclose(o);
  return 0;
}
`;
  const cpp = path.join(dir, 'run.cpp');
  fs.writeFileSync(cpp, SHIM + [...sources].join('\n') + main);
  const exe = path.join(dir, 'run');
  try {
    execFileSync(GXX!, ['-std=c++17', '-O1', '-w', `-I${CUDA_INCLUDE}`, cpp, '-o', exe], { stdio: 'pipe' });
  } catch (e) {
    const err = e as { stderr?: Buffer };
    throw new Error(`host-run: g++ failed (source kept at ${cpp}):\n${err.stderr?.toString().slice(0, 3000)}`);
  }
  const outFile = path.join(dir, 'out.bin');
  execFileSync(exe, [inFile, outFile], { stdio: 'pipe' });
  const raw = new Uint8Array(fs.readFileSync(outFile));
  let at = 0;
  const result = g.outputs.map((v) => {
    const n = numel(v.shape as number[]) * byteSizeOf(v.dtype);
    const t = decode(v.dtype, v.shape as number[], raw.subarray(at, at + n));
    at += n;
    return t;
  });
  fs.rmSync(dir, { recursive: true, force: true });
  return result;
}
