/**
 * Runs the VAE's conv and group-norm CUDA kernels on the host, as emitted (tests only): the kernel
 * text is compiled by g++ with PDT_HOST_EMULATION and a shim where every CUDA thread is a pthread,
 * __syncthreads a block barrier, __shfl_xor_sync an exchange through a per-warp array, __shared__
 * a static (one block runs at a time) and the m16n8k16 MMA a per-warp gather of the 32 lanes'
 * fragments computed from the PTX ISA's fragment layout (A row-major: a0/a1 rows g and g+8 at
 * k = 2*t4 + {0,1}, a2/a3 the same at k + 8; B column-major: b0 at k = 2*t4 + {0,1}, b1 at k + 8,
 * column g; D: rows g and g+8, columns 2*t4 + {0,1}). What this checks: the tiling, the gather,
 * the K loop, the barriers, the reductions and the epilogue. What it cannot: that the hardware's
 * fragment layout is the one written here (a GPU run checks that).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tensor, bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '@paradit/ir';
import type { DType, Value } from '@paradit/ir';
import type { EmittedKernel } from '../packages/codegen-cuda/src/kernel-types';
import { KERNEL_HEADER, KERNEL_HEADER_GUARD } from '../packages/codegen-cuda/src/kernels/header';

export const GXX = ['/usr/bin/g++', '/usr/local/bin/g++'].find((p) => fs.existsSync(p));
export const CUDA_INCLUDE = ['/usr/local/cuda/include'].find((p) => fs.existsSync(path.join(p, 'cuda_bf16.h')));

/** pdt_row_sum exactly as the kernel header has it (the shim supplies what it calls). */
function rowSumText(): string {
  const a = KERNEL_HEADER.indexOf('template <int T> __device__ __forceinline__ float pdt_row_sum');
  const b = KERNEL_HEADER.indexOf('template <int T> __device__ __forceinline__ float pdt_row_max');
  if (a < 0 || b < a) throw new Error('host emulation: pdt_row_sum not found in the kernel header');
  return KERNEL_HEADER.slice(a, b);
}

const SHIM = (): string => `#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <pthread.h>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>
#undef __global__
#undef __device__
#undef __forceinline__
#undef __shared__
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define PDT_HOST_EMULATION 1
#define ${KERNEL_HEADER_GUARD}
struct pdt_dim3 { unsigned int x, y, z; };
static pdt_dim3 blockIdx;
static thread_local pdt_dim3 threadIdx;
struct pdt_warp { std::barrier<> bar{32}; float f[32]; unsigned u[32][6]; };
static std::barrier<>* pdt_block;
static pdt_warp* pdt_warps;
static inline void __syncthreads() { pdt_block->arrive_and_wait(); }
static inline float __shfl_xor_sync(unsigned, float v, int o) {
  pdt_warp& w = pdt_warps[threadIdx.x / 32];
  const int l = threadIdx.x % 32;
  w.f[l] = v;
  w.bar.arrive_and_wait();
  const float r = w.f[l ^ o];
  w.bar.arrive_and_wait();
  return r;
}
static inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
template <typename T> inline float pdt_to_f(T x);
template <> inline float pdt_to_f<float>(float x) { return x; }
template <> inline float pdt_to_f<__half>(__half x) { return __half2float(x); }
template <> inline float pdt_to_f<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T> inline T pdt_from_f(float x);
template <> inline float pdt_from_f<float>(float x) { return x; }
template <> inline __half pdt_from_f<__half>(float x) { return __float2half_rn(x); }
template <> inline __nv_bfloat16 pdt_from_f<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
template <typename T, int N> inline void pdt_ldv(const T* p, float* out) { for (int i = 0; i < N; i++) out[i] = pdt_to_f<T>(p[i]); }
template <typename T, int N> inline void pdt_stv(T* p, const float* in) { for (int i = 0; i < N; i++) p[i] = pdt_from_f<T>(in[i]); }
${rowSumText()}
template <typename T> static float pdt_half_bits(unsigned short h) { T v; std::memcpy(&v, &h, 2); return pdt_to_f<T>(v); }
template <typename T> void pdt_mma16816_host(float* d, const unsigned* a, const unsigned* b) {
  pdt_warp& w = pdt_warps[threadIdx.x / 32];
  const int l = threadIdx.x % 32, g = l >> 2, t4 = l & 3;
  for (int i = 0; i < 4; i++) w.u[l][i] = a[i];
  w.u[l][4] = b[0];
  w.u[l][5] = b[1];
  w.bar.arrive_and_wait();
  auto el = [&](int lane, int reg, int k) { unsigned word = w.u[lane][reg]; return pdt_half_bits<T>((unsigned short)((k & 1) ? word >> 16 : word & 0xffffu)); };
  for (int e = 0; e < 4; e++) {
    const int row = g + (e >= 2 ? 8 : 0), col = t4 * 2 + (e & 1);
    float s = d[e];
    for (int k = 0; k < 16; k++) s += el((row % 8) * 4 + (k % 8) / 2, row / 8 + 2 * (k / 8), k) * el(col * 4 + (k % 8) / 2, 4 + k / 8, k);
    d[e] = s;
  }
  w.bar.arrive_and_wait();
}
static void* pdt_thread(void* p) { (*static_cast<std::function<void()>*>(p))(); return nullptr; }
static void pdt_launch(unsigned gx, unsigned gy, unsigned nt, const std::function<void()>& body) {
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setstacksize(&at, 1u << 19);
  for (unsigned by = 0; by < gy; by++)
    for (unsigned bx = 0; bx < gx; bx++) {
      blockIdx = {bx, by, 0};
      std::barrier<> blk((std::ptrdiff_t)nt);
      pdt_block = &blk;
      std::vector<pdt_warp> warps((nt + 31) / 32);
      pdt_warps = warps.data();
      std::vector<pthread_t> th(nt);
      std::vector<std::function<void()>> jobs(nt);
      for (unsigned t = 0; t < nt; t++) {
        jobs[t] = [t, &body] { threadIdx = {t, 0, 0}; body(); };
        if (pthread_create(&th[t], &at, pdt_thread, &jobs[t]) != 0) { std::perror("pthread_create"); std::exit(2); }
      }
      for (unsigned t = 0; t < nt; t++) pthread_join(th[t], nullptr);
    }
}
`;

const C_TYPE: Partial<Record<DType, string>> = { f32: 'float', bf16: '__nv_bfloat16', f16: '__half' };
const BYTES: Partial<Record<DType, number>> = { f32: 4, bf16: 2, f16: 2 };

function encode(t: Tensor): Buffer {
  const b = Buffer.alloc(t.size * BYTES[t.dtype]!);
  for (let i = 0; i < t.size; i++) {
    if (t.dtype === 'f32') b.writeFloatLE(t.data[i]!, i * 4);
    else if (t.dtype === 'bf16') b.writeUInt16LE(f32ToBf16Bits(t.data[i]!), i * 2);
    else if (t.dtype === 'f16') b.writeUInt16LE(f32ToF16Bits(t.data[i]!), i * 2);
    else throw new Error(`host emulation: no encoding for ${t.dtype}`);
  }
  return b;
}

function decode(v: Value, b: Buffer): Tensor {
  const n = (v.shape as number[]).reduce((a, c) => a * c, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = v.dtype === 'f32' ? b.readFloatLE(i * 4) : v.dtype === 'bf16' ? bf16BitsToF32(b.readUInt16LE(i * 2)) : f16BitsToF32(b.readUInt16LE(i * 2));
  }
  return new Tensor(v.dtype, v.shape as number[], out);
}

/**
 * Runs each kernel once on its own buffers: `data(v)` gives every value a kernel reads; returns,
 * per kernel, what it wrote (in `writes` order).
 */
export function runKernelsOnHost(kernels: readonly EmittedKernel[], data: (v: Value) => Tensor): Tensor[][] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-vae-host-'));
  try {
    const sources = new Set<string>();
    const parts: Buffer[] = [];
    const outs: { kernel: number; value: Value; offset: number; bytes: number }[] = [];
    let offset = 0;
    let body = '';
    kernels.forEach((k, ki) => {
      sources.add(k.source);
      const bufOf = new Map<Value, number>();
      const buffer = (v: Value): number => {
        let o = bufOf.get(v);
        if (o === undefined) {
          const bytes = (v.shape as number[]).reduce((a, c) => a * c, 1) * BYTES[v.dtype]!;
          const b = k.writes.includes(v) ? Buffer.alloc(bytes) : encode(data(v));
          o = offset;
          bufOf.set(v, o);
          parts.push(b, Buffer.alloc((16 - (bytes % 16)) % 16));
          if (k.writes.includes(v)) outs.push({ kernel: ki, value: v, offset: o, bytes });
          offset += bytes + ((16 - (bytes % 16)) % 16);
        }
        return o;
      };
      const args = k.args.map((a) => (a.kind === 'value' ? `(${C_TYPE[a.value.dtype]}*)(mem + ${buffer(a.value)})` : a.kind === 'f32' ? `${a.v}f` : String(a.v)));
      body += `  pdt_launch(${k.grid[0]}, ${k.grid[1]}, ${k.block[0]}, [&] { ${k.entry}(${args.join(', ')}); });\n`;
    });
    const main = `int main(int argc, char** argv) {
  FILE* f = std::fopen(argv[1], "rb");
  std::vector<char> buf(${Math.max(offset, 16)} + 16);
  char* mem = buf.data() + (16 - ((std::uintptr_t)buf.data() % 16)) % 16;
  if (std::fread(mem, 1, ${offset}, f) != ${offset}) return 3;
  std::fclose(f);
${body}  f = std::fopen(argv[2], "wb");
  std::fwrite(mem, 1, ${offset}, f);
  std::fclose(f);
  return 0;
}
`;
    const src = path.join(dir, 'host.cpp');
    fs.writeFileSync(src, `${SHIM()}\n#include <cstdint>\n${[...sources].join('\n')}\n${main}`);
    const exe = path.join(dir, 'host');
    execFileSync(GXX!, ['-std=c++20', '-O1', '-w', '-I', CUDA_INCLUDE!, src, '-o', exe, '-pthread'], { stdio: 'pipe' });
    fs.writeFileSync(path.join(dir, 'in.bin'), Buffer.concat(parts));
    execFileSync(exe, [path.join(dir, 'in.bin'), path.join(dir, 'out.bin')], { stdio: 'pipe', timeout: 300_000 });
    const out = fs.readFileSync(path.join(dir, 'out.bin'));
    fs.rmSync(dir, { recursive: true, force: true });
    return kernels.map((k, ki) => k.writes.map((v) => {
      const o = outs.find((x) => x.kernel === ki && x.value === v)!;
      return decode(v, out.subarray(o.offset, o.offset + o.bytes));
    }));
  } catch (e) {
    const err = e as { stderr?: Buffer };
    throw new Error(`host emulation failed (sources kept in ${dir}): ${err.stderr?.toString().slice(0, 3000) ?? String(e)}`);
  }
}
