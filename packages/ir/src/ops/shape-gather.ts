/**
 * Indexing by index tensors: Gather, GatherElements, GatherND and their writing counterparts
 * ScatterND and ScatterElements. Indices are i32/i64 (stored as numbers); negative indices count
 * from the end of their dim; an out-of-range index fails naming the index and the dim size.
 */
import type { Dim, TensorType } from '../graph';
import type { DType } from '../dtype';
import { roundTo, toIntegerDtype, isInteger } from '../dtype';
import { Tensor, allocData, numel, stridesOf } from '../tensor';
import type { TensorData } from '../tensor';
import type { InferCtx, OpRule, RuleCtx, RunCtx } from './rule';
import { need, normAxis, tensorType } from './rule';
import { fmtShape, needIndexDtype, wrapIndex } from './shape-util';

type GatherOp = 'Gather' | 'GatherElements' | 'GatherND' | 'ScatterND' | 'ScatterElements';

/** Copies n elements src[s..] to dst[d..], as a block copy when long. */
function copyBlock(src: TensorData, s: number, dst: TensorData, d: number, n: number): void {
  if (n >= 16) dst.set(src.subarray(s, s + n), d);
  else for (let j = 0; j < n; j++) dst[d + j] = src[s + j]!;
}

/** Fails at compile time on known out-of-range indices (a static dim of size `size`). */
function checkKnownIndices(ctx: RuleCtx, values: Tensor | undefined, size: Dim, what: string): void {
  if (!values || typeof size !== 'number') return;
  for (const v of values.data) wrapIndex(ctx, v, size, what);
}

// ---------------------------------------------------------------------------------------------
// Gather

const gather: OpRule = {
  doc: 'Gather(data, indices) {axis=0}: out[a.., i.., b..] = data[a.., indices[i..], b..].',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const idx = need(ctx, ctx.inputs, 1);
    needIndexDtype(ctx, idx, 'indices');
    if (x.shape.length === 0) ctx.fail('data must have rank >= 1, got a scalar');
    const axis = normAxis(ctx, ctx.attr.int('axis', 0), x.shape.length);
    checkKnownIndices(ctx, ctx.values[1], x.shape[axis]!, `axis ${axis}`);
    return [tensorType(x.dtype, [...x.shape.slice(0, axis), ...idx.shape, ...x.shape.slice(axis + 1)])];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const ind = need(ctx, ctx.inputs, 1);
    const axis = normAxis(ctx, ctx.attr.int('axis', 0), x.rank);
    const size = x.shape[axis]!;
    const outer = numel(x.shape.slice(0, axis));
    const inner = numel(x.shape.slice(axis + 1));
    const n = ind.size;
    const rows = new Float64Array(n);
    for (let j = 0; j < n; j++) rows[j] = wrapIndex(ctx, ind.data[j]!, size, `axis ${axis}`) * inner;
    const out = allocData(x.dtype, outer * n * inner);
    const src = x.data;
    let d = 0;
    for (let o = 0; o < outer; o++) {
      const base = o * size * inner;
      for (let j = 0; j < n; j++, d += inner) copyBlock(src, base + rows[j]!, out, d, inner);
    }
    return [new Tensor(x.dtype, [...x.shape.slice(0, axis), ...ind.shape, ...x.shape.slice(axis + 1)], out)];
  },
};

// ---------------------------------------------------------------------------------------------
// GatherElements, ScatterElements: indices of the data's rank, one index per element.

function checkElementsShapes(ctx: RuleCtx, x: TensorType, idx: TensorType, axis: number): void {
  needIndexDtype(ctx, idx, 'indices');
  if (idx.shape.length !== x.shape.length) ctx.fail(`indices ${fmtShape(idx.shape)} must have the data's rank ${x.shape.length} ${fmtShape(x.shape)}`);
  idx.shape.forEach((d, i) => {
    const e = x.shape[i]!;
    if (i !== axis && typeof d === 'number' && typeof e === 'number' && d > e) {
      ctx.fail(`indices dim ${i} is ${d}, larger than the data dim ${e} (shapes ${fmtShape(idx.shape)} and ${fmtShape(x.shape)})`);
    }
  });
}

/**
 * Calls visit(k, off) for every element k of the indices tensor (row-major), where off is the
 * data offset with the axis coordinate replaced by the (wrapped) index value.
 */
function forEachElement(ctx: RuleCtx, x: Tensor, ind: Tensor, axis: number, visit: (k: number, off: number) => void): void {
  const r = ind.rank;
  const ds = stridesOf(x.shape);
  const size = x.shape[axis]!;
  const idx = new Array<number>(r).fill(0);
  let base = 0; // data offset of the current coordinate without the axis term
  for (let k = 0; k < ind.size; k++) {
    visit(k, base + wrapIndex(ctx, ind.data[k]!, size, `axis ${axis}`) * ds[axis]!);
    for (let a = r - 1; a >= 0; a--) {
      if (a !== axis) base += ds[a]!;
      if (++idx[a]! < ind.shape[a]!) break;
      if (a !== axis) base -= ds[a]! * ind.shape[a]!;
      idx[a] = 0;
    }
  }
}

const gatherElements: OpRule = {
  doc: 'GatherElements(data, indices) {axis=0}: out[i] = data[i with coordinate axis replaced by indices[i]].',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const idx = need(ctx, ctx.inputs, 1);
    const axis = normAxis(ctx, ctx.attr.int('axis', 0), x.shape.length);
    checkElementsShapes(ctx, x, idx, axis);
    checkKnownIndices(ctx, ctx.values[1], x.shape[axis]!, `axis ${axis}`);
    return [tensorType(x.dtype, idx.shape)];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const ind = need(ctx, ctx.inputs, 1);
    const axis = normAxis(ctx, ctx.attr.int('axis', 0), x.rank);
    const out = allocData(x.dtype, ind.size);
    const src = x.data;
    forEachElement(ctx, x, ind, axis, (k, off) => {
      out[k] = src[off]!;
    });
    return [new Tensor(x.dtype, ind.shape, out)];
  },
};

// ---------------------------------------------------------------------------------------------
// Scatter reductions

type Reduction = 'none' | 'add' | 'mul' | 'max' | 'min';

function reductionOf(ctx: RuleCtx): Reduction {
  const r = ctx.opset >= 16 ? ctx.attr.string('reduction', 'none') : 'none';
  if (r === 'none' || r === 'add' || r === 'mul') return r;
  if ((r === 'max' || r === 'min') && ctx.opset >= 18) return r;
  return ctx.fail(`reduction must be none, add or mul${ctx.opset >= 18 ? ', max or min' : ''}, got '${r}'`);
}

/** Rounds a freshly combined value to what dtype `d` stores. */
function rounder(d: DType): (v: number) => number {
  if (d === 'f32') return Math.fround;
  if (d === 'f64') return (v) => v;
  if (isInteger(d) || d === 'bool') return (v) => toIntegerDtype(d, v);
  return (v) => roundTo(d, v);
}

function combine(r: Reduction, a: number, b: number): number {
  switch (r) {
    case 'none':
      return b;
    case 'add':
      return a + b;
    case 'mul':
      return a * b;
    case 'max':
      return Math.max(a, b);
    case 'min':
      return Math.min(a, b);
  }
}

function checkUpdates(ctx: RuleCtx, x: TensorType, upd: TensorType, expected: readonly Dim[]): void {
  if (upd.dtype !== x.dtype) ctx.fail(`updates must have the data dtype ${x.dtype}, got ${upd.dtype}`);
  const ok = upd.shape.length === expected.length && upd.shape.every((d, i) => typeof d === 'string' || typeof expected[i] === 'string' || d === expected[i]);
  if (!ok) ctx.fail(`updates have shape ${fmtShape(upd.shape)}, expected ${fmtShape(expected)}`);
}

const scatterElements: OpRule = {
  doc: 'ScatterElements(data, indices, updates) {axis=0, reduction}: out = data with out[idx along axis] (op)= updates.',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const idx = need(ctx, ctx.inputs, 1);
    const upd = need(ctx, ctx.inputs, 2);
    const axis = normAxis(ctx, ctx.attr.int('axis', 0), x.shape.length);
    reductionOf(ctx);
    checkElementsShapes(ctx, x, idx, axis);
    checkUpdates(ctx, x, upd, idx.shape);
    checkKnownIndices(ctx, ctx.values[1], x.shape[axis]!, `axis ${axis}`);
    return [tensorType(x.dtype, x.shape)];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const ind = need(ctx, ctx.inputs, 1);
    const upd = need(ctx, ctx.inputs, 2);
    const axis = normAxis(ctx, ctx.attr.int('axis', 0), x.rank);
    const red = reductionOf(ctx);
    const round = rounder(x.dtype);
    const out = x.data.slice();
    const u = upd.data;
    forEachElement(ctx, x, ind, axis, (k, off) => {
      out[off] = red === 'none' ? u[k]! : round(combine(red, out[off]!, u[k]!));
    });
    return [new Tensor(x.dtype, x.shape, out)];
  },
};

// ---------------------------------------------------------------------------------------------
// GatherND, ScatterND: the last indices dim holds a k-tuple addressing data's leading dims.

interface NdLayout {
  /** Tuple length (indices' last dim). */
  readonly k: number;
  /** Number of index tuples per batch entry. */
  readonly tuples: number;
  /** Elements addressed by one tuple (prod of data dims after the indexed ones). */
  readonly slice: number;
  readonly batches: number;
}

function ndTupleLength(ctx: RuleCtx, idx: TensorType, rank: number, batchDims: number): number {
  needIndexDtype(ctx, idx, 'indices');
  if (idx.shape.length < 1) ctx.fail('indices must have rank >= 1, got a scalar');
  const k = idx.shape[idx.shape.length - 1]!;
  if (typeof k !== 'number') ctx.fail(`the last indices dim must be static, got '${k}'`);
  if (k < 1 || k > rank - batchDims) ctx.fail(`index tuples of length ${k} cannot address a rank-${rank} input with batch_dims=${batchDims}`);
  return k;
}

function ndLayout(x: Tensor, ind: Tensor, b: number): NdLayout {
  const k = ind.shape[ind.rank - 1]!;
  return {
    k,
    batches: numel(x.shape.slice(0, b)),
    tuples: numel(ind.shape.slice(b, ind.rank - 1)),
    slice: numel(x.shape.slice(b + k)),
  };
}

/** Data offset (within one batch entry) of tuple t of batch entry bi. */
function ndOffset(ctx: RuleCtx, x: Tensor, ind: Tensor, l: NdLayout, b: number, bi: number, t: number, strides: readonly number[]): number {
  let off = 0;
  const at = (bi * l.tuples + t) * l.k;
  for (let j = 0; j < l.k; j++) off += wrapIndex(ctx, ind.data[at + j]!, x.shape[b + j]!, `dim ${b + j}`) * strides[b + j]!;
  return off;
}

const gatherND: OpRule = {
  doc: 'GatherND(data, indices: [..., k]) {batch_dims=b}: out[i..] = data[batch.., indices[i..]] (slices of the remaining dims).',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const idx = need(ctx, ctx.inputs, 1);
    const b = ctx.attr.int('batch_dims', 0);
    if (b < 0 || b >= Math.min(x.shape.length, idx.shape.length)) ctx.fail(`batch_dims ${b} must be below both ranks (${x.shape.length} and ${idx.shape.length})`);
    const k = ndTupleLength(ctx, idx, x.shape.length, b);
    for (let i = 0; i < b; i++) {
      const d = x.shape[i]!;
      const e = idx.shape[i]!;
      if (typeof d === 'number' && typeof e === 'number' && d !== e) ctx.fail(`batch dim ${i} differs: data ${fmtShape(x.shape)}, indices ${fmtShape(idx.shape)}`);
    }
    return [tensorType(x.dtype, [...idx.shape.slice(0, -1), ...x.shape.slice(b + k)])];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const ind = need(ctx, ctx.inputs, 1);
    const b = ctx.attr.int('batch_dims', 0);
    const l = ndLayout(x, ind, b);
    const strides = stridesOf(x.shape);
    const batchSize = b > 0 ? strides[b - 1]! : x.size;
    const out = allocData(x.dtype, l.batches * l.tuples * l.slice);
    let d = 0;
    for (let bi = 0; bi < l.batches; bi++) {
      for (let t = 0; t < l.tuples; t++, d += l.slice) {
        copyBlock(x.data, bi * batchSize + ndOffset(ctx, x, ind, l, b, bi, t, strides), out, d, l.slice);
      }
    }
    return [new Tensor(x.dtype, [...ind.shape.slice(0, -1), ...x.shape.slice(b + l.k)], out)];
  },
};

const scatterND: OpRule = {
  doc: 'ScatterND(data, indices: [..., k], updates) {reduction}: out = data with out[indices[i..]] (op)= updates[i..].',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const idx = need(ctx, ctx.inputs, 1);
    const upd = need(ctx, ctx.inputs, 2);
    reductionOf(ctx);
    const k = ndTupleLength(ctx, idx, x.shape.length, 0);
    checkUpdates(ctx, x, upd, [...idx.shape.slice(0, -1), ...x.shape.slice(k)]);
    return [tensorType(x.dtype, x.shape)];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const ind = need(ctx, ctx.inputs, 1);
    const upd = need(ctx, ctx.inputs, 2);
    const red = reductionOf(ctx);
    const round = rounder(x.dtype);
    const l = ndLayout(x, ind, 0);
    const strides = stridesOf(x.shape);
    const out = x.data.slice();
    const u = upd.data;
    for (let t = 0; t < l.tuples; t++) {
      const off = ndOffset(ctx, x, ind, l, 0, 0, t, strides);
      const us = t * l.slice;
      if (red === 'none') copyBlock(u, us, out, off, l.slice);
      else for (let j = 0; j < l.slice; j++) out[off + j] = round(combine(red, out[off + j]!, u[us + j]!));
    }
    return [new Tensor(x.dtype, x.shape, out)];
  },
};

export const gatherRules: { readonly [K in GatherOp]: OpRule } = {
  Gather: gather,
  GatherElements: gatherElements,
  GatherND: gatherND,
  ScatterND: scatterND,
  ScatterElements: scatterElements,
};
