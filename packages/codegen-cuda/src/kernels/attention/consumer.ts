/**
 * The consumer warpgroups: per KV tile j, S_j = Q K_j^T is issued, O is rescaled for P_{j-1}, and
 * O += P_{j-1} V_{j-1} is issued; the softmax of S_j runs while the P V product is in flight. Then
 * the epilogue normalizes O, stores it (and the log-sum-exp) with row predicates.
 */
import type { Src } from './source';
import type { KernelShape } from './shape';
import { emitScores, emitSoftmax, emitToP, LN2 } from './softmax';

function emitIssueQK(src: Src, s: KernelShape): void {
  src.line('#pragma unroll');
  src.block(`for (int kk = 0; kk < ${s.d / 16}; ++kk)`, () => {
    src.line(`const u32 off = (kk >> 2) * ${s.bm * 128} + (kk & 3) * 32;`);
    src.line(`const u32 offK = (kk >> 2) * ${s.bn * 128} + (kk & 3) * 32;`);
    src.line('mma_qk(sacc, make_desc(qAddr + off, 16, 1024), make_desc(kAddr + offK, 16, 1024), kk > 0 ? 1 : 0);');
  });
}

function emitIssuePV(src: Src, s: KernelShape): void {
  src.line('#pragma unroll');
  src.block(`for (int kk = 0; kk < ${s.bn / 16}; ++kk)`, () => {
    src.line(`mma_pv(oacc, pfrag[kk], make_desc(vAddr + kk * 2048, ${s.bn * 128}, 1024), 1);`);
  });
}

/**
 * Ping-pong (two consumers only): the consumers take turns issuing their wgmma batches, so one
 * warpgroup's softmax runs while the other's matrix products occupy the tensor cores. Named barrier
 * 1 + c gates consumer c's turn; the other consumer opens it after issuing. Arrivals balance: the
 * last turn of consumer 1 opens nothing (consumer 1 opened consumer 0's first turn instead).
 */
function beginTurn(src: Src, s: KernelShape): void {
  if (s.pingpong) src.line('named_sync(1 + cw);');
}

function endTurn(src: Src, s: KernelShape, last: boolean): void {
  if (!s.pingpong) return;
  src.line(last ? 'if (cw == 0) named_arrive(2);' : 'named_arrive(2 - cw);');
}

/** Declarations and the first tile (S_0 and its softmax; no P V product yet). */
function emitPrologue(src: Src, s: KernelShape): void {
  if (s.pingpong) src.line('if (cw == 1) named_arrive(1); // consumer 0 takes the first turn');
  src.line('mbar_wait(barQ, 0);');
  src.line('mbar_wait(barKFull, 0);', 'fence_proxy_async();');
  beginTurn(src, s);
  src.line('wg_fence();');
  src.block('', () => {
    src.line('const u32 kAddr = sK;');
    emitIssueQK(src, s);
  });
  src.line('wg_commit();');
  endTurn(src, s, false);
  src.line('wg_wait<0>();', 'pin(sacc);');
  src.line('if (lane == 0) mbar_arrive(barKEmpty);');
  src.block('', () => {
    emitScores(src, s, '0', true);
    emitSoftmax(src, s);
  });
  emitToP(src, s);
}

/**
 * O *= alpha of the latest softmax. Unmasked kernels do it just before O += P V (FA3's order: O is
 * not in flight there; measured 573 vs 566-572 TFLOP/s and steadier, perf-notes run 7); masked
 * kernels right after the previous P V lands, since the early form makes them spill.
 */
function emitRescaleO(src: Src, s: KernelShape): void {
  src.line('#pragma unroll');
  src.block(`for (int i = 0; i < ${s.dv / 2}; i += 4)`, () => {
    src.line('oacc[i] *= alpha0; oacc[i + 1] *= alpha0; oacc[i + 2] *= alpha1; oacc[i + 3] *= alpha1;');
  });
}

/** One KV tile j (the C variable named by `j`); `last`: the tile may reach past skv. */
function emitStep(src: Src, s: KernelShape, j: string, last: boolean): void {
  src.line(`const int st = ${j} % ST; const u32 ph = (${j} / ST) & 1;`);
  src.line(`const int sp = (${j} - 1) % ST; const u32 php = ((${j} - 1) / ST) & 1;`);
  src.line('mbar_wait(barKFull + 8 * st, ph);', 'fence_proxy_async();');
  beginTurn(src, s);
  src.line('wg_fence();');
  src.block('', () => {
    src.line('const u32 kAddr = sK + st * K_BYTES;');
    emitIssueQK(src, s);
  });
  src.line('wg_commit();');
  if (s.rescaleBeforePV) emitRescaleO(src, s);
  src.line('mbar_wait(barVFull + 8 * sp, php);', 'fence_proxy_async();');
  src.line('wg_fence();');
  src.block('', () => {
    src.line('const u32 vAddr = sV + sp * V_BYTES;');
    emitIssuePV(src, s);
  });
  src.line('wg_commit();');
  endTurn(src, s, false);
  src.line('wg_wait<1>();', 'pin(sacc);');
  src.line('if (lane == 0) mbar_arrive(barKEmpty + 8 * st);');
  emitScores(src, s, j, last);
  emitSoftmax(src, s);
  src.line('wg_wait<0>();', 'pin(oacc);', 'pin(pfrag);');
  src.line('if (lane == 0) mbar_arrive(barVEmpty + 8 * sp);');
  if (!s.rescaleBeforePV) emitRescaleO(src, s);
  emitToP(src, s);
}

/** The last P V product. */
function emitFinalPV(src: Src, s: KernelShape): void {
  src.line('const int sp = (nTiles - 1) % ST; const u32 php = ((nTiles - 1) / ST) & 1;');
  src.line('mbar_wait(barVFull + 8 * sp, php);', 'fence_proxy_async();');
  beginTurn(src, s);
  if (s.rescaleBeforePV) emitRescaleO(src, s);
  src.line('wg_fence();');
  src.block('', () => {
    src.line('const u32 vAddr = sV + sp * V_BYTES;');
    emitIssuePV(src, s);
  });
  src.line('wg_commit();');
  endTurn(src, s, true);
  src.line('wg_wait<0>();', 'pin(oacc);', 'pin(pfrag);');
  src.line('if (lane == 0) mbar_arrive(barVEmpty + 8 * sp);');
}

export function emitConsumer(src: Src, s: KernelShape): void {
  src.line(`asm volatile("setmaxnreg.inc.sync.aligned.u32 ${s.consumerRegs};\\n");`);
  src.line('const int cw = wg - 1, warp = t >> 5, lane = t & 31;');
  src.line('const int row0 = q0 + cw * 64 + warp * 16 + (lane >> 2), row1 = row0 + 8;');
  src.line(`float oacc[${s.dv / 2}];`);
  src.line('#pragma unroll', `for (int i = 0; i < ${s.dv / 2}; ++i) oacc[i] = 0.f;`);
  src.line(`float sacc[${s.bn / 2}];`, `u32 pfrag[${s.bn / 16}][4];`);
  src.line('float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.f, l1 = 0.f, alpha0 = 1.f, alpha1 = 1.f;');
  if (s.maskElem !== undefined) {
    // Row pointers are formed for rows past sq too but only dereferenced inside [sq, skv).
    src.line(`const ${s.maskElem}* maskRow0 = mask + b * msb + h * msh + row0 * msq;`);
    src.line(`const ${s.maskElem}* maskRow1 = maskRow0 + 8 * msq;`);
  }
  src.line('const u32 qAddr = sQ + cw * 64 * 128;');
  src.block('if (nTiles > 0)', () => {
    emitPrologue(src, s);
    // Tiles 1 .. nTiles-2 are full; the last one (which may be ragged) is peeled off so the
    // steady-state loop carries no tail test.
    src.block('for (int j = 1; j < nTiles - 1; ++j)', () => emitStep(src, s, 'j', false));
    src.block('if (nTiles > 1)', () => emitStep(src, s, '(nTiles - 1)', true));
    emitFinalPV(src, s);
  });
  emitEpilogue(src, s);
}

function emitEpilogue(src: Src, s: KernelShape): void {
  src.line('l0 += __shfl_xor_sync(0xffffffffu, l0, 1);', 'l1 += __shfl_xor_sync(0xffffffffu, l1, 1);');
  src.line('l0 += __shfl_xor_sync(0xffffffffu, l0, 2);', 'l1 += __shfl_xor_sync(0xffffffffu, l1, 2);');
  // Rows whose every key is masked (or Skv = 0) have l = 0: their output is zero, their lse -inf.
  src.line('const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;');
  src.line('elem_t* oBase = o + b * osb + h * osh;');
  src.line('#pragma unroll');
  src.block(`for (int i = 0; i < ${s.dv / 2}; i += 2)`, () => {
    src.line('const int row = (i & 2) ? row1 : row0;');
    src.line('const float inv = (i & 2) ? inv1 : inv0;');
    src.line('const int col = (i >> 2) * 8 + (lane & 3) * 2;');
    src.line('if (row < sq) *reinterpret_cast<u32*>(oBase + row * oss + col) = pack2(oacc[i] * inv, oacc[i + 1] * inv);');
  });
  if (s.spec.withLse) {
    src.block('if ((lane & 3) == 0)', () => {
      src.line('float* lseRow = lse + (static_cast<long long>(b) * heads + h) * sq;');
      src.line(`if (row0 < sq) lseRow[row0] = l0 > 0.f ? (m0 + __log2f(l0)) * ${LN2} : NEG_INF;`);
      src.line(`if (row1 < sq) lseRow[row1] = l1 > 0.f ? (m1 + __log2f(l1)) * ${LN2} : NEG_INF;`);
    });
  }
}
