/**
 * Contractions: MatMul (numpy semantics: 1-D operands are promoted and the added axis removed,
 * batch axes broadcast) and Gemm (Y = alpha·op(A)·op(B) + beta·C with optional transposes and a
 * C that broadcasts to [M, N]). Both accumulate in doubles and round the result to the dtype.
 */
import type { Dim, TensorType } from '../graph';
import { Tensor, numel, stridesOf } from '../tensor';
import type { InferCtx, OpRule, RunCtx } from './rule';
import { broadcastShapes, need, sameDtype, tensorType } from './rule';
import { alloc, broadcastStrides, finish, fmt, gemm, permute, requireNumeric } from './nn-kernels';

/** Shapes of a MatMul after 1-D promotion, and which promoted axes to drop from the result. */
interface MatMulPlan {
  readonly a: readonly Dim[];
  readonly b: readonly Dim[];
  readonly batch: Dim[];
  readonly out: Dim[];
}

function planMatMul(ctx: InferCtx | RunCtx, aShape: readonly Dim[], bShape: readonly Dim[]): MatMulPlan {
  if (aShape.length === 0 || bShape.length === 0) {
    ctx.fail(`operands must have rank >= 1, got A ${fmt(aShape)} and B ${fmt(bShape)}`);
  }
  const a = aShape.length === 1 ? [1, aShape[0]!] : aShape;
  const b = bShape.length === 1 ? [bShape[0]!, 1] : bShape;
  const ka = a[a.length - 1]!;
  const kb = b[b.length - 2]!;
  if (typeof ka === 'number' && typeof kb === 'number' && ka !== kb) {
    ctx.fail(`inner dimensions differ: A is ${fmt(aShape)}, B is ${fmt(bShape)} (A's last axis ${ka} must equal B's ${bShape.length === 1 ? 'only' : 'second-to-last'} axis ${kb})`);
  }
  const batch = broadcastShapes(ctx, [a.slice(0, -2), b.slice(0, -2)]);
  const out: Dim[] = [...batch];
  if (aShape.length > 1) out.push(a[a.length - 2]!);
  if (bShape.length > 1) out.push(b[b.length - 1]!);
  return { a, b, batch, out };
}

/** Batched matmul of already-promoted static shapes; returns the output data ([...batch, M, N]). */
function runBatched(A: Tensor, B: Tensor, aShape: readonly number[], bShape: readonly number[], batch: readonly number[], outDtype: Tensor['dtype']) {
  const M = aShape[aShape.length - 2]!;
  const K = aShape[aShape.length - 1]!;
  const N = bShape[bShape.length - 1]!;
  const nb = numel(batch);
  const out = alloc(outDtype, [nb, M, N]);
  const aBatch = aShape.slice(0, -2);
  const bBatch = bShape.slice(0, -2);
  // Fast path: B has no (non-unit) batch axes and A is not broadcast: one [nb*M, K] x [K, N] call.
  if (numel(bBatch) === 1 && numel(aBatch) === nb) {
    gemm(A.data, 0, K, B.data, 0, N, out, 0, N, nb * M, K, N);
    return out;
  }
  const as = broadcastStrides(aBatch, batch);
  const bs = broadcastStrides(bBatch, batch);
  const bstr = stridesOf(batch);
  for (let t = 0; t < nb; t++) {
    let ao = 0;
    let bo = 0;
    let rem = t;
    for (let d = 0; d < batch.length; d++) {
      const i = Math.floor(rem / bstr[d]!);
      rem -= i * bstr[d]!;
      ao += i * as[d]!;
      bo += i * bs[d]!;
    }
    gemm(A.data, ao * M * K, K, B.data, bo * K * N, N, out, t * M * N, N, M, K, N);
  }
  return out;
}

const MatMul: OpRule = {
  doc: 'MatMul(A[..., M, K], B[..., K, N]) -> [..., M, N]: numpy matmul; 1-D operands are promoted (and the added axis dropped), batch axes broadcast.',
  infer(ctx) {
    const a = need(ctx, ctx.inputs, 0);
    const b = need(ctx, ctx.inputs, 1);
    const dtype = sameDtype(ctx, [a, b]);
    requireNumeric(ctx, dtype, 'A');
    return [tensorType(dtype, planMatMul(ctx, a.shape, b.shape).out)];
  },
  run(ctx) {
    const A = need(ctx, ctx.inputs, 0);
    const B = need(ctx, ctx.inputs, 1);
    const plan = planMatMul(ctx, A.shape, B.shape);
    const data = runBatched(A, B, plan.a as number[], plan.b as number[], plan.batch as number[], A.dtype);
    return [finish(A.dtype, plan.out as number[], data)];
  },
};

function gemmShapes(ctx: InferCtx | RunCtx, a: readonly Dim[], b: readonly Dim[]) {
  if (a.length !== 2 || b.length !== 2) ctx.fail(`A and B must be 2-D, got A ${fmt(a)} and B ${fmt(b)}`);
  const transA = ctx.attr.int('transA', 0) !== 0;
  const transB = ctx.attr.int('transB', 0) !== 0;
  const M = transA ? a[1]! : a[0]!;
  const Ka = transA ? a[0]! : a[1]!;
  const Kb = transB ? b[1]! : b[0]!;
  const N = transB ? b[0]! : b[1]!;
  if (typeof Ka === 'number' && typeof Kb === 'number' && Ka !== Kb) {
    ctx.fail(`inner dimensions differ: op(A) is [${M},${Ka}] (A ${fmt(a)}, transA=${+transA}), op(B) is [${Kb},${N}] (B ${fmt(b)}, transB=${+transB})`);
  }
  return { transA, transB, M, N };
}

/** C must broadcast unidirectionally to [M, N]. */
function checkBias(ctx: InferCtx, c: TensorType, M: Dim, N: Dim): void {
  const s = c.shape;
  if (s.length > 2) ctx.fail(`C must have rank <= 2 to broadcast to [${M},${N}], got ${fmt(s)}`);
  const target = [M, N].slice(2 - s.length);
  s.forEach((d, i) => {
    const t = target[i]!;
    if (d !== 1 && typeof d === 'number' && typeof t === 'number' && d !== t) {
      ctx.fail(`C ${fmt(s)} does not broadcast to the output [${M},${N}]`);
    }
  });
}

const Gemm: OpRule = {
  doc: 'Gemm(A[M,K] (or [K,M] with transA), B[K,N] (or [N,K] with transB), C?) -> [M,N] = alpha*op(A)*op(B) + beta*C, C broadcast to [M,N].',
  infer(ctx) {
    const a = need(ctx, ctx.inputs, 0);
    const b = need(ctx, ctx.inputs, 1);
    const c = ctx.inputs[2];
    const dtype = sameDtype(ctx, [a, b, c]);
    requireNumeric(ctx, dtype, 'A');
    const { M, N } = gemmShapes(ctx, a.shape, b.shape);
    if (c) checkBias(ctx, c, M, N);
    return [tensorType(dtype, [M, N])];
  },
  run(ctx) {
    const A = need(ctx, ctx.inputs, 0);
    const B = need(ctx, ctx.inputs, 1);
    const C = ctx.inputs[2];
    const { transA, transB, M, N } = gemmShapes(ctx, A.shape, B.shape);
    const m = M as number;
    const n = N as number;
    const K = transA ? A.shape[0]! : A.shape[1]!;
    const alpha = ctx.attr.float('alpha', 1);
    const beta = ctx.attr.float('beta', 1);
    const a = transA ? permute(A.data, A.shape, [1, 0]) : A.data;
    const b = transB ? permute(B.data, B.shape, [1, 0]) : B.data;
    const out = alloc(A.dtype, [m, n]);
    gemm(a, 0, K, b, 0, n, out, 0, n, m, K, n);
    if (alpha !== 1) for (let i = 0; i < out.length; i++) out[i] = alpha * out[i]!;
    if (C && beta !== 0) {
      const cs = broadcastStrides(C.shape, [m, n]);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) out[i * n + j] = out[i * n + j]! + beta * C.data[i * cs[0]! + j * cs[1]!]!;
      }
    }
    return [finish(A.dtype, [m, n], out)];
  },
};

export const matmulRules = { MatMul, Gemm } as const;
