/**
 * Pad: constant, reflect, edge and wrap padding (negative pads crop).
 *
 * Opset forms: Pad-1 takes attribute 'paddings', Pad-2 attribute 'pads' and 'value'; Pad-11
 * takes pads and constant_value as inputs 1 and 2; Pad-18 adds input 3, the axes the pads refer
 * to; Pad-19 adds mode 'wrap'. pads are [begin_0, begin_1, ..., end_0, end_1, ...].
 */
import type { Dim } from '../graph';
import { Tensor, allocData, numel, stridesOf } from '../tensor';
import type { InferCtx, OpRule, RuleCtx, RunCtx } from './rule';
import { need, tensorType } from './rule';
import { fmtShape, freshDim, inputInts, normAxes } from './shape-util';
import type { IntsOperand } from './shape-util';

type PadMode = 'constant' | 'reflect' | 'edge' | 'wrap';

function modeOf(ctx: RuleCtx): PadMode {
  const m = ctx.attr.string('mode', 'constant');
  if (m === 'constant' || m === 'reflect' || m === 'edge' || (m === 'wrap' && ctx.opset >= 19)) return m;
  return ctx.fail(`mode must be constant, reflect or edge${ctx.opset >= 19 ? ' or wrap' : ''}, got '${m}'`);
}

function padsAttr(ctx: RuleCtx): readonly number[] | undefined {
  return ctx.opset < 2 ? ctx.attr.optInts('paddings') : ctx.attr.optInts('pads');
}

/** Full-rank [begin..., end...] pads from pads given for `axes` (all dims when undefined). */
function expandPads(ctx: RuleCtx, pads: readonly number[], axes: readonly number[] | undefined, rank: number): number[] {
  const ax = axes === undefined ? Array.from({ length: rank }, (_, i) => i) : normAxes(ctx, axes, rank);
  if (pads.length !== 2 * ax.length) {
    ctx.fail(`pads ${fmtShape(pads)} must have 2 entries per padded axis (${2 * ax.length}), got ${pads.length}`);
  }
  const full = new Array<number>(2 * rank).fill(0);
  ax.forEach((a, i) => {
    full[a] = pads[i]!;
    full[a + rank] = pads[i + ax.length]!;
  });
  return full;
}

function padShape(ctx: RuleCtx, shape: readonly Dim[], full: readonly number[]): Dim[] {
  const rank = shape.length;
  return shape.map((d, i) => {
    const add = full[i]! + full[i + rank]!;
    if (typeof d === 'string') return add === 0 ? d : freshDim(ctx, i);
    if (d + add < 0) ctx.fail(`pads ${fmtShape(full)} crop axis ${i} of size ${d} below zero`);
    return d + add;
  });
}

function padsOperand(ctx: InferCtx): IntsOperand {
  if (ctx.opset < 11) {
    const p = padsAttr(ctx);
    return p ? { kind: 'known', values: p } : ctx.fail('attribute pads is required');
  }
  return inputInts(ctx, 1, 'input 1 (pads)');
}

const pad: OpRule = {
  doc: 'Pad(data, pads: i64[2k], constant_value?, axes?: i64[k]) {mode}: pads (or crops) each axis at both ends.',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    modeOf(ctx);
    const rank = x.shape.length;
    const pads = padsOperand(ctx);
    const axes = ctx.opset >= 18 ? inputInts(ctx, 3, 'input 3 (axes)') : ({ kind: 'absent' } as const);
    const cv = ctx.opset >= 11 ? ctx.inputs[2] : undefined;
    if (cv && cv.dtype !== x.dtype) ctx.fail(`constant_value must have the data dtype ${x.dtype}, got ${cv.dtype}`);
    if (pads.kind === 'absent') ctx.fail('pads are required');
    if (pads.kind === 'unknown' || axes.kind === 'unknown') {
      const padded = axes.kind === 'known' ? normAxes(ctx, axes.values, rank) : undefined;
      return [tensorType(x.dtype, x.shape.map((d, i) => (padded && !padded.includes(i) ? d : freshDim(ctx, i))))];
    }
    const full = expandPads(ctx, pads.values, axes.kind === 'known' ? axes.values : undefined, rank);
    return [tensorType(x.dtype, padShape(ctx, x.shape, full))];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const mode = modeOf(ctx);
    const pads = ctx.opset < 11 ? padsAttr(ctx) : ctx.inputs[1]?.toArray();
    if (pads === undefined) ctx.fail('pads are required');
    const axes = ctx.opset >= 18 ? ctx.inputs[3]?.toArray() : undefined;
    const full = expandPads(ctx, pads, axes, x.rank);
    let value = 0;
    if (ctx.opset < 11) value = ctx.attr.float('value', 0);
    else if (ctx.inputs[2] && ctx.inputs[2].size > 0) value = ctx.inputs[2].data[0]!;
    return [padRun(ctx, x, full, mode, value)];
  },
};

/** Source index along one axis for output index i (or -1: the constant). */
function sourceIndex(mode: PadMode, i: number, begin: number, d: number): number {
  const k = i - begin;
  if (k >= 0 && k < d) return k;
  if (mode === 'constant' || d === 0) return -1;
  if (mode === 'edge') return k < 0 ? 0 : d - 1;
  if (mode === 'wrap') return ((k % d) + d) % d;
  if (d === 1) return 0;
  const p = 2 * (d - 1);
  const m = ((k % p) + p) % p;
  return m < d ? m : p - m;
}

function padRun(ctx: RunCtx, x: Tensor, full: readonly number[], mode: PadMode, rawValue: number): Tensor {
  const rank = x.rank;
  // The constant may not be representable in the dtype (0.1 in f16, 2.5 in i32): round it once.
  const value = Tensor.scalar(x.dtype, rawValue).data[0]!;
  const shape = padShape(ctx, x.shape, full) as number[];
  const n = numel(shape);
  const out = allocData(x.dtype, n);
  if (n === 0) return new Tensor(x.dtype, shape, out);
  if (rank === 0) {
    out[0] = x.data[0]!;
    return new Tensor(x.dtype, shape, out);
  }
  if (mode !== 'constant' && x.size === 0) ctx.fail(`cannot ${mode}-pad an empty tensor ${fmtShape(x.shape)}`);
  const maps = shape.map((o, a) => {
    const m = new Int32Array(o);
    for (let i = 0; i < o; i++) m[i] = sourceIndex(mode, i, full[a]!, x.shape[a]!);
    return m;
  });
  const strides = stridesOf(x.shape);
  const last = rank - 1;
  const w = shape[last]!;
  const begin = full[last]!;
  const d = x.shape[last]!;
  // Output columns [lo, hi) read the source row contiguously; the rest go through the map.
  const lo = Math.max(0, begin);
  const hi = Math.min(w, begin + d);
  const lastMap = maps[last]!;
  const src = x.data;
  const idx = new Array<number>(last).fill(0);
  const rows = n / w;
  for (let row = 0, o = 0; row < rows; row++, o += w) {
    let base = 0;
    for (let a = 0; a < last && base >= 0; a++) {
      const m = maps[a]![idx[a]!]!;
      base = m < 0 ? -1 : base + m * strides[a]!;
    }
    if (base < 0) out.fill(value, o, o + w);
    else {
      for (let j = 0; j < lo; j++) {
        const m = lastMap[j]!;
        out[o + j] = m < 0 ? value : src[base + m]!;
      }
      if (hi > lo) out.set(src.subarray(base + lo - begin, base + hi - begin), o + lo);
      for (let j = Math.max(hi, lo); j < w; j++) {
        const m = lastMap[j]!;
        out[o + j] = m < 0 ? value : src[base + m]!;
      }
    }
    for (let a = last - 1; a >= 0; a--) {
      if (++idx[a]! < shape[a]!) break;
      idx[a] = 0;
    }
  }
  return new Tensor(x.dtype, shape, out);
}

export const padRules: { readonly Pad: OpRule } = { Pad: pad };
