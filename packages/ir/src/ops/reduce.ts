/**
 * The reduction op table: Reduce* (here), arg-reductions, TopK and CumSum (reduce-index.ts), and
 * Softmax/LogSoftmax/Hardmax (reduce-softmax.ts), all on the block layout of reduce-kernel.ts.
 *
 * Reduce* take `axes` as an attribute before opset 18 (ReduceSum: 13) and as input 1 from then
 * on, where `noop_with_empty_axes=1` turns an empty axes list into "reduce nothing" (each output
 * element then comes from one input element: ReduceSumSquare squares, ReduceMean copies) instead
 * of "reduce everything". Accumulation is in doubles; results are rounded to the input dtype.
 */
import type { Dim } from '../graph';
import type { Tensor } from '../tensor';
import type { ReduceOp } from './op-kinds';
import type { InferCtx, OpRule, RuleCtx } from './rule';
import { need, normAxis, tensorType } from './rule';
import { DtypeClass, checkArity, checkClass, flagAttr } from './elementwise-common';
import { blocksOf, foldBlocks, foldBlocksShifted, toDtype } from './reduce-kernel';
import { indexRules } from './reduce-index';
import { softmaxRules } from './reduce-softmax';

type ReduceAllOp = Extract<ReduceOp, `Reduce${string}`>;

/** A reduction: fold `step` from `init` over the reduced elements, then `finish(acc, count)`. */
interface Reducer {
  readonly init: number;
  readonly step: (acc: number, x: number) => number;
  readonly finish?: (acc: number, count: number) => number;
  /** ReduceLogSumExp: fold exp(x - max) and add the max back, so large inputs do not overflow. */
  readonly logSumExp?: boolean;
}

const add = (a: number, x: number): number => a + x;

/** The opset from which `op` reads its axes from input 1. */
const inputAxesSince = (op: string): number => (op === 'ReduceSum' ? 13 : 18);

/**
 * The normalized, sorted axes to reduce; `[]` reduces nothing (noop_with_empty_axes). `given` is
 * input 1's value (undefined when the input is absent).
 */
export function reducedAxes(ctx: RuleCtx, rank: number, given: readonly number[] | undefined, hasInput: boolean): number[] {
  const since = inputAxesSince(ctx.node.op);
  let raw: readonly number[] | undefined;
  let noop = false;
  if (ctx.opset >= since) {
    if (ctx.attr.has('axes')) {
      ctx.fail(`from opset ${since} the axes are input 1, not an attribute (this model imports opset ${ctx.opset})`);
    }
    raw = given;
    noop = flagAttr(ctx, 'noop_with_empty_axes', 0);
  } else {
    if (hasInput) ctx.fail(`before opset ${since} the axes are an attribute; got a second input (this model imports opset ${ctx.opset})`);
    raw = ctx.attr.optInts('axes');
  }
  if (!raw || raw.length === 0) return noop ? [] : Array.from({ length: rank }, (_, i) => i);
  const axes = raw.map((a) => normAxis(ctx, a, rank));
  const sorted = [...new Set(axes)].sort((p, q) => p - q);
  if (sorted.length !== axes.length) ctx.fail(`axes [${raw.join(',')}] name an axis twice`);
  return sorted;
}

/** The output shape: reduced dims become 1 (keepdims) or disappear. */
function reducedShape<D>(shape: readonly D[], axes: readonly number[], keep: boolean, one: D): D[] {
  const set = new Set(axes);
  const out: D[] = [];
  shape.forEach((d, i) => {
    if (!set.has(i)) out.push(d);
    else if (keep) out.push(one);
  });
  return out;
}

/**
 * Output dims when the axes input is not known at compile time: with keepdims every dim may
 * become 1, so each non-1 dim gets a fresh symbol; without keepdims the rank drops by the
 * static length of the axes input and every dim is a symbol.
 */
function unknownAxesShape(ctx: InferCtx, shape: readonly Dim[], keep: boolean): Dim[] {
  const base = `${ctx.node.name || ctx.node.op}_d`;
  const axesLen = ctx.inputs[1]!.shape[0];
  const noop = flagAttr(ctx, 'noop_with_empty_axes', 0);
  if (axesLen === 0) return noop ? [...shape] : reducedShape(shape, shape.map((_, i) => i), keep, 1);
  if (keep) return shape.map((d, i) => (d === 1 ? 1 : `${base}${i}`));
  if (typeof axesLen !== 'number' || noop) {
    ctx.fail('input 1 (axes) must be known at compile time when keepdims=0 (the output rank depends on it)');
  }
  return Array.from({ length: shape.length - axesLen }, (_, i) => `${base}${i}`);
}

function reduceRule(doc: string, cls: DtypeClass, r: Reducer): OpRule {
  return {
    doc,
    infer(ctx) {
      checkArity(ctx, 1, 2);
      const x = need(ctx, ctx.inputs, 0);
      checkClass(ctx, x.dtype, cls, 'input 0 (data)');
      const a = ctx.inputs[1];
      if (a && a.dtype !== 'i64') ctx.fail(`input 1 (axes) must be i64, got ${a.dtype}`);
      if (a && a.shape.length !== 1) ctx.fail(`input 1 (axes) must be 1-D, got shape [${a.shape.join(',')}]`);
      const keep = flagAttr(ctx, 'keepdims', 1);
      const inputForm = ctx.opset >= inputAxesSince(ctx.node.op);
      if (inputForm && a && !ctx.values[1]) {
        reducedAxes(ctx, x.shape.length, undefined, true); // checks the attributes
        return [tensorType(x.dtype, unknownAxesShape(ctx, x.shape, keep))];
      }
      const given = inputForm ? ctx.values[1]?.toArray() : undefined;
      const axes = reducedAxes(ctx, x.shape.length, given, a !== undefined);
      return [tensorType(x.dtype, reducedShape<Dim>(x.shape, axes, keep, 1))];
    },
    run(ctx) {
      const x = need(ctx, ctx.inputs, 0);
      const axes = reducedAxes(ctx, x.rank, ctx.inputs[1]?.toArray(), ctx.inputs[1] !== undefined);
      const shape = reducedShape(x.shape, axes, flagAttr(ctx, 'keepdims', 1), 1);
      return [reduceTensor(x, axes, shape, r)];
    },
  };
}

function reduceTensor(x: Tensor, axes: readonly number[], shape: readonly number[], r: Reducer): Tensor {
  const b = blocksOf(x, axes);
  const n = b.outer * b.inner;
  const acc = new Float64Array(n);
  if (r.logSumExp) {
    const max = new Float64Array(n);
    foldBlocks(b, -Infinity, (m, v) => (v > m || v !== v ? v : m), max);
    // An all -inf (or empty) block has max -inf: shifting would give NaN, and the answer is max.
    const safe = max.map((m) => (Number.isFinite(m) ? m : 0));
    foldBlocksShifted(b, safe, 0, (s, v) => s + Math.exp(v), acc);
    for (let i = 0; i < n; i++) acc[i] = Number.isFinite(max[i]!) ? Math.log(acc[i]!) + safe[i]! : max[i]!;
  } else {
    foldBlocks(b, r.init, r.step, acc);
    const fin = r.finish;
    if (fin) for (let i = 0; i < n; i++) acc[i] = fin(acc[i]!, b.len);
  }
  return toDtype(x.dtype, shape, acc);
}

const reduceAllRules: { readonly [K in ReduceAllOp]: OpRule } = {
  ReduceSum: reduceRule('ReduceSum(data, axes?) {keepdims=1, noop_with_empty_axes=0}: sum over axes.', 'numeric', {
    init: 0,
    step: add,
  }),
  ReduceMean: reduceRule('ReduceMean(data, axes?) {keepdims, noop_with_empty_axes}: mean over axes.', 'numeric', {
    init: 0,
    step: add,
    finish: (s, n) => s / n,
  }),
  ReduceMax: reduceRule('ReduceMax(data, axes?) {keepdims, noop_with_empty_axes}: maximum (NaN propagates; empty: -inf).', 'any', {
    init: -Infinity,
    step: (m, v) => (v > m || v !== v ? v : m),
  }),
  ReduceMin: reduceRule('ReduceMin(data, axes?) {keepdims, noop_with_empty_axes}: minimum (NaN propagates; empty: +inf).', 'any', {
    init: Infinity,
    step: (m, v) => (v < m || v !== v ? v : m),
  }),
  ReduceProd: reduceRule('ReduceProd(data, axes?) {keepdims, noop_with_empty_axes}: product over axes.', 'numeric', {
    init: 1,
    step: (p, v) => p * v,
  }),
  ReduceL1: reduceRule('ReduceL1(data, axes?) {keepdims, noop_with_empty_axes}: sum of |x|.', 'numeric', {
    init: 0,
    step: (s, v) => s + Math.abs(v),
  }),
  ReduceL2: reduceRule('ReduceL2(data, axes?) {keepdims, noop_with_empty_axes}: sqrt of the sum of x^2.', 'numeric', {
    init: 0,
    step: (s, v) => s + v * v,
    finish: Math.sqrt,
  }),
  ReduceLogSum: reduceRule('ReduceLogSum(data, axes?) {keepdims, noop_with_empty_axes}: log of the sum.', 'numeric', {
    init: 0,
    step: add,
    finish: Math.log,
  }),
  ReduceLogSumExp: reduceRule('ReduceLogSumExp(data, axes?) {keepdims, noop_with_empty_axes}: log of the sum of e^x.', 'numeric', {
    init: 0,
    step: add,
    logSumExp: true,
  }),
  ReduceSumSquare: reduceRule('ReduceSumSquare(data, axes?) {keepdims, noop_with_empty_axes}: sum of x^2.', 'numeric', {
    init: 0,
    step: (s, v) => s + v * v,
  }),
};

export const reduceRules: { readonly [K in ReduceOp]: OpRule } = {
  ...reduceAllRules,
  ...indexRules,
  ...softmaxRules,
};
