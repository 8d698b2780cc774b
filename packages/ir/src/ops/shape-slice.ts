/**
 * Slice, Concat and Split: contiguous sub-blocks of a tensor and their inverse.
 *
 * Slice-1 takes starts/ends/axes as attributes; Slice-10 onwards as inputs 1-4 (with steps).
 * Out-of-range starts/ends are clamped the ONNX way (so INT64_MAX/INT64_MIN, stored as +-2^63,
 * mean "to the end"). Split-2 takes sizes as attribute 'split', Split-13 as input 1, Split-18
 * adds num_outputs (the last chunk may be smaller).
 */
import type { Dim, TensorType } from '../graph';
import { Tensor, allocData, numel, stridesOf } from '../tensor';
import type { InferCtx, OpRule, RuleCtx, RunCtx } from './rule';
import { need, normAxis, sameDtype, tensorType } from './rule';
import { copyStrided } from './shape-copy';
import { attrOrInputInts, fmtShape, freshDim, inputInts, normAxes, runAttrOrInputInts } from './shape-util';
import type { IntsOperand } from './shape-util';

type SliceOp = 'Slice' | 'Concat' | 'Split';

// ---------------------------------------------------------------------------------------------
// Slice

/** Ends at or beyond this are "to the end" on a symbolic dim (INT64_MAX, INT32_MAX...). */
const TO_END = 2 ** 31 - 1;

interface SliceArgs {
  readonly starts: readonly number[];
  readonly ends: readonly number[];
  readonly axes: number[];
  readonly steps: readonly number[];
}

/** Checks lengths and axes, and fills the defaults (all leading axes, steps of 1). */
function sliceArgs(ctx: RuleCtx, rank: number, starts: readonly number[], ends: readonly number[], axes?: readonly number[], steps?: readonly number[]): SliceArgs {
  const n = starts.length;
  if (ends.length !== n) ctx.fail(`starts ${fmtShape(starts)} and ends ${fmtShape(ends)} must have the same length`);
  if (axes && axes.length !== n) ctx.fail(`axes ${fmtShape(axes)} must have one entry per start (${n})`);
  if (steps && steps.length !== n) ctx.fail(`steps ${fmtShape(steps)} must have one entry per start (${n})`);
  if (!axes && n > rank) ctx.fail(`${n} starts given for a rank-${rank} input`);
  if (steps && steps.includes(0)) ctx.fail(`steps ${fmtShape(steps)} must not contain 0`);
  const ax = axes ? normAxes(ctx, axes, rank) : Array.from({ length: n }, (_, i) => i);
  return { starts, ends, axes: ax, steps: steps ?? new Array<number>(n).fill(1) };
}

/** Clamped start and length of a slice along a dim of size d (the ONNX rules). */
function sliceRange(start: number, end: number, step: number, d: number): { start: number; len: number } {
  let s = start < 0 ? start + d : start;
  let e = end < 0 ? end + d : end;
  if (step > 0) {
    s = Math.min(Math.max(s, 0), d);
    e = Math.min(Math.max(e, 0), d);
    return { start: s, len: Math.max(0, Math.ceil((e - s) / step)) };
  }
  s = Math.min(Math.max(s, 0), d - 1);
  e = Math.min(Math.max(e, -1), d - 1);
  return { start: s, len: Math.max(0, Math.ceil((s - e) / -step)) };
}

function sliceDim(ctx: RuleCtx, d: Dim, start: number, end: number, step: number, axis: number): Dim {
  if (typeof d === 'number') return sliceRange(start, end, step, d).len;
  // A symbolic dim survives only a full slice: [0:end] forwards or [end:begin] backwards.
  if (step === 1 && (start === 0 || start <= -TO_END) && end >= TO_END) return d;
  if (step === -1 && (start === -1 || start >= TO_END) && end <= -TO_END) return d;
  return freshDim(ctx, axis);
}

function sliceOperands(ctx: InferCtx): IntsOperand[] {
  if (ctx.opset < 10) {
    const get = (n: string): IntsOperand => {
      const v = ctx.attr.optInts(n);
      return v ? { kind: 'known', values: v } : { kind: 'absent' };
    };
    return [get('starts'), get('ends'), get('axes'), { kind: 'absent' }];
  }
  return ['starts', 'ends', 'axes', 'steps'].map((w, k) => inputInts(ctx, k + 1, `input ${k + 1} (${w})`));
}

const slice: OpRule = {
  doc: 'Slice(data, starts, ends, axes?, steps?): data[start:end:step] along each given axis.',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const rank = x.shape.length;
    const [starts, ends, axes, steps] = sliceOperands(ctx) as [IntsOperand, IntsOperand, IntsOperand, IntsOperand];
    if (starts.kind === 'absent' || ends.kind === 'absent') ctx.fail('starts and ends are required');
    if (starts.kind !== 'known' || ends.kind !== 'known' || axes.kind === 'unknown' || steps.kind === 'unknown') {
      // Unknown bounds: only the sliced axes change, to sizes unknown until run time.
      const sliced = axes.kind === 'known' ? normAxes(ctx, axes.values, rank) : undefined;
      return [tensorType(x.dtype, x.shape.map((d, i) => (sliced && !sliced.includes(i) ? d : freshDim(ctx, i))))];
    }
    const a = sliceArgs(ctx, rank, starts.values, ends.values, axes.kind === 'known' ? axes.values : undefined, steps.kind === 'known' ? steps.values : undefined);
    const shape = [...x.shape];
    a.axes.forEach((ax, k) => {
      shape[ax] = sliceDim(ctx, x.shape[ax]!, a.starts[k]!, a.ends[k]!, a.steps[k]!, ax);
    });
    return [tensorType(x.dtype, shape)];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const get = (name: string, i: number): readonly number[] | undefined => runAttrOrInputInts(ctx, 10, name, i);
    const starts = get('starts', 1) ?? ctx.fail('starts are required');
    const ends = get('ends', 2) ?? ctx.fail('ends are required');
    const a = sliceArgs(ctx, x.rank, starts, ends, get('axes', 3), ctx.opset >= 10 ? get('steps', 4) : undefined);
    const inStrides = stridesOf(x.shape);
    const shape = [...x.shape];
    const strides = [...inStrides];
    let offset = 0;
    a.axes.forEach((ax, k) => {
      const step = a.steps[k]!;
      const r = sliceRange(a.starts[k]!, a.ends[k]!, step, x.shape[ax]!);
      shape[ax] = r.len;
      strides[ax] = inStrides[ax]! * step;
      if (r.len > 0) offset += r.start * inStrides[ax]!;
    });
    if (offset === 0 && shape.every((d, i) => d === x.shape[i]) && strides.every((s, i) => s === inStrides[i] || shape[i]! <= 1)) return [x];
    const out = allocData(x.dtype, numel(shape));
    copyStrided(x.data, offset, shape, strides, out);
    return [new Tensor(x.dtype, shape, out)];
  },
};

// ---------------------------------------------------------------------------------------------
// Concat

function concatAxis(ctx: RuleCtx, rank: number): number {
  const axis = ctx.opset < 4 ? ctx.attr.int('axis', 1) : ctx.attr.int('axis');
  return normAxis(ctx, axis, rank);
}

const concat: OpRule = {
  doc: 'Concat(inputs...) {axis}: joins inputs along axis; all other dims must agree.',
  infer(ctx: InferCtx) {
    if (ctx.inputs.length === 0) ctx.fail('needs at least one input');
    const ins = ctx.inputs.map((_, i) => need(ctx, ctx.inputs, i));
    const dtype = sameDtype(ctx, ins);
    const first = ins[0]!;
    const rank = first.shape.length;
    const axis = concatAxis(ctx, rank);
    const shape = [...first.shape];
    let total = 0;
    const symbols: string[] = [];
    ins.forEach((t: TensorType, k) => {
      if (t.shape.length !== rank) ctx.fail(`input ${k} has rank ${t.shape.length} ${fmtShape(t.shape)}, expected rank ${rank} like input 0 ${fmtShape(first.shape)}`);
      t.shape.forEach((d, i) => {
        if (i === axis) {
          if (typeof d === 'number') total += d;
          else symbols.push(d);
          return;
        }
        const cur = shape[i]!;
        if (typeof cur === 'number' && typeof d === 'number' && cur !== d) {
          ctx.fail(`input ${k} has shape ${fmtShape(t.shape)}, expected dim ${i} to be ${cur} (all dims but axis ${axis} must agree)`);
        }
        if (typeof cur === 'string' && typeof d === 'number') shape[i] = d;
      });
    });
    if (symbols.length === 0) shape[axis] = total;
    else shape[axis] = symbols.length === 1 && total === 0 ? symbols[0]! : freshDim(ctx, axis);
    return [tensorType(dtype, shape)];
  },
  run(ctx: RunCtx) {
    const ins = ctx.inputs.map((_, i) => need(ctx, ctx.inputs, i));
    const first = ins[0]!;
    const axis = concatAxis(ctx, first.rank);
    const shape = [...first.shape];
    shape[axis] = ins.reduce((s, t) => s + t.shape[axis]!, 0);
    for (const t of ins) {
      if (t.rank !== first.rank || t.shape.some((d, i) => i !== axis && d !== shape[i])) {
        ctx.fail(`input shape ${fmtShape(t.shape)} does not match ${fmtShape(first.shape)} outside axis ${axis}`);
      }
    }
    const outer = numel(shape.slice(0, axis));
    const inner = numel(shape.slice(axis + 1));
    const row = shape[axis]! * inner;
    const out = allocData(first.dtype, outer * row);
    let at = 0;
    for (const t of ins) {
      const block = t.shape[axis]! * inner;
      const src = t.data;
      if (block >= 16) {
        for (let o = 0; o < outer; o++) out.set(src.subarray(o * block, (o + 1) * block), o * row + at);
      } else {
        for (let o = 0; o < outer; o++) for (let j = 0; j < block; j++) out[o * row + at + j] = src[o * block + j]!;
      }
      at += block;
    }
    return [new Tensor(first.dtype, shape, out)];
  },
};

// ---------------------------------------------------------------------------------------------
// Split

function splitOperand(ctx: InferCtx): IntsOperand {
  // Split-1 accepted the sizes as attribute or as optional input 1.
  if (ctx.opset < 2 && ctx.inputs[1] !== undefined) return inputInts(ctx, 1, 'input 1 (split)');
  return attrOrInputInts(ctx, 13, 'split', 1);
}

/** Chunk sizes for a split without explicit sizes. */
function equalSplit(ctx: RuleCtx, d: number): number[] {
  const n = ctx.numOutputs;
  const numOutputs = ctx.opset >= 18 ? ctx.attr.int('num_outputs', -1) : -1;
  if (numOutputs >= 0 && numOutputs !== n) ctx.fail(`num_outputs is ${numOutputs} but the node has ${n} outputs`);
  if (numOutputs >= 0) {
    const chunk = Math.ceil(d / n);
    const last = d - chunk * (n - 1);
    if (last < 0) ctx.fail(`a dim of size ${d} cannot be split into ${n} chunks of ${chunk}`);
    return Array.from({ length: n }, (_, i) => (i === n - 1 ? last : chunk));
  }
  if (d % n !== 0) ctx.fail(`a dim of size ${d} is not divisible into ${n} equal outputs; give split sizes${ctx.opset >= 18 ? ' or num_outputs' : ''}`);
  return new Array<number>(n).fill(d / n);
}

function checkSplit(ctx: RuleCtx, sizes: readonly number[], d: Dim): void {
  if (sizes.length !== ctx.numOutputs) ctx.fail(`split ${fmtShape(sizes)} has ${sizes.length} entries, but the node has ${ctx.numOutputs} outputs`);
  if (sizes.some((s) => s < 0)) ctx.fail(`split ${fmtShape(sizes)} has negative sizes`);
  const sum = sizes.reduce((a, b) => a + b, 0);
  if (typeof d === 'number' && sum !== d) ctx.fail(`split ${fmtShape(sizes)} sums to ${sum}, expected the axis size ${d}`);
}

const split: OpRule = {
  doc: 'Split(data, split?: i64[n]) {axis=0, num_outputs}: n consecutive chunks along axis.',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const axis = normAxis(ctx, ctx.attr.int('axis', 0), x.shape.length);
    const d = x.shape[axis]!;
    const sizes = splitOperand(ctx);
    if (sizes.kind === 'known' && ctx.opset >= 18 && ctx.attr.has('num_outputs')) ctx.fail('give either split or num_outputs, not both');
    let dims: Dim[];
    if (sizes.kind === 'known') {
      checkSplit(ctx, sizes.values, d);
      dims = [...sizes.values];
    } else if (sizes.kind === 'unknown' || typeof d === 'string') {
      if (sizes.kind === 'unknown' && sizes.length !== undefined && sizes.length !== ctx.numOutputs) {
        ctx.fail(`split has ${sizes.length} entries, but the node has ${ctx.numOutputs} outputs`);
      }
      dims = Array.from({ length: ctx.numOutputs }, (_, i) => (ctx.numOutputs === 1 ? d : freshDim(ctx, `${i}_${axis}`)));
    } else dims = equalSplit(ctx, d);
    return dims.map((s) => tensorType(x.dtype, x.shape.map((e, i) => (i === axis ? s : e))));
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const axis = normAxis(ctx, ctx.attr.int('axis', 0), x.rank);
    const d = x.shape[axis]!;
    const given = ctx.opset < 2 && ctx.inputs[1] ? ctx.inputs[1].toArray() : runAttrOrInputInts(ctx, 13, 'split', 1);
    const sizes = given ?? equalSplit(ctx, d);
    checkSplit(ctx, sizes, d);
    const outer = numel(x.shape.slice(0, axis));
    const inner = numel(x.shape.slice(axis + 1));
    let at = 0;
    return sizes.map((s) => {
      const shape = x.shape.map((e, i) => (i === axis ? s : e));
      const out = allocData(x.dtype, outer * s * inner);
      copyStrided(x.data, at * inner, [outer, s * inner], [d * inner, 1], out);
      at += s;
      return new Tensor(x.dtype, shape, out);
    });
  },
};

export const sliceRules: { readonly [K in SliceOp]: OpRule } = {
  Slice: slice,
  Concat: concat,
  Split: split,
};
