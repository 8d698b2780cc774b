/**
 * Softmax, LogSoftmax and Hardmax. Their axis changed meaning in opset 13:
 * - opset < 13: default axis 1; the input is viewed as 2-D [prod(dims < axis), prod(dims >= axis)]
 *   and normalized over the whole second dim;
 * - opset >= 13: default axis -1; normalized over that single axis.
 * Softmax subtracts the block maximum before exponentiating, so large logits do not overflow.
 */
import type { Tensor } from '../tensor';
import type { ReduceOp } from './op-kinds';
import type { OpRule, RuleCtx } from './rule';
import { need, normAxis, tensorType } from './rule';
import { checkArity, checkClass } from './elementwise-common';
import { Blocks, argBlocks, axisBlocks, flattenBlocks, toDtype } from './reduce-kernel';

type SoftmaxOp = Extract<ReduceOp, 'Softmax' | 'LogSoftmax' | 'Hardmax'>;
type Mode = 'softmax' | 'log' | 'hard';

function blocksFor(ctx: RuleCtx, x: Tensor): Blocks {
  const legacy = ctx.opset < 13;
  const axis = normAxis(ctx, ctx.attr.int('axis', legacy ? 1 : -1), x.rank);
  return legacy ? flattenBlocks(x, axis) : axisBlocks(x, axis);
}

/** Softmax (or log-softmax) of each block, written in the input's layout. */
function softmaxBlocks(b: Blocks, log: boolean, out: Float64Array): void {
  const { data, outer, len, inner } = b;
  const max = new Float64Array(inner);
  const sum = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    const base = o * len * inner;
    max.fill(-Infinity);
    sum.fill(0);
    for (let r = 0, row = base; r < len; r++, row += inner) {
      for (let i = 0; i < inner; i++) if (data[row + i]! > max[i]!) max[i] = data[row + i]!;
    }
    for (let r = 0, row = base; r < len; r++, row += inner) {
      for (let i = 0; i < inner; i++) {
        const e = Math.exp(data[row + i]! - max[i]!);
        out[row + i] = e;
        sum[i]! += e;
      }
    }
    if (log) for (let i = 0; i < inner; i++) sum[i] = max[i]! + Math.log(sum[i]!);
    for (let r = 0, row = base; r < len; r++, row += inner) {
      for (let i = 0; i < inner; i++) out[row + i] = log ? data[row + i]! - sum[i]! : out[row + i]! / sum[i]!;
    }
  }
}

/** One-hot of the first maximum of each block. */
function hardmaxBlocks(b: Blocks, out: Float64Array): void {
  const { outer, len, inner } = b;
  const idx = new Float64Array(outer * inner);
  argBlocks(b, (p, q) => p > q, false, idx);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) out[(o * len + idx[o * inner + i]!) * inner + i] = 1;
  }
}

function softmaxRule(doc: string, mode: Mode): OpRule {
  return {
    doc,
    infer(ctx) {
      checkArity(ctx, 1, 1);
      const x = need(ctx, ctx.inputs, 0);
      checkClass(ctx, x.dtype, 'float', 'input 0 (input)');
      normAxis(ctx, ctx.attr.int('axis', ctx.opset < 13 ? 1 : -1), x.shape.length);
      return [tensorType(x.dtype, x.shape, x.placement)];
    },
    run(ctx) {
      const x = need(ctx, ctx.inputs, 0);
      const b = blocksFor(ctx, x);
      const out = new Float64Array(x.size);
      if (x.size > 0) {
        if (mode === 'hard') hardmaxBlocks(b, out);
        else softmaxBlocks(b, mode === 'log', out);
      }
      return [toDtype(x.dtype, x.shape, out)];
    },
  };
}

export const softmaxRules: { readonly [K in SoftmaxOp]: OpRule } = {
  Softmax: softmaxRule('Softmax(input) {axis}: e^x / sum e^x over axis (before opset 13: over all dims from axis on, default 1).', 'softmax'),
  LogSoftmax: softmaxRule('LogSoftmax(input) {axis}: x - log sum e^x over axis (before opset 13: over all dims from axis on).', 'log'),
  Hardmax: softmaxRule('Hardmax(input) {axis}: 1 at the first maximum over axis, 0 elsewhere (before opset 13: over all dims from axis on).', 'hard'),
};
