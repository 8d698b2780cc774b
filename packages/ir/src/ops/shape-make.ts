/**
 * Ops that make tensors from shapes, scalars or attributes: Shape, Size, ConstantOfShape, Range,
 * Constant, EyeLike. Shape and Size only read their input's type, so with static dims their
 * outputs are compile-time values (the builder folds them).
 */
import type { Dim } from '../graph';
import type { DType } from '../dtype';
import { dtypeFromOnnx, onnxTypeName } from '../dtype';
import { isStaticShape } from '../graph';
import { Tensor, numel } from '../tensor';
import type { InferCtx, OpRule, RuleCtx, RunCtx } from './rule';
import { need, tensorType } from './rule';
import { fmtShape, freshDim, inputInts, scalarOf } from './shape-util';

type MakeOp = 'Shape' | 'Size' | 'ConstantOfShape' | 'Range' | 'Constant' | 'EyeLike';

// ---------------------------------------------------------------------------------------------
// Shape, Size

/** Shape-15's [start, end) window of the dims, clamped to [0, rank]. */
function shapeWindow(ctx: RuleCtx, rank: number): [number, number] {
  if (ctx.opset < 15) return [0, rank];
  const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
  const start = clamp(ctx.attr.int('start', 0));
  const end = ctx.attr.has('end') ? clamp(ctx.attr.int('end')) : rank;
  return [start, Math.max(start, end)];
}

const shape: OpRule = {
  doc: 'Shape(data) {start=0, end=rank}: i64 1-D tensor of the dims data.shape[start:end].',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const [s, e] = shapeWindow(ctx, x.shape.length);
    return [tensorType('i64', [e - s])];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const [s, e] = shapeWindow(ctx, x.rank);
    return [new Tensor('i64', [e - s], Float64Array.from(x.shape.slice(s, e)))];
  },
  fold(ctx: InferCtx) {
    // Only the window's dims need to be static: Shape(x)[1:] of [B,S,64] is known.
    const x = need(ctx, ctx.inputs, 0);
    const [s, e] = shapeWindow(ctx, x.shape.length);
    const dims = x.shape.slice(s, e);
    return isStaticShape(dims) ? [new Tensor('i64', [e - s], Float64Array.from(dims))] : undefined;
  },
};

const size: OpRule = {
  doc: 'Size(data): i64 scalar, the number of elements.',
  infer(ctx: InferCtx) {
    need(ctx, ctx.inputs, 0);
    return [tensorType('i64', [])];
  },
  run(ctx: RunCtx) {
    return [Tensor.scalar('i64', need(ctx, ctx.inputs, 0).size)];
  },
  fold(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    return isStaticShape(x.shape) ? [Tensor.scalar('i64', numel(x.shape))] : undefined;
  },
};

// ---------------------------------------------------------------------------------------------
// ConstantOfShape

function fillValue(ctx: RuleCtx): Tensor {
  const v = ctx.attr.tensor('value');
  if (v === undefined) return Tensor.scalar('f32', 0);
  if (v.size !== 1) ctx.fail(`value must have exactly one element, got shape ${fmtShape(v.shape)}`);
  return v;
}

const constantOfShape: OpRule = {
  doc: 'ConstantOfShape(shape: i64[k]) {value: one-element tensor, default f32 0}: a tensor of that shape filled with value.',
  infer(ctx: InferCtx) {
    const s = need(ctx, ctx.inputs, 0);
    if (s.dtype !== 'i64') ctx.fail(`shape must be i64, got ${s.dtype}`);
    const dtype = fillValue(ctx).dtype;
    const dims = inputInts(ctx, 0, 'input 0 (shape)');
    if (dims.kind === 'known') {
      if (dims.values.some((d) => d < 0)) ctx.fail(`shape ${fmtShape(dims.values)} has negative dims`);
      return [tensorType(dtype, dims.values)];
    }
    if (dims.kind !== 'unknown' || dims.length === undefined) ctx.fail('the shape is unknown and has symbolic length, so the output rank is unknown');
    return [tensorType(dtype, Array.from({ length: dims.length }, (_, i): Dim => freshDim(ctx, i)))];
  },
  run(ctx: RunCtx) {
    const dims = need(ctx, ctx.inputs, 0).toArray();
    const v = fillValue(ctx);
    const t = Tensor.zeros(v.dtype, dims);
    t.data.fill(v.data[0]!);
    return [t];
  },
};

// ---------------------------------------------------------------------------------------------
// Range

const RANGE_DTYPES: readonly DType[] = ['f32', 'f64', 'i16', 'i32', 'i64', 'f16', 'bf16'];

function rangeLength(ctx: RuleCtx, start: number, limit: number, delta: number): number {
  if (delta === 0) ctx.fail('delta must not be 0');
  return Math.max(Math.ceil((limit - start) / delta), 0);
}

const range: OpRule = {
  doc: 'Range(start, limit, delta: scalars) -> [max(ceil((limit-start)/delta), 0)]: start + i*delta.',
  infer(ctx: InferCtx) {
    const ts = [0, 1, 2].map((i) => need(ctx, ctx.inputs, i));
    const dtype = ts[0]!.dtype;
    if (!RANGE_DTYPES.includes(dtype)) ctx.fail(`start must be one of ${RANGE_DTYPES.join(', ')}, got ${dtype}`);
    ts.forEach((t, i) => {
      if (t.dtype !== dtype) ctx.fail(`input ${i} must have the dtype of start (${dtype}), got ${t.dtype}`);
      if (t.shape.length > 1 || (t.shape.length === 1 && t.shape[0] !== 1)) ctx.fail(`input ${i} must be a scalar, got shape ${fmtShape(t.shape)}`);
    });
    const [s, l, d] = [0, 1, 2].map((i) => ctx.values[i]);
    if (!s || !l || !d) return [tensorType(dtype, [freshDim(ctx, 0)])];
    return [tensorType(dtype, [rangeLength(ctx, scalarOf(ctx, s, 'start'), scalarOf(ctx, l, 'limit'), scalarOf(ctx, d, 'delta'))])];
  },
  run(ctx: RunCtx) {
    const [s, l, d] = [0, 1, 2].map((i) => need(ctx, ctx.inputs, i));
    const start = scalarOf(ctx, s!, 'start');
    const delta = scalarOf(ctx, d!, 'delta');
    const n = rangeLength(ctx, start, scalarOf(ctx, l!, 'limit'), delta);
    const t = Tensor.zeros(s!.dtype, [n]);
    for (let i = 0; i < n; i++) t.data[i] = start + i * delta;
    return [Tensor.normalized(s!.dtype, [n], t.data)];
  },
};

// ---------------------------------------------------------------------------------------------
// Constant

const CONSTANT_ATTRS = ['value', 'value_float', 'value_floats', 'value_int', 'value_ints', 'value_string', 'value_strings', 'sparse_value'];

function constantValue(ctx: RuleCtx): Tensor {
  const given = CONSTANT_ATTRS.filter((a) => ctx.attr.has(a));
  if (given.length !== 1) ctx.fail(`exactly one of ${CONSTANT_ATTRS.join(', ')} must be set, got ${given.length ? given.join(', ') : 'none'}`);
  const name = given[0]!;
  switch (name) {
    case 'value':
      return ctx.attr.tensor('value')!;
    case 'value_float':
      return Tensor.scalar('f32', ctx.attr.float('value_float'));
    case 'value_floats': {
      const v = ctx.attr.floats('value_floats');
      return Tensor.from('f32', [v.length], v);
    }
    case 'value_int':
      return Tensor.scalar('i64', ctx.attr.int('value_int'));
    case 'value_ints': {
      const v = ctx.attr.ints('value_ints');
      return Tensor.from('i64', [v.length], v);
    }
    default:
      return ctx.fail(`attribute '${name}' is not supported (ParaDiT has no string or sparse tensors)`);
  }
}

const constant: OpRule = {
  doc: 'Constant() {value | value_float(s) | value_int(s)}: the attribute as a tensor.',
  infer(ctx: InferCtx) {
    const v = constantValue(ctx);
    return [tensorType(v.dtype, v.shape)];
  },
  run(ctx: RunCtx) {
    return [constantValue(ctx)];
  },
};

// ---------------------------------------------------------------------------------------------
// EyeLike

function eyeDtype(ctx: RuleCtx, input: DType): DType {
  if (!ctx.attr.has('dtype')) return input;
  const code = ctx.attr.int('dtype');
  const d = dtypeFromOnnx(code);
  if (d === undefined) ctx.fail(`dtype ${onnxTypeName(code)} is not supported`);
  return d;
}

const eyeLike: OpRule = {
  doc: 'EyeLike(x: [M, N]) {dtype, k=0}: ones where j - i == k, zeros elsewhere, shaped like x.',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    if (x.shape.length !== 2) ctx.fail(`input must be 2-D, got ${fmtShape(x.shape)}`);
    return [tensorType(eyeDtype(ctx, x.dtype), x.shape)];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const k = ctx.attr.int('k', 0);
    const [m, n] = x.shape as [number, number];
    const t = Tensor.zeros(eyeDtype(ctx, x.dtype), [m, n]);
    for (let i = Math.max(0, -k); i < m && i + k < n; i++) t.data[i * n + i + k] = 1;
    return [t];
  },
};

export const makeRules: { readonly [K in MakeOp]: OpRule } = {
  Shape: shape,
  Size: size,
  ConstantOfShape: constantOfShape,
  Range: range,
  Constant: constant,
  EyeLike: eyeLike,
};
