/**
 * Index-producing reductions and scans along one axis: ArgMax/ArgMin (int64 positions), TopK
 * (values and int64 indices of the k largest or smallest), and CumSum (running sums). All use
 * the (outer, len, inner) blocks of reduce-kernel.ts around the axis.
 */
import type { Dim } from '../graph';
import { Tensor } from '../tensor';
import type { ReduceOp } from './op-kinds';
import type { OpRule, RuleCtx } from './rule';
import { need, normAxis, tensorType } from './rule';
import { checkArity, checkClass, flagAttr } from './elementwise-common';
import { argBlocks, axisBlocks, toDtype } from './reduce-kernel';

type IndexOp = Extract<ReduceOp, 'ArgMax' | 'ArgMin' | 'TopK' | 'CumSum'>;

function argRule(doc: string, better: (a: number, b: number) => boolean): OpRule {
  return {
    doc,
    infer(ctx) {
      checkArity(ctx, 1, 1);
      const x = need(ctx, ctx.inputs, 0);
      checkClass(ctx, x.dtype, 'numeric', 'input 0 (data)');
      const axis = normAxis(ctx, ctx.attr.int('axis', 0), x.shape.length);
      if (x.shape[axis] === 0) ctx.fail(`cannot take ${ctx.node.op} over axis ${axis} of size 0`);
      flagAttr(ctx, 'select_last_index', 0);
      const keep = flagAttr(ctx, 'keepdims', 1);
      const shape: Dim[] = x.shape.flatMap((d, i) => (i !== axis ? [d] : keep ? [1] : []));
      return [tensorType('i64', shape)];
    },
    run(ctx) {
      const x = need(ctx, ctx.inputs, 0);
      const axis = normAxis(ctx, ctx.attr.int('axis', 0), x.rank);
      const keep = flagAttr(ctx, 'keepdims', 1);
      const b = axisBlocks(x, axis);
      const out = new Float64Array(b.outer * b.inner);
      argBlocks(b, better, flagAttr(ctx, 'select_last_index', 0), out);
      const shape = x.shape.flatMap((d, i) => (i !== axis ? [d] : keep ? [1] : []));
      return [new Tensor('i64', shape, out)];
    },
  };
}

/** CumSum's axis: a scalar (or one-element) int32/int64 tensor. */
function cumsumAxis(ctx: RuleCtx, t: Tensor, rank: number): number {
  if (t.size !== 1) ctx.fail(`input 1 (axis) must be a scalar, got shape [${t.shape.join(',')}]`);
  return normAxis(ctx, t.data[0]!, rank);
}

const CumSum: OpRule = {
  doc: 'CumSum(x, axis) {exclusive=0, reverse=0}: running sums along axis (exclusive skips the current element).',
  infer(ctx) {
    checkArity(ctx, 2, 2);
    const x = need(ctx, ctx.inputs, 0);
    const a = need(ctx, ctx.inputs, 1);
    checkClass(ctx, x.dtype, 'numeric', 'input 0 (x)');
    if (a.dtype !== 'i32' && a.dtype !== 'i64') ctx.fail(`input 1 (axis) must be i32 or i64, got ${a.dtype}`);
    if (a.shape.length > 1 || (a.shape.length === 1 && a.shape[0] !== 1)) ctx.fail(`input 1 (axis) must be a scalar, got shape [${a.shape.join(',')}]`);
    const v = ctx.values[1];
    if (v) cumsumAxis(ctx, v, x.shape.length);
    flagAttr(ctx, 'exclusive', 0);
    flagAttr(ctx, 'reverse', 0);
    return [tensorType(x.dtype, x.shape, x.placement)];
  },
  run(ctx) {
    const x = need(ctx, ctx.inputs, 0);
    const axis = cumsumAxis(ctx, need(ctx, ctx.inputs, 1), x.rank);
    const exclusive = flagAttr(ctx, 'exclusive', 0);
    const reverse = flagAttr(ctx, 'reverse', 0);
    const { data, outer, len, inner } = axisBlocks(x, axis);
    const out = new Float64Array(x.size);
    const acc = new Float64Array(inner);
    for (let o = 0; o < outer; o++) {
      acc.fill(0);
      for (let t = 0; t < len; t++) {
        const row = (o * len + (reverse ? len - 1 - t : t)) * inner;
        for (let i = 0; i < inner; i++) {
          const v = data[row + i]!;
          if (exclusive) {
            out[row + i] = acc[i]!;
            acc[i]! += v;
          } else out[row + i] = acc[i]! += v;
        }
      }
    }
    return [toDtype(x.dtype, x.shape, out)];
  },
};

/** TopK's k: attribute before opset 10, input 1 (int64 [1]) from opset 10; undefined if unknown. */
function topkK(ctx: RuleCtx, given: Tensor | undefined): number | undefined {
  if (ctx.opset < 10) return ctx.attr.int('k');
  if (!given) return undefined;
  if (given.size !== 1) ctx.fail(`input 1 (K) must hold one value, got shape [${given.shape.join(',')}]`);
  const k = given.data[0]!;
  if (k < 0) ctx.fail(`K must be non-negative, got ${k}`);
  return k;
}

const TopK: OpRule = {
  doc: 'TopK(X, K) {axis=-1, largest=1, sorted=1} -> (Values, Indices: i64): the k largest (or smallest) along axis; ties keep the lower index first.',
  infer(ctx) {
    checkArity(ctx, ctx.opset < 10 ? 1 : 2, ctx.opset < 10 ? 1 : 2);
    const x = need(ctx, ctx.inputs, 0);
    checkClass(ctx, x.dtype, 'numeric', 'input 0 (X)');
    if (ctx.opset >= 10 && need(ctx, ctx.inputs, 1).dtype !== 'i64') ctx.fail(`input 1 (K) must be i64, got ${ctx.inputs[1]!.dtype}`);
    const axis = normAxis(ctx, ctx.attr.int('axis', -1), x.shape.length);
    flagAttr(ctx, 'largest', 1);
    flagAttr(ctx, 'sorted', 1);
    const k = topkK(ctx, ctx.values[1]);
    const dim = x.shape[axis]!;
    if (k !== undefined && typeof dim === 'number' && k > dim) ctx.fail(`k = ${k} exceeds the size ${dim} of axis ${axis}`);
    const shape = [...x.shape];
    shape[axis] = k ?? `${ctx.node.name || 'topk'}_k`;
    return [tensorType(x.dtype, shape), tensorType('i64', shape)];
  },
  run(ctx) {
    const x = need(ctx, ctx.inputs, 0);
    const axis = normAxis(ctx, ctx.attr.int('axis', -1), x.rank);
    const largest = flagAttr(ctx, 'largest', 1);
    const k = topkK(ctx, ctx.inputs[1])!;
    const { data, outer, len, inner } = axisBlocks(x, axis);
    if (k > len) ctx.fail(`k = ${k} exceeds the size ${len} of axis ${axis}`);
    const vals = new Float64Array(len);
    const order = new Uint32Array(len);
    // Sorted order (output is always sorted, which `sorted=0` permits); equal values keep the
    // lower index first, as the spec asks.
    const cmp = largest ? (p: number, q: number): number => vals[q]! - vals[p]! || p - q : (p: number, q: number): number => vals[p]! - vals[q]! || p - q;
    const outV = new Float64Array(outer * k * inner);
    const outI = new Float64Array(outer * k * inner);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        for (let r = 0; r < len; r++) {
          vals[r] = data[(o * len + r) * inner + i]!;
          order[r] = r;
        }
        order.sort(cmp);
        for (let t = 0; t < k; t++) {
          const at = (o * k + t) * inner + i;
          outV[at] = vals[order[t]!]!;
          outI[at] = order[t]!;
        }
      }
    }
    const shape = [...x.shape];
    shape[axis] = k;
    return [toDtype(x.dtype, shape, outV), new Tensor('i64', shape, outI)];
  },
};

export const indexRules: { readonly [K in IndexOp]: OpRule } = {
  ArgMax: argRule('ArgMax(data) {axis=0, keepdims=1, select_last_index=0} -> i64: position of the maximum along axis.', (a, b) => a > b),
  ArgMin: argRule('ArgMin(data) {axis=0, keepdims=1, select_last_index=0} -> i64: position of the minimum along axis.', (a, b) => a < b),
  CumSum,
  TopK,
};
