/**
 * Ops defined by index arithmetic on positions: Trilu (triangular masks), OneHot (index ->
 * one-hot vector) and NonZero (positions of nonzero elements, a data-dependent shape).
 */
import { Tensor, allocData, numel, stridesOf } from '../tensor';
import type { InferCtx, OpRule, RuleCtx, RunCtx } from './rule';
import { need, tensorType } from './rule';
import { fmtShape, freshDim, scalarOf } from './shape-util';

type IndexOp = 'Trilu' | 'OneHot' | 'NonZero';

// ---------------------------------------------------------------------------------------------
// Trilu

const trilu: OpRule = {
  doc: 'Trilu(x: [..., M, N], k?: i64 scalar) {upper=1}: keeps j - i >= k (upper) or j - i <= k (lower), zeroes the rest.',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    if (x.shape.length < 2) ctx.fail(`input must have rank >= 2, got ${fmtShape(x.shape)}`);
    const k = ctx.inputs[1];
    if (k && (k.dtype !== 'i64' || k.shape.length > 1)) ctx.fail(`k must be an i64 scalar, got ${k.dtype}${fmtShape(k.shape)}`);
    return [tensorType(x.dtype, x.shape)];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const k = ctx.inputs[1] ? scalarOf(ctx, ctx.inputs[1], 'k') : 0;
    const upper = ctx.attr.int('upper', 1) !== 0;
    const m = x.shape[x.rank - 2]!;
    const n = x.shape[x.rank - 1]!;
    const out = x.data.slice();
    const mats = m * n === 0 ? 0 : x.size / (m * n);
    for (let b = 0; b < mats; b++) {
      for (let i = 0; i < m; i++) {
        const row = (b * m + i) * n;
        // Column i + k is the diagonal: upper zeroes the columns left of it, lower the ones right.
        if (upper) out.fill(0, row, row + Math.min(Math.max(i + k, 0), n));
        else out.fill(0, row + Math.min(Math.max(i + k + 1, 0), n), row + n);
      }
    }
    return [new Tensor(x.dtype, x.shape, out)];
  },
};

// ---------------------------------------------------------------------------------------------
// OneHot

function oneHotAxis(ctx: RuleCtx, rank: number): number {
  const a = ctx.attr.int('axis', -1);
  const n = a < 0 ? a + rank + 1 : a;
  if (n < 0 || n > rank) ctx.fail(`axis ${a} is out of range for a rank-${rank + 1} output`);
  return n;
}

const oneHot: OpRule = {
  doc: 'OneHot(indices, depth, values: [off, on]) {axis=-1}: inserts a depth-long dim at axis holding on at the index, off elsewhere.',
  infer(ctx: InferCtx) {
    const ind = need(ctx, ctx.inputs, 0);
    const depth = need(ctx, ctx.inputs, 1);
    const values = need(ctx, ctx.inputs, 2);
    if (depth.shape.length > 1 || (depth.shape.length === 1 && depth.shape[0] !== 1)) ctx.fail(`depth must be a scalar or have one element, got ${fmtShape(depth.shape)}`);
    if (values.shape.length !== 1 || values.shape[0] !== 2) ctx.fail(`values must be [off, on] (shape [2]), got ${fmtShape(values.shape)}`);
    const axis = oneHotAxis(ctx, ind.shape.length);
    const dv = ctx.values[1];
    let d: number | string = freshDim(ctx, axis);
    if (dv) {
      d = Math.trunc(scalarOf(ctx, dv, 'depth'));
      if (d < 1) ctx.fail(`depth must be positive, got ${d}`);
    }
    const shape = [...ind.shape];
    shape.splice(axis, 0, d);
    return [tensorType(values.dtype, shape)];
  },
  run(ctx: RunCtx) {
    const ind = need(ctx, ctx.inputs, 0);
    const depth = Math.trunc(scalarOf(ctx, need(ctx, ctx.inputs, 1), 'depth'));
    const values = need(ctx, ctx.inputs, 2);
    const axis = oneHotAxis(ctx, ind.rank);
    const [off, on] = [values.data[0]!, values.data[1]!];
    const shape = [...ind.shape];
    shape.splice(axis, 0, depth);
    const inner = numel(ind.shape.slice(axis));
    const out = allocData(values.dtype, numel(shape));
    out.fill(off);
    for (let e = 0; e < ind.size; e++) {
      let h = Math.trunc(ind.data[e]!);
      if (h < 0) h += depth;
      if (h < 0 || h >= depth) continue; // out of range: the whole vector is off
      const o = Math.floor(e / inner);
      out[(o * depth + h) * inner + (e % inner)] = on;
    }
    return [new Tensor(values.dtype, shape, out)];
  },
};

// ---------------------------------------------------------------------------------------------
// NonZero

function countNonZero(t: Tensor): number {
  let c = 0;
  for (const v of t.data) if (v !== 0) c++;
  return c;
}

const nonZero: OpRule = {
  doc: 'NonZero(x) -> i64 [rank, nnz]: coordinates of the nonzero elements in row-major order (nnz is data-dependent).',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const v = ctx.values[0];
    return [tensorType('i64', [x.shape.length, v ? countNonZero(v) : freshDim(ctx, 'nnz')])];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const r = x.rank;
    const nnz = countNonZero(x);
    const out = new Float64Array(r * nnz);
    const strides = stridesOf(x.shape);
    let c = 0;
    for (let e = 0; e < x.size; e++) {
      if (x.data[e] === 0) continue;
      let rem = e;
      for (let a = 0; a < r; a++) {
        out[a * nnz + c] = Math.floor(rem / strides[a]!);
        rem %= strides[a]!;
      }
      c++;
    }
    return [new Tensor('i64', [r, nnz], out)];
  },
};

export const indexRules: { readonly [K in IndexOp]: OpRule } = {
  Trilu: trilu,
  OneHot: oneHot,
  NonZero: nonZero,
};
