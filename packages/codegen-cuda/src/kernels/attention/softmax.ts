/**
 * The consumer's per-tile softmax, rendered into the loop body: scores in log2 units (scale, mask,
 * ragged tail), the online max / rescale / exp2 / row sums, and the packing of P into the wgmma
 * A-register layout. Accumulator layout of wgmma m64nN (per thread, i in [0, N/2)):
 *   row = warp*16 + lane/4 + 8*((i >> 1) & 1),  col = (i >> 2)*8 + (lane & 3)*2 + (i & 1).
 */
import type { Src } from './source';
import type { KernelShape } from './shape';

export const LOG2E = '1.4426950408889634f';
export const LN2 = '0.6931471805599453f';

/**
 * Scores of tile `j` in log2 units: masked entries and keys past skv become -inf. `last`: the tile
 * is the last one, the only one that can reach past skv; unmasked kernels emit nothing at all for
 * the other tiles (the steady-state loop stays branch-free: +23% at S=1024, perf-notes run 6).
 */
export function emitScores(src: Src, s: KernelShape, j: string, last: boolean): void {
  const n = s.bn / 2;
  if (s.maskElem === undefined) {
    // Raw scores stay unscaled (scale > 0 is checked on the host); only the ragged tail is masked.
    if (!last) return;
    src.line(`const int kv0 = ${j} * BN;`);
    src.block('if (kv0 + BN > skv)', () => {
      src.line('#pragma unroll');
      src.block(`for (int i = 0; i < ${n}; ++i)`, () => {
        src.line('const int col = kv0 + (i >> 2) * 8 + (lane & 3) * 2 + (i & 1);');
        src.line('if (col >= skv) sacc[i] = NEG_INF;');
      });
    });
    return;
  }
  src.line(`const int kv0 = ${j} * BN;`);
  // Fast branch: the whole tile is inside [sq, skv) and the key stride is 1, so every load is
  // a row pointer plus a compile-time offset. Otherwise bounds and strides are checked per element.
  src.block('if (msk == 1 && kv0 + BN <= skv && row1 < sq)', () => {
    src.line(`const ${s.maskElem}* mp0 = maskRow0 + kv0 + (lane & 3) * 2;`);
    src.line(`const ${s.maskElem}* mp1 = maskRow1 + kv0 + (lane & 3) * 2;`);
    src.line('#pragma unroll');
    src.block(`for (int i = 0; i < ${n}; ++i)`, () => {
      src.line('const auto mv = ((i & 2) ? mp1 : mp0)[(i >> 2) * 8 + (i & 1)];');
      src.line(`sacc[i] = ${maskedScore(s)};`);
    });
  });
  src.block('else', () => {
    src.line('#pragma unroll');
    src.block(`for (int i = 0; i < ${n}; ++i)`, () => {
      src.line('const int row = (i & 2) ? row1 : row0;');
      src.line('const int col = kv0 + (i >> 2) * 8 + (lane & 3) * 2 + (i & 1);');
      src.line('float x = NEG_INF;');
      src.block('if (row < sq && col < skv)', () => {
        src.line('const auto mv = ((i & 2) ? maskRow1 : maskRow0)[col * msk];');
        src.line(`x = ${maskedScore(s)};`);
      });
      src.line('sacc[i] = x;');
    });
  });
}

/** The score of sacc[i] in log2 units given its mask element `mv`. */
function maskedScore(s: KernelShape): string {
  switch (s.spec.mask) {
    case 'bool':
      return 'mv != 0 ? sacc[i] * scaleLog2 : NEG_INF';
    case 'additive-f32':
      return `fmaf(sacc[i], scaleLog2, mv * ${LOG2E})`;
    case 'additive-bf16':
      return `fmaf(sacc[i], scaleLog2, __bfloat162float(mv) * ${LOG2E})`;
    case 'additive-f16':
      return `fmaf(sacc[i], scaleLog2, __half2float(mv) * ${LOG2E})`;
    case 'none':
      throw new Error('unreachable: mask none has no mask element');
  }
}

/** Online softmax of sacc in place; leaves the per-row rescale factors in alpha0/alpha1. */
export function emitSoftmax(src: Src, s: KernelShape): void {
  const n = s.bn / 2;
  const scaled = s.maskElem !== undefined; // masked scores are already in log2 units
  src.line('float mx0 = NEG_INF, mx1 = NEG_INF;');
  src.line('#pragma unroll');
  src.block(`for (int i = 0; i < ${n}; i += 4)`, () => {
    src.line('mx0 = fmaxf(mx0, fmaxf(sacc[i], sacc[i + 1]));');
    src.line('mx1 = fmaxf(mx1, fmaxf(sacc[i + 2], sacc[i + 3]));');
  });
  src.line('mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));', 'mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));');
  src.line('mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));', 'mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));');
  const mul = scaled ? '' : ' * scaleLog2';
  src.line(`const float mNew0 = fmaxf(m0, mx0${mul});`, `const float mNew1 = fmaxf(m1, mx1${mul});`);
  // A row with every score -inf so far keeps a finite reference so no inf - inf appears.
  src.line('const float mUse0 = mNew0 == NEG_INF ? 0.f : mNew0;', 'const float mUse1 = mNew1 == NEG_INF ? 0.f : mNew1;');
  src.line('alpha0 = ex2(m0 - mUse0);', 'alpha1 = ex2(m1 - mUse1);');
  src.line('m0 = mNew0;', 'm1 = mNew1;');
  src.line('float sum0 = 0.f, sum1 = 0.f;');
  src.line('#pragma unroll');
  src.block(`for (int i = 0; i < ${n}; i += 4)`, () => {
    if (scaled) {
      src.line('sacc[i] = ex2(sacc[i] - mUse0);', 'sacc[i + 1] = ex2(sacc[i + 1] - mUse0);');
      src.line('sacc[i + 2] = ex2(sacc[i + 2] - mUse1);', 'sacc[i + 3] = ex2(sacc[i + 3] - mUse1);');
    } else {
      src.line('const float nm0 = -mUse0, nm1 = -mUse1;');
      src.line('sacc[i] = ex2(fmaf(sacc[i], scaleLog2, nm0));', 'sacc[i + 1] = ex2(fmaf(sacc[i + 1], scaleLog2, nm0));');
      src.line('sacc[i + 2] = ex2(fmaf(sacc[i + 2], scaleLog2, nm1));', 'sacc[i + 3] = ex2(fmaf(sacc[i + 3], scaleLog2, nm1));');
    }
    src.line('sum0 += sacc[i] + sacc[i + 1];', 'sum1 += sacc[i + 2] + sacc[i + 3];');
  });
  src.line('l0 = l0 * alpha0 + sum0;', 'l1 = l1 * alpha1 + sum1;');
}

export function emitToP(src: Src, s: KernelShape): void {
  src.line('#pragma unroll');
  src.block(`for (int kk = 0; kk < ${s.bn / 16}; ++kk)`, () => {
    src.line(`pfrag[kk][0] = pack2(sacc[8 * kk + 0], sacc[8 * kk + 1]);`);
    src.line(`pfrag[kk][1] = pack2(sacc[8 * kk + 2], sacc[8 * kk + 3]);`);
    src.line(`pfrag[kk][2] = pack2(sacc[8 * kk + 4], sacc[8 * kk + 5]);`);
    src.line(`pfrag[kk][3] = pack2(sacc[8 * kk + 6], sacc[8 * kk + 7]);`);
  });
}
