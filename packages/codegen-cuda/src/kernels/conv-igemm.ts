/**
 * Conv2d (group 1) as an implicit GEMM on tensor cores: bf16/f16 operands, fp32 accumulation
 * through `mma.sync.m16n8k16`, bias and an optional SiLU in the epilogue, and a nearest upsample
 * by integer factors folded into the input indexing (the conv reads the pre-upsample tensor).
 *
 * Shape letters: B batch, C in channels, H x W the conv's input (pre-upsample), UH x UW the
 * upsample factors (1 without one), O out channels, HO x WO the output, KH x KW the kernel.
 * GEMM view: M = B*HO*WO output pixels (rows), N = O (columns), K = C*KH*KW with
 * k = (c*KH + ky)*KW + kx, the order of the weight's own [O, C, KH, KW] layout.
 *
 * Exactness (docs/vae.md): every block runs the K loop from k = 0 in steps of BK, so each output
 * element sums the same products in the same order wherever its row lies (no split-K, no
 * row-dependent tiling of K); a rows-parallel rank computes its band's elements bit-identically.
 *
 * `convInputIndex` is the kernel's gather written in TypeScript, for tests that check it against
 * the interpreter's Conv (the CUDA text below spells the same arithmetic).
 */
import { KERNEL_HEADER } from './header';

export interface ConvSpec {
  readonly dtype: 'bf16' | 'f16';
  readonly B: number;
  readonly C: number;
  readonly H: number;
  readonly W: number;
  readonly UH: number;
  readonly UW: number;
  readonly O: number;
  readonly HO: number;
  readonly WO: number;
  readonly KH: number;
  readonly KW: number;
  readonly SH: number;
  readonly SW: number;
  /** Top and left pads (bottom/right follow from HO, WO). */
  readonly PT: number;
  readonly PL: number;
  readonly DH: number;
  readonly DW: number;
  readonly bias: boolean;
  readonly silu: boolean;
}

/** Block tile: BM output pixels x BN output channels, BK of K per step; 4 warps of 32x32. */
export const CONV_TILE = { BM: 64, BN: 64, BK: 32, threads: 128 } as const;

/**
 * Flat index into the pre-upsample input [B, C, H, W] that GEMM element (m, k) reads, or -1 where
 * the conv reads zero padding (or m, k lie past the GEMM's edge).
 */
export function convInputIndex(s: ConvSpec, m: number, k: number): number {
  const K = s.C * s.KH * s.KW;
  if (m < 0 || m >= s.B * s.HO * s.WO || k < 0 || k >= K) return -1;
  const ox = m % s.WO;
  const t = Math.floor(m / s.WO);
  const oy = t % s.HO;
  const b = Math.floor(t / s.HO);
  const c = Math.floor(k / (s.KH * s.KW));
  const r = k % (s.KH * s.KW);
  const ky = Math.floor(r / s.KW);
  const kx = r % s.KW;
  const iy = oy * s.SH - s.PT + ky * s.DH;
  const ix = ox * s.SW - s.PL + kx * s.DW;
  if (iy < 0 || iy >= s.H * s.UH || ix < 0 || ix >= s.W * s.UW) return -1;
  return ((b * s.C + c) * s.H + Math.floor(iy / s.UH)) * s.W + Math.floor(ix / s.UW);
}

/** Flat index into the output [B, O, HO, WO] of GEMM element (m, o). */
export function convOutputIndex(s: ConvSpec, m: number, o: number): number {
  const ox = m % s.WO;
  const t = Math.floor(m / s.WO);
  const oy = t % s.HO;
  const b = Math.floor(t / s.HO);
  return ((b * s.O + o) * s.HO + oy) * s.WO + ox;
}

/** Elements the kernel indexes with 32-bit ints must stay below 2^31 (larger shapes use the generic path). */
export function convFitsInt32(s: ConvSpec): boolean {
  const lim = 2 ** 31 - 1;
  return s.B * s.C * s.H * s.W < lim && s.B * s.O * s.HO * s.WO < lim && s.O * s.C * s.KH * s.KW < lim;
}

const CONV_GUARD = 'PARADIT_CONV_IGEMM';

/** The templated kernel body, shared by every conv of a module (one copy through the guard). */
export const CONV_IGEMM_HEADER = `#ifndef ${CONV_GUARD}
#define ${CONV_GUARD}
/* D += A * B for one m16n8k16 tile: A 16x16 row-major, B 16x8 column-major (k contiguous), fp32 D. */
template <typename T> __device__ __forceinline__ void pdt_mma16816(float* d, const unsigned* a, const unsigned* b);
#ifdef PDT_HOST_EMULATION
/* Tests run this kernel on the host (one std::thread per CUDA thread); the shim supplies the warp MMA. */
template <typename T> void pdt_mma16816_host(float* d, const unsigned* a, const unsigned* b);
template <> inline void pdt_mma16816<__nv_bfloat16>(float* d, const unsigned* a, const unsigned* b) { pdt_mma16816_host<__nv_bfloat16>(d, a, b); }
template <> inline void pdt_mma16816<__half>(float* d, const unsigned* a, const unsigned* b) { pdt_mma16816_host<__half>(d, a, b); }
/* cp.async on the host: the copy (or the zero fill) happens at issue time; groups need no wait. */
inline void pdt_cp_async16(void* dst, const void* src, bool valid) {
  if (valid) std::memcpy(dst, src, 16);
  else std::memset(dst, 0, 16);
}
inline void pdt_cp_async_commit() {}
template <int N> inline void pdt_cp_async_wait() {}
#else
/* 16 bytes global -> shared, asynchronously (sm_80+); src-size 0 zero-fills without reading src. */
__device__ __forceinline__ void pdt_cp_async16(void* dst, const void* src, bool valid) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void pdt_cp_async_commit() { asm volatile("cp.async.commit_group;"); }
/* Waits until at most N of this thread's committed groups are still in flight. */
template <int N> __device__ __forceinline__ void pdt_cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N)); }
template <> __device__ __forceinline__ void pdt_mma16816<__nv_bfloat16>(float* d, const unsigned* a, const unsigned* b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <> __device__ __forceinline__ void pdt_mma16816<__half>(float* d, const unsigned* a, const unsigned* b) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif
template <typename T> __device__ __forceinline__ unsigned pdt_lds32(const T* p) { return *reinterpret_cast<const unsigned*>(p); }
template <typename T> __device__ __forceinline__ float pdt_rnd(float x) { return pdt_to_f<T>(pdt_from_f<T>(x)); }

/* Implicit-GEMM Conv2d, group 1. 128 threads; block (bx, by) computes pixels [64 bx, 64 bx + 64)
   x channels [64 by, 64 by + 64); warp w the 32x32 quarter (w & 1, w >> 1). Upsampling by
   (UH, UW) reads row iy / UH, column ix / UW of the pre-upsample input. */
template <typename T, int M, int C, int H, int W, int UH, int UW, int O, int HO, int WO, int KH, int KW, int SH, int SW,
          int PT, int PL, int DH, int DW, bool BIAS, bool SILU>
__device__ __forceinline__ void pdt_conv_igemm(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                               T* __restrict__ y) {
  constexpr int BM = ${CONV_TILE.BM}, BN = ${CONV_TILE.BN}, BK = ${CONV_TILE.BK}, LDS = BK + 8;
  constexpr int K = C * KH * KW;
  /* Weight rows of 8-element (16-byte) chunks: the B tile streams in by cp.async into two stages
     (the next K step's copy runs during this step's MMAs); otherwise through registers. */
  constexpr bool BASYNC = K % 8 == 0;
  __shared__ __align__(16) T As[BM * LDS];
  __shared__ __align__(16) T Bs[2 * BN * LDS];
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const int wm = (warp & 1) * 32, wn = (warp >> 1) * 32;
  /* A: thread tid gathers pixel row am = tid % BM for k columns ak0 + 2 i (a warp reads 32
     consecutive pixels of one (c, ky, kx): coalesced); B: weight row tid / BK + 4 i, column tid % BK
     (consecutive k: coalesced). The next K step's values are loaded into registers while the
     tensor cores work on the current one. */
  const int am = tid % BM, ak0 = tid / BM, bk = tid % BK, bo0 = tid / BK;
  constexpr int AK = BM * BK / ${CONV_TILE.threads}, BR = BN * BK / ${CONV_TILE.threads};
  const T zero = pdt_from_f<T>(0.0f);
  const int m = m0 + am;
  const int pox = m % WO, pt = m / WO;
  const int pbat = m < M ? pt / HO : -1, py = (pt % HO) * SH - PT, px = pox * SW - PL;
  T ra[AK], rb[BR];
  /* cp.async B: chunk q = tid + threads * i is weight row q / (BK / 8), columns 8 (q % (BK / 8)) + [0, 8). */
  auto issueB = [&](int k0, int stage) {
#pragma unroll
    for (int i = 0; i < BN * BK / 8 / ${CONV_TILE.threads}; i++) {
      const int q = tid + ${CONV_TILE.threads} * i, r = q / (BK / 8), c8 = (q % (BK / 8)) * 8;
      const bool ok = n0 + r < O && k0 + c8 < K;
      pdt_cp_async16(&Bs[stage * BN * LDS + r * LDS + c8], ok ? static_cast<const void*>(w + (long long)(n0 + r) * K + k0 + c8) : static_cast<const void*>(w), ok);
    }
  };
  auto load = [&](int k0) {
#pragma unroll
    for (int i = 0; i < AK; i++) {
      const int k = k0 + ak0 + 2 * i;
      const int c = k / (KH * KW), rr = k % (KH * KW);
      const int iy = py + (rr / KW) * DH, ix = px + (rr % KW) * DW;
      ra[i] = (k < K && pbat >= 0 && iy >= 0 && iy < H * UH && ix >= 0 && ix < W * UW) ? x[((long long)(pbat * C + c) * H + iy / UH) * W + ix / UW] : zero;
    }
    if constexpr (!BASYNC) {
#pragma unroll
      for (int i = 0; i < BR; i++) {
        const int o = n0 + bo0 + 4 * i, k = k0 + bk;
        rb[i] = (o < O && k < K) ? w[(long long)o * K + k] : zero;
      }
    }
  };
  float acc[2][4][4];
#pragma unroll
  for (int a = 0; a < 2; a++)
#pragma unroll
    for (int b = 0; b < 4; b++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[a][b][e] = 0.0f;
  int stage = 0;
  if constexpr (BASYNC) {
    issueB(0, 0);
    pdt_cp_async_commit();
  }
  load(0);
  /* The K loop: the same k0 sequence for every block (exactness under rows-parallel sharding).
     Stage s^1 is refilled only after the barrier that ends the step which last read it. */
  for (int k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
    for (int i = 0; i < AK; i++) As[am * LDS + ak0 + 2 * i] = ra[i];
    if constexpr (BASYNC) {
      if (k0 + BK < K) {
        issueB(k0 + BK, stage ^ 1);
        pdt_cp_async_commit();
        pdt_cp_async_wait<1>();
      } else {
        pdt_cp_async_wait<0>();
      }
    } else {
#pragma unroll
      for (int i = 0; i < BR; i++) Bs[(bo0 + 4 * i) * LDS + bk] = rb[i];
    }
    __syncthreads();
    if (k0 + BK < K) load(k0 + BK);
    const T* Bst = Bs + stage * BN * LDS;
#pragma unroll
    for (int ks = 0; ks < BK; ks += 16) {
      unsigned af[2][4], bf[4][2];
#pragma unroll
      for (int mi = 0; mi < 2; mi++) {
        const T* p = &As[(wm + mi * 16 + g) * LDS + ks + t4 * 2];
        af[mi][0] = pdt_lds32(p);
        af[mi][1] = pdt_lds32(p + 8 * LDS);
        af[mi][2] = pdt_lds32(p + 8);
        af[mi][3] = pdt_lds32(p + 8 * LDS + 8);
      }
#pragma unroll
      for (int ni = 0; ni < 4; ni++) {
        const T* p = &Bst[(wn + ni * 8 + g) * LDS + ks + t4 * 2];
        bf[ni][0] = pdt_lds32(p);
        bf[ni][1] = pdt_lds32(p + 8);
      }
#pragma unroll
      for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 4; ni++) pdt_mma16816<T>(acc[mi][ni], af[mi], bf[ni]);
    }
    __syncthreads();
    if constexpr (BASYNC) stage ^= 1;
  }
  /* Epilogue: + bias, rounded to T (the Conv's output), then SiLU of that value. */
#pragma unroll
  for (int mi = 0; mi < 2; mi++)
#pragma unroll
    for (int ni = 0; ni < 4; ni++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int m = m0 + wm + mi * 16 + g + (e >= 2 ? 8 : 0);
        const int o = n0 + wn + ni * 8 + t4 * 2 + (e & 1);
        if (m >= M || o >= O) continue;
        float v = acc[mi][ni][e];
        if constexpr (BIAS) v += pdt_to_f<T>(bias[o]);
        v = pdt_rnd<T>(v);
        if constexpr (SILU) v = v / (1.0f + expf(-v));
        const int ox = m % WO, t = m / WO;
        y[((long long)((t / HO) * O + o) * HO + t % HO) * WO + ox] = pdt_from_f<T>(v);
      }
}
#endif
`;

const CTYPE = { bf16: '__nv_bfloat16', f16: '__half' } as const;

export interface ConvKernelText {
  readonly entry: string;
  readonly source: string;
  readonly grid: readonly [number, number, number];
  readonly block: readonly [number, number, number];
  /** Pointer parameters in order. */
  readonly params: readonly ('x' | 'w' | 'bias' | 'y')[];
}

/** One conv's entry: the template instantiated with its shapes (nvcc specializes every constant). */
export function emitConvKernel(name: string, s: ConvSpec): ConvKernelText {
  const T = CTYPE[s.dtype];
  const M = s.B * s.HO * s.WO;
  const targs = [T, M, s.C, s.H, s.W, s.UH, s.UW, s.O, s.HO, s.WO, s.KH, s.KW, s.SH, s.SW, s.PT, s.PL, s.DH, s.DW, s.bias, s.silu].join(', ');
  const params = s.bias ? (['x', 'w', 'bias', 'y'] as const) : (['x', 'w', 'y'] as const);
  const decl = params.map((p) => (p === 'y' ? `${T}* __restrict__ y` : `const ${T}* __restrict__ ${p}`)).join(', ');
  const body =
    `extern "C" __global__ void __launch_bounds__(${CONV_TILE.threads}) ${name}(${decl}) {\n` +
    `  pdt_conv_igemm<${targs}>(x, w, ${s.bias ? 'bias' : 'nullptr'}, y);\n}\n`;
  return {
    entry: name,
    source: `${KERNEL_HEADER}\n${CONV_IGEMM_HEADER}\n${body}`,
    grid: [Math.ceil(M / CONV_TILE.BM), Math.ceil(s.O / CONV_TILE.BN), 1],
    block: [CONV_TILE.threads, 1, 1],
    params,
  };
}
