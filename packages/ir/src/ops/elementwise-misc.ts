/**
 * The remaining elementwise ops: variadic Max/Min/Sum/Mean, Where, Clip (attribute form before
 * opset 11, input form after), Cast/CastLike (with fp8 `saturate`), Identity and inference-mode
 * Dropout.
 */
import type { TensorType } from '../graph';
import type { DType } from '../dtype';
import { dtypeFromOnnx, f32ToFp8Bits, fp8BitsToF32, onnxTypeName } from '../dtype';
import { Tensor, allocData, numel } from '../tensor';
import { IrError } from '../errors';
import type { ElementwiseOp } from './op-kinds';
import type { InferCtx, OpRule, RuleCtx, RunCtx } from './rule';
import { need, tensorType } from './rule';
import type { BinaryRow } from './broadcast';
import { ADD_ROW, MAX_ROW, MIN_ROW, broadcastInto, mapBinaryRows, mapTernary, mapUnary } from './broadcast';
import { DtypeClass, broadcastType, checkArity, checkClass, checkDtype, flagAttr, runShape } from './elementwise-common';

type MiscOp = Extract<ElementwiseOp, 'Max' | 'Min' | 'Sum' | 'Mean' | 'Where' | 'Clip' | 'Cast' | 'CastLike' | 'Identity' | 'Dropout'>;

/** Max/Min/Sum/Mean over any number of inputs, all of one dtype, broadcast together. */
function variadicRule(doc: string, cls: DtypeClass, combine: BinaryRow, mean = false): OpRule {
  return {
    doc,
    infer(ctx) {
      checkArity(ctx, 1, Infinity);
      const types = ctx.inputs.map((t, i) => {
        if (!t) return ctx.fail(`input ${i} is missing; every input of a variadic op is required`);
        return t;
      });
      checkClass(ctx, types[0]!.dtype, cls, 'input 0');
      types.forEach((t, i) => checkDtype(ctx, t.dtype, types[0]!.dtype, `input ${i}`));
      return [broadcastType(ctx, types, types[0]!.dtype)];
    },
    run(ctx) {
      const ins = ctx.inputs.map((_, i) => need(ctx, ctx.inputs, i));
      const d = ins[0]!.dtype;
      const shape = runShape(ctx, ins.map((t) => t.shape));
      const n = numel(shape);
      if (ins.length === 2 && !mean) {
        // The common case: one rounding of the exact pairwise result, no accumulator.
        const out = allocData(d, n);
        mapBinaryRows(ins[0]!, ins[1]!, shape, out, combine);
        return [Tensor.normalized(d, shape, out)];
      }
      // Accumulate in doubles in output layout; the in-place update is safe because every
      // accumulator element is read only by the output element at the same index.
      const acc = new Float64Array(n);
      broadcastInto(ins[0]!, shape, acc);
      for (let k = 1; k < ins.length; k++) mapBinaryRows({ data: acc, shape }, ins[k]!, shape, acc, combine);
      if (mean) {
        const inv = ins.length;
        for (let i = 0; i < n; i++) acc[i] = acc[i]! / inv;
      }
      const out = allocData(d, n);
      if (out instanceof Float64Array) return [Tensor.normalized(d, shape, acc)];
      out.set(acc);
      return [Tensor.normalized(d, shape, out)];
    },
  };
}

const Where: OpRule = {
  doc: 'Where(C: bool, X, Y): c ? x : y, all three broadcast together.',
  infer(ctx) {
    checkArity(ctx, 3, 3);
    const c = need(ctx, ctx.inputs, 0);
    const x = need(ctx, ctx.inputs, 1);
    const y = need(ctx, ctx.inputs, 2);
    checkClass(ctx, c.dtype, 'bool', 'input 0 (condition)');
    if (y.dtype !== x.dtype) ctx.fail(`input 2 (Y): expected ${x.dtype} (the dtype of input 1, X), got ${y.dtype}`);
    return [broadcastType(ctx, [c, x, y], x.dtype)];
  },
  run(ctx) {
    const [c, x, y] = [0, 1, 2].map((i) => need(ctx, ctx.inputs, i)) as [Tensor, Tensor, Tensor];
    const shape = runShape(ctx, [c.shape, x.shape, y.shape]);
    const out = allocData(x.dtype, numel(shape));
    mapTernary(c, x, y, shape, out, (k, a, b) => (k ? a : b));
    return [new Tensor(x.dtype, shape, out)]; // values come from X or Y: already in the dtype
  },
};

// The float attribute defaults of Clip-6 (numeric_limits<float>::lowest() and max()).
const FLT_MAX = 3.4028234663852886e38;

/** Clip's bounds: attributes before opset 11, optional scalar inputs 1 and 2 from opset 11. */
function clipBounds(ctx: RuleCtx, inputs: readonly (Tensor | undefined)[] | undefined): [number, number] {
  if (ctx.opset < 11) return [ctx.attr.float('min', -FLT_MAX), ctx.attr.float('max', FLT_MAX)];
  const lo = inputs?.[1];
  const hi = inputs?.[2];
  return [lo ? lo.data[0]! : -Infinity, hi ? hi.data[0]! : Infinity];
}

const Clip: OpRule = {
  doc: 'Clip(X, min?, max?): min(max(x, min), max); bounds are attributes before opset 11, scalar inputs after.',
  infer(ctx) {
    checkArity(ctx, 1, ctx.opset < 11 ? 1 : 3);
    const x = need(ctx, ctx.inputs, 0);
    checkClass(ctx, x.dtype, ctx.opset < 11 ? 'float' : 'numeric', 'input 0 (input)');
    ctx.inputs.slice(1).forEach((b, k) => {
      if (!b) return;
      const what = `input ${k + 1} (${k === 0 ? 'min' : 'max'})`;
      checkDtype(ctx, b.dtype, x.dtype, what);
      const n = b.shape.reduce<number>((p, d) => (typeof d === 'number' ? p * d : NaN), 1);
      if (n !== 1) ctx.fail(`${what} must be a scalar, got shape [${b.shape.join(',')}]`);
    });
    clipBounds(ctx, undefined);
    return [tensorType(x.dtype, x.shape, x.placement)];
  },
  run(ctx) {
    const x = need(ctx, ctx.inputs, 0);
    const [lo, hi] = clipBounds(ctx, ctx.inputs);
    const out = allocData(x.dtype, x.size);
    mapUnary(x.data, out, (v) => Math.min(Math.max(v, lo), hi));
    return [Tensor.normalized(x.dtype, x.shape, out)];
  },
};

/** Cast's target dtype; an ONNX type ParaDiT lacks (STRING, INT4...) is unsupported, not invalid. */
function castTarget(ctx: RuleCtx): DType {
  const to = ctx.attr.int('to');
  const d = dtypeFromOnnx(to);
  if (!d) {
    const msg = `cannot cast to ${onnxTypeName(to)} (attribute to=${to}): ParaDiT has no such dtype`;
    throw new IrError('E_UNSUPPORTED', `${ctx.node.op}${ctx.node.name ? ` '${ctx.node.name}'` : ''}: ${msg}`, ctx.node.name);
  }
  return d;
}

const FP8: ReadonlySet<DType> = new Set(['f8e4m3fn', 'f8e4m3fnuz', 'f8e5m2', 'f8e5m2fnuz']);

/**
 * Converts x to dtype `to`: floats round to nearest even (fp8 clamps to its largest finite value
 * unless `saturate` is 0), floats become integers by truncation then wrap-around, anything
 * nonzero (NaN included, as in C and numpy) becomes true.
 */
function castTensor(x: Tensor, to: DType, saturate: boolean): Tensor {
  if (x.dtype === to) return x;
  const n = x.size;
  const out = allocData(to, n);
  if (to === 'bool') {
    mapUnary(x.data, out, (v) => (v !== 0 ? 1 : 0));
    return new Tensor(to, x.shape, out);
  }
  if (FP8.has(to) && !saturate) {
    // Out-of-range values become NaN (or inf for e5m2) rather than clamping; build the tensor
    // directly since Tensor.normalized would round with saturation.
    mapUnary(x.data, out, (v) => fp8BitsToF32(to, f32ToFp8Bits(to, v, false)));
    return new Tensor(to, x.shape, out);
  }
  out.set(x.data);
  return Tensor.normalized(to, x.shape, out);
}

function castType(ctx: InferCtx, x: TensorType, to: DType): TensorType[] {
  flagAttr(ctx, 'saturate', 1);
  return [tensorType(to, x.shape, x.placement)];
}

const Cast: OpRule = {
  doc: 'Cast(X) {to, saturate=1}: converts to dtype `to` (float->int truncates, ints wrap, nonzero->true).',
  infer(ctx) {
    checkArity(ctx, 1, 1);
    return castType(ctx, need(ctx, ctx.inputs, 0), castTarget(ctx));
  },
  run(ctx) {
    return [castTensor(need(ctx, ctx.inputs, 0), castTarget(ctx), flagAttr(ctx, 'saturate', 1))];
  },
};

const CastLike: OpRule = {
  doc: 'CastLike(X, like) {saturate=1}: Cast to the dtype of `like`.',
  infer(ctx) {
    checkArity(ctx, 2, 2);
    return castType(ctx, need(ctx, ctx.inputs, 0), need(ctx, ctx.inputs, 1).dtype);
  },
  run(ctx) {
    return [castTensor(need(ctx, ctx.inputs, 0), need(ctx, ctx.inputs, 1).dtype, flagAttr(ctx, 'saturate', 1))];
  },
};

const Identity: OpRule = {
  doc: 'Identity(X): X unchanged.',
  infer(ctx) {
    checkArity(ctx, 1, 1);
    return [need(ctx, ctx.inputs, 0)];
  },
  run(ctx) {
    return [need(ctx, ctx.inputs, 0)];
  },
};

/** Dropout's mask dtype: the input's before opset 10, bool after. */
const maskDtype = (ctx: RuleCtx, x: DType): DType => (ctx.opset < 10 ? x : 'bool');

/**
 * Fails for a training-mode Dropout that would drop anything (its output is random). Ratio and
 * training_mode are inputs from opset 12 (values may be unknown at compile time: undefined).
 */
function checkInference(ctx: RuleCtx, ratio: Tensor | undefined, training: Tensor | undefined, hasRatio: boolean): void {
  if (ctx.opset < 12) {
    const r = ctx.attr.float('ratio', 0.5);
    if (!(r >= 0 && r < 1)) ctx.fail(`attribute 'ratio' must be in [0, 1), got ${r}`);
    return;
  }
  if (!training || !training.data[0]) return;
  const r = hasRatio ? ratio?.data[0] : 0.5;
  if (r !== 0) {
    ctx.fail(
      `training_mode is true with ratio ${r ?? '(unknown)'}: training-mode Dropout draws a random mask, ` +
        'which an inference compiler cannot reproduce; export the model in eval mode',
    );
  }
}

const Dropout: OpRule = {
  doc: 'Dropout(data, ratio?, training_mode?) -> (output, mask?): inference mode, output = data and mask all true.',
  infer(ctx) {
    checkArity(ctx, 1, ctx.opset < 12 ? 1 : 3);
    if (ctx.numOutputs > 2) ctx.fail(`has at most 2 outputs (output, mask), the node declares ${ctx.numOutputs}`);
    const x = need(ctx, ctx.inputs, 0);
    checkClass(ctx, x.dtype, 'float', 'input 0 (data)');
    const t = ctx.inputs[2];
    if (t && t.dtype !== 'bool') ctx.fail(`input 2 (training_mode) must be bool, got ${t.dtype}`);
    checkInference(ctx, ctx.values[1], ctx.values[2], ctx.inputs[1] !== undefined);
    return [tensorType(x.dtype, x.shape, x.placement), tensorType(maskDtype(ctx, x.dtype), x.shape, x.placement)];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    checkInference(ctx, ctx.inputs[1], ctx.inputs[2], ctx.inputs[1] !== undefined);
    if (ctx.numOutputs < 2) return [x];
    const md = maskDtype(ctx, x.dtype);
    const mask = allocData(md, x.size).fill(1);
    return [x, new Tensor(md, x.shape, mask)];
  },
};

export const miscRules: { readonly [K in MiscOp]: OpRule } = {
  Max: variadicRule('Max(X0, X1, ...): elementwise maximum, broadcast (NaN propagates).', 'numeric', MAX_ROW),
  Min: variadicRule('Min(X0, X1, ...): elementwise minimum, broadcast (NaN propagates).', 'numeric', MIN_ROW),
  Sum: variadicRule('Sum(X0, X1, ...): elementwise sum, broadcast.', 'numeric', ADD_ROW),
  Mean: variadicRule('Mean(X0, X1, ...): elementwise mean, broadcast.', 'float', ADD_ROW, true),
  Where,
  Clip,
  Cast,
  CastLike,
  Identity,
  Dropout,
};
