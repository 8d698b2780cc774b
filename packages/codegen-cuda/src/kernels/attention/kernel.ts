/**
 * The attention kernel's __global__ function: one block per (64 * consumers query rows, head, batch).
 *
 * Warpgroup 0 is the producer: it streams Q once and then K/V tiles of BN keys into an ST-deep ring
 * of swizzled shared-memory stages with cp.async (zero fill past Sq/Skv), signalling a "full" mbarrier
 * per stage when its copies land. The other warpgroups are consumers, each owning 64 query rows:
 *   S_j = Q K_j^T (wgmma, smem x smem) is issued together with O += P_{j-1} V_{j-1} (wgmma, P from
 *   registers); the online softmax of S_j (fp32, log2 domain) runs while the P V product is still
 *   in flight; then S_j becomes the bf16/fp16 P of the next step (see consumer.ts). With two
 *   consumers they take turns issuing wgmma (ping-pong), so one's softmax overlaps the other's MMAs.
 * Consumers release a stage through its "empty" mbarrier (one arrival per warp).
 */
import { emitConsumer } from './consumer';
import type { KernelShape } from './shape';
import { Src } from './source';

export function kernelParams(shape: KernelShape): string[] {
  const p = [
    `const ${shape.elem}* __restrict__ q`,
    `const ${shape.elem}* __restrict__ k`,
    `const ${shape.elem}* __restrict__ v`,
    `${shape.elem}* __restrict__ o`,
  ];
  if (shape.maskElem !== undefined) p.push(`const ${shape.maskElem}* __restrict__ mask`);
  if (shape.spec.withLse) p.push('float* __restrict__ lse');
  p.push('int heads', 'int kvGroup', 'int sq', 'int skv', 'float scaleLog2');
  for (const t of ['q', 'k', 'v', 'o']) p.push(`long long ${t}sb`, `long long ${t}sh`, `long long ${t}ss`);
  if (shape.maskElem !== undefined) p.push('long long msb', 'long long msh', 'long long msq', 'long long msk');
  return p;
}

/**
 * Producer: copies a [rows x cols] tile (row stride `<what>Stride`) into the swizzled stage at
 * `<what>Dst`. Each thread owns one 16-byte column chunk and every (128 / chunksPerRow)-th row, so
 * its swizzled column (chunk ^ (row & 7)) is the same for all of its rows: one pointer and one
 * shared address, both stepped by a constant.
 */
function emitTileLoad(src: Src, what: string, rows: number, cols: number): void {
  const chunksPerRow = cols / 8;
  const rowsPerPass = 128 / chunksPerRow;
  const passes = rows / rowsPerPass;
  src.block('', () => {
    src.line(`const int rowIn = t / ${chunksPerRow}, col8 = t % ${chunksPerRow};`);
    src.line(`const u32 dst = ${what}Dst + (col8 >> 3) * ${rows * 128} + rowIn * 128 + (((col8 & 7) ^ (rowIn & 7)) << 4);`);
    src.line(`const elem_t* p = ${what}Base + static_cast<long long>(${what}Row0 + rowIn) * ${what}Stride + col8 * 8;`);
    src.line(`const long long step = ${rowsPerPass} * ${what}Stride;`);
    src.line(`const int left = ${what}Rows - ${what}Row0 - rowIn;`);
    // A running pointer (not p + i * step) keeps the compiler from hoisting 64-bit offsets.
    src.line('#pragma unroll');
    src.block(`for (int i = 0; i < ${passes}; ++i, p += step)`, () => {
      src.line(`const bool ok = i * ${rowsPerPass} < left;`);
      src.line(`cp_async16(dst + i * ${rowsPerPass * 128}, ok ? p : ${what}Base, ok ? 16u : 0u);`);
    });
  });
}

function emitProducer(src: Src, s: KernelShape): void {
  src.line(`asm volatile("setmaxnreg.dec.sync.aligned.u32 ${s.producerRegs};\\n");`);
  src.line('const elem_t* qBase = q + b * qsb + h * qsh;');
  src.line('const elem_t* kBase = k + b * ksb + kvh * ksh;');
  src.line('const elem_t* vBase = v + b * vsb + kvh * vsh;');
  src.line('const int qRow0 = q0, qRows = sq; const long long qStride = qss; const u32 qDst = sQ;');
  emitTileLoad(src, 'q', s.bm, s.d);
  src.line('cp_async_arrive(barQ);');
  src.line('const int kRows = skv, vRows = skv; const long long kStride = kss, vStride = vss;');
  src.block('for (int j = 0; j < nTiles; ++j)', () => {
    src.line('const int st = j % ST; const u32 ph = (j / ST) & 1;');
    src.line('const int kRow0 = j * BN, vRow0 = j * BN;');
    src.line('mbar_wait(barKEmpty + 8 * st, ph ^ 1);');
    src.line('const u32 kDst = sK + st * K_BYTES;');
    emitTileLoad(src, 'k', s.bn, s.d);
    src.line('cp_async_arrive(barKFull + 8 * st);');
    src.line('mbar_wait(barVEmpty + 8 * st, ph ^ 1);');
    src.line('const u32 vDst = sV + st * V_BYTES;');
    emitTileLoad(src, 'v', s.bn, s.dv);
    src.line('cp_async_arrive(barVFull + 8 * st);');
  });
  src.line('cp_async_wait_all();');
}

export function renderKernel(s: KernelShape): string {
  const src = new Src();
  src.line(`extern "C" __global__ void __launch_bounds__(${s.threads}, 1) ${s.entry}(`);
  const params = kernelParams(s);
  params.forEach((p, i) => src.line(`    ${p}${i + 1 < params.length ? ',' : ')'}`));
  src.block('', () => {
    src.line('const float NEG_INF = __int_as_float(0xff800000); // -inf without math.h macros (NVRTC)');
    src.line('extern __shared__ unsigned char smemRaw[];');
    src.line('const u32 sQ = (smem_u32(smemRaw) + 1023u) & ~1023u;');
    src.line('const u32 sK = sQ + Q_BYTES, sV = sK + ST * K_BYTES, barQ = sV + ST * V_BYTES;');
    src.line('const u32 barKFull = barQ + 8, barKEmpty = barKFull + 8 * ST;');
    src.line('const u32 barVFull = barKEmpty + 8 * ST, barVEmpty = barVFull + 8 * ST;');
    src.line('const int q0 = blockIdx.x * BM, h = blockIdx.y;', 'const long long b = blockIdx.z;');
    src.line('const int kvh = h / kvGroup;', 'const int nTiles = (skv + BN - 1) / BN;');
    src.line('const int wg = threadIdx.x >> 7, t = threadIdx.x & 127;');
    src.block('if (threadIdx.x == 0)', () => {
      src.line('mbar_init(barQ, 128);');
      src.block('for (int i = 0; i < ST; ++i)', () => {
        src.line('mbar_init(barKFull + 8 * i, 128);', 'mbar_init(barVFull + 8 * i, 128);');
        src.line(`mbar_init(barKEmpty + 8 * i, ${4 * s.consumers});`, `mbar_init(barVEmpty + 8 * i, ${4 * s.consumers});`);
      });
    });
    src.line('__syncthreads();');
    src.block('if (wg == 0)', () => emitProducer(src, s));
    src.block('else', () => emitConsumer(src, s));
  });
  return src.toString();
}
