/**
 * Device helpers of the attention kernel, rendered into a per-kernel namespace so that several
 * generated kernels can share one module: mbarriers, cp.async with zero fill, the wgmma shared-memory
 * descriptor and the two wgmma shapes the kernel issues (S = Q K^T from shared memory, O += P V with P
 * from registers), each with its exact PTX operand list.
 *
 * Shared-memory tiles use the 128-byte swizzle of wgmma: a tile of R rows by C (multiple of 64)
 * 16-bit elements is stored as C/64 column blocks of R rows x 128 bytes; the 16-byte chunk c of row r
 * sits at chunk (c ^ (r & 7)). Q and K are read K-major (the head dim is the reduction axis); V is
 * read MN-major (transposed B), with LBO = distance between 64-wide column blocks, SBO = 8 rows.
 */
import { operandList, Src } from './source';
import type { KernelShape } from './shape';

/** wgmma m64nNk16, both operands from shared memory (descriptors), f32 accumulators. */
function wgmmaSS(name: string, n: number, ptxType: string, transB: 0 | 1): string {
  const regs = n / 2;
  const outs: string[] = [];
  for (let i = 0; i < regs; i++) outs.push(`"+f"(d[${i}])`);
  const src = new Src();
  src.block(`__device__ __forceinline__ void ${name}(float (&d)[${regs}], u64 descA, u64 descB, int accumulate)`, () => {
    src.line('asm volatile(');
    src.line('  "{\\n.reg .pred p;\\n"');
    src.line(`  "setp.ne.b32 p, %${regs + 2}, 0;\\n"`);
    src.line(`  "wgmma.mma_async.sync.aligned.m64n${n}k16.f32.${ptxType}.${ptxType} "`);
    src.line(`  "{${operandList(0, regs)}}, %${regs}, %${regs + 1}, p, 1, 1, 0, ${transB};\\n}\\n"`);
    src.line(`  : ${outs.join(', ')}`);
    src.line('  : "l"(descA), "l"(descB), "r"(accumulate));');
  });
  return src.toString();
}

/** wgmma m64nNk16 with A (4 packed registers per thread) from registers, B from shared memory. */
function wgmmaRS(name: string, n: number, ptxType: string, transB: 0 | 1): string {
  const regs = n / 2;
  const outs: string[] = [];
  for (let i = 0; i < regs; i++) outs.push(`"+f"(d[${i}])`);
  const src = new Src();
  src.block(`__device__ __forceinline__ void ${name}(float (&d)[${regs}], const u32 (&a)[4], u64 descB, int accumulate)`, () => {
    src.line('asm volatile(');
    src.line('  "{\\n.reg .pred p;\\n"');
    src.line(`  "setp.ne.b32 p, %${regs + 5}, 0;\\n"`);
    src.line(`  "wgmma.mma_async.sync.aligned.m64n${n}k16.f32.${ptxType}.${ptxType} "`);
    src.line(`  "{${operandList(0, regs)}}, {${operandList(regs, 4)}}, %${regs + 4}, p, 1, 1, ${transB};\\n}\\n"`);
    src.line(`  : ${outs.join(', ')}`);
    src.line('  : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descB), "r"(accumulate));');
  });
  return src.toString();
}

const COMMON_HELPERS = String.raw`typedef unsigned int u32;
typedef unsigned long long u64;

__device__ __forceinline__ u32 smem_u32(const void* p) {
  return static_cast<u32>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
  asm volatile(
    "{\n.reg .pred P1;\nLAB_WAIT:\n"
    "mbarrier.try_wait.parity.shared::cta.b64 P1, [%0], %1;\n"
    "@!P1 bra LAB_WAIT;\n}\n" :: "r"(bar), "r"(parity) : "memory");
}
__device__ __forceinline__ void mbar_arrive(u32 bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" :: "r"(bar) : "memory");
}
// 16-byte async copy; srcBytes = 0 zero-fills the destination without reading the source.
__device__ __forceinline__ void cp_async16(u32 dst, const void* src, u32 srcBytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(dst), "l"(src), "r"(srcBytes) : "memory");
}
// Arrives on the mbarrier once every cp.async this thread issued so far has landed.
__device__ __forceinline__ void cp_async_arrive(u32 bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" :: "r"(bar) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.wait_all;\n" ::: "memory");
}
// cp.async writes through the generic proxy; wgmma reads through the async proxy.
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Shared-memory matrix descriptor, 128-byte swizzle (layout type 1 in bits 62-63).
__device__ __forceinline__ u64 make_desc(u32 addr, u32 lbo, u32 sbo) {
  return static_cast<u64>((addr & 0x3FFFF) >> 4) | (static_cast<u64>(lbo >> 4) << 16) |
         (static_cast<u64>(sbo >> 4) << 32) | (1ull << 62);
}
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wg_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(N) : "memory");
}
// Keeps the compiler from touching registers an in-flight wgmma still reads or writes.
template <int N> __device__ __forceinline__ void pin(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i]) :: "memory");
}
template <int N> __device__ __forceinline__ void pin(u32 (&r)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) asm volatile("" : "+r"(r[i][j]) :: "memory");
  }
}
// Named barriers 1 and 2 order the two consumer warpgroups' wgmma issue (256 threads each).
__device__ __forceinline__ void named_sync(u32 id) { asm volatile("bar.sync %0, 256;\n" :: "r"(id) : "memory"); }
__device__ __forceinline__ void named_arrive(u32 id) { asm volatile("bar.arrive %0, 256;\n" :: "r"(id) : "memory"); }
__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}
`;

/** Opens the kernel's namespace with every helper it uses (renderSource closes it). */
export function renderHelpers(shape: KernelShape): string {
  const src = new Src();
  src.line(`namespace ${shape.ns} {`);
  src.append(COMMON_HELPERS);
  src.line(`typedef ${shape.elem} elem_t;`);
  src.line(`typedef ${shape.elem2} elem2_t;`);
  src.line(`constexpr int D = ${shape.d};`, `constexpr int DV = ${shape.dv};`);
  src.line(`constexpr int BM = ${shape.bm};`, `constexpr int BN = ${shape.bn};`, `constexpr int ST = ${shape.stages};`);
  src.line('constexpr u32 Q_BYTES = BM * D * 2;', 'constexpr u32 K_BYTES = BN * D * 2;', 'constexpr u32 V_BYTES = BN * DV * 2;');
  src.block('__device__ __forceinline__ u32 pack2(float lo, float hi)', () => {
    src.line(`elem2_t v = ${shape.pack2}(lo, hi);`);
    src.line('return *reinterpret_cast<u32*>(&v);');
  });
  src.append(wgmmaSS('mma_qk', shape.bn, shape.ptxType, 0));
  src.append(wgmmaRS('mma_pv', shape.dv, shape.ptxType, 1));
  // The namespace stays open: the kernel (extern "C", so its name is unmangled) is defined inside
  // it, so its helpers never clash with other kernels' globals in the same module.
  return src.toString();
}
