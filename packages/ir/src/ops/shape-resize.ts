/**
 * Resize: nearest / linear / cubic interpolation over any set of axes, following the ONNX
 * reference implementation (including its edge handling: neighbours outside the input repeat the
 * edge value, and the "output width" of the coordinate transforms is scale * input_size, not the
 * rounded output size).
 *
 * Opset forms: Resize-10 takes (X, scales) and behaves like Upsample (asymmetric coordinates,
 * nearest rounds down when upsampling and up when downsampling, as onnxruntime does); Resize-11
 * takes (X, roi, scales, sizes) and the coordinate_transformation_mode / nearest_mode /
 * cubic_coeff_a / exclude_outside / extrapolation_value attributes; Resize-18 adds axes and
 * keep_aspect_ratio_policy (antialias is rejected); Resize-19 adds half_pixel_symmetric.
 *
 * Interpolation is separable: the data is resized one axis at a time in f64, which equals the
 * reference's nested 1-D interpolation up to rounding.
 */
import type { Dim, TensorType } from '../graph';
import { Tensor, allocData, numel } from '../tensor';
import type { InferCtx, OpRule, RuleCtx, RunCtx } from './rule';
import { need, tensorType } from './rule';
import { fmtShape, freshDim, normAxes } from './shape-util';

type Mode = 'nearest' | 'linear' | 'cubic';
const COORD_MODES = ['half_pixel', 'half_pixel_symmetric', 'pytorch_half_pixel', 'align_corners', 'asymmetric', 'tf_half_pixel_for_nn', 'tf_crop_and_resize'] as const;
type CoordMode = (typeof COORD_MODES)[number];
const NEAREST_MODES = ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil', 'simple'] as const;
type NearestMode = (typeof NEAREST_MODES)[number];

interface ResizeAttrs {
  readonly mode: Mode;
  readonly coord: CoordMode;
  readonly nearest: NearestMode;
  readonly cubicA: number;
  readonly excludeOutside: boolean;
  readonly extrapolation: number;
  readonly axes: number[];
  readonly keepAspect: 'stretch' | 'not_larger' | 'not_smaller';
}

function attrsOf(ctx: RuleCtx, rank: number): ResizeAttrs {
  const mode = ctx.attr.string('mode', 'nearest');
  if (mode !== 'nearest' && mode !== 'linear' && mode !== 'cubic') ctx.fail(`mode must be nearest, linear or cubic, got '${mode}'`);
  if (ctx.opset < 11 && mode === 'cubic') ctx.fail('mode cubic needs opset 11 or later');
  const old = ctx.opset < 11;
  const coord = old ? 'asymmetric' : ctx.attr.string('coordinate_transformation_mode', 'half_pixel');
  if (!(COORD_MODES as readonly string[]).includes(coord) || (coord === 'half_pixel_symmetric' && ctx.opset < 19)) {
    ctx.fail(`coordinate_transformation_mode '${coord}' is not supported (expected one of ${COORD_MODES.join(', ')})`);
  }
  const nearest = old ? 'simple' : ctx.attr.string('nearest_mode', 'round_prefer_floor');
  if (!(NEAREST_MODES as readonly string[]).includes(nearest) || (nearest === 'simple' && !old)) ctx.fail(`nearest_mode '${nearest}' is not supported`);
  if (ctx.opset >= 18 && ctx.attr.int('antialias', 0) !== 0) ctx.fail('antialias=1 is not supported; export with antialias=0');
  const axesAttr = ctx.opset >= 18 ? ctx.attr.optInts('axes') : undefined;
  const axes = axesAttr ? normAxes(ctx, axesAttr, rank) : Array.from({ length: rank }, (_, i) => i);
  const keepAspect = ctx.opset >= 18 ? ctx.attr.string('keep_aspect_ratio_policy', 'stretch') : 'stretch';
  if (keepAspect !== 'stretch' && keepAspect !== 'not_larger' && keepAspect !== 'not_smaller') {
    ctx.fail(`keep_aspect_ratio_policy must be stretch, not_larger or not_smaller, got '${keepAspect}'`);
  }
  return {
    mode,
    coord: coord as CoordMode,
    nearest: nearest as NearestMode,
    cubicA: ctx.attr.float('cubic_coeff_a', -0.75),
    excludeOutside: ctx.attr.int('exclude_outside', 0) !== 0,
    extrapolation: ctx.attr.float('extrapolation_value', 0),
    axes,
    keepAspect,
  };
}

/** Input positions of roi, scales and sizes for this opset (-1: not an input). */
function slots(ctx: RuleCtx): { roi: number; scales: number; sizes: number } {
  return ctx.opset < 11 ? { roi: -1, scales: 1, sizes: -1 } : { roi: 1, scales: 2, sizes: 3 };
}

/** An omitted input or an empty tensor both mean "not given". */
function given<T extends TensorType | Tensor>(t: T | undefined): T | undefined {
  return t && !(t.shape.length === 1 && t.shape[0] === 0) ? t : undefined;
}

interface Plan {
  /** Output dims (static or symbolic) and the per-axis scale used by the coordinate transform. */
  readonly shape: Dim[];
  readonly scales: number[] | undefined;
}

/** Output shape and full-rank scales from known scales or sizes (see ONNX Resize). */
function plan(ctx: RuleCtx, a: ResizeAttrs, input: readonly Dim[], scales: readonly number[] | undefined, sizes: readonly number[] | undefined): Plan {
  const n = a.axes.length;
  const full = input.map(() => 1);
  const shape = [...input];
  if (scales) {
    if (scales.length !== n) ctx.fail(`scales ${fmtShape(scales)} must have ${n} entries (one per resized axis)`);
    a.axes.forEach((ax, k) => {
      const s = scales[k]!;
      if (!(s > 0)) ctx.fail(`scales ${fmtShape(scales)} must be positive`);
      full[ax] = s;
      const d = input[ax]!;
      shape[ax] = typeof d === 'number' ? Math.floor(d * s) : s === 1 ? d : freshDim(ctx, ax);
    });
    return { shape, scales: full };
  }
  if (!sizes) return ctx.fail('one of scales or sizes must be given');
  if (sizes.length !== n) ctx.fail(`sizes ${fmtShape(sizes)} must have ${n} entries (one per resized axis)`);
  const static_ = a.axes.every((ax) => typeof input[ax] === 'number');
  if (a.keepAspect !== 'stretch') {
    if (!static_) return { shape: shape.map((d, i) => (a.axes.includes(i) ? freshDim(ctx, i) : d)), scales: undefined };
    const ratios = a.axes.map((ax, k) => sizes[k]! / (input[ax] as number));
    const s = a.keepAspect === 'not_larger' ? Math.min(...ratios) : Math.max(...ratios);
    a.axes.forEach((ax) => {
      full[ax] = s;
      shape[ax] = Math.round(s * (input[ax] as number));
    });
    return { shape, scales: full };
  }
  a.axes.forEach((ax, k) => {
    shape[ax] = sizes[k]!;
    const d = input[ax]!;
    full[ax] = typeof d === 'number' ? sizes[k]! / d : NaN;
  });
  return { shape, scales: static_ ? full : undefined };
}

const resize: OpRule = {
  doc: 'Resize(X, roi?, scales?, sizes?) {mode, coordinate_transformation_mode, ...}: interpolates X to a new size.',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const a = attrsOf(ctx, x.shape.length);
    const s = slots(ctx);
    const scalesT = given(ctx.inputs[s.scales]);
    const sizesT = s.sizes >= 0 ? given(ctx.inputs[s.sizes]) : undefined;
    if (scalesT && sizesT) ctx.fail('give scales or sizes, not both');
    if (!scalesT && !sizesT) ctx.fail('one of scales or sizes must be given');
    if (scalesT && !scalesT.dtype.startsWith('f')) ctx.fail(`scales must be a float tensor, got ${scalesT.dtype}`);
    if (sizesT && sizesT.dtype !== 'i64') ctx.fail(`sizes must be i64, got ${sizesT.dtype}`);
    const known = scalesT ? ctx.values[s.scales] : ctx.values[s.sizes];
    if (!known) return [tensorType(x.dtype, x.shape.map((d, i) => (a.axes.includes(i) ? freshDim(ctx, i) : d)))];
    const p = plan(ctx, a, x.shape, scalesT ? known.toArray() : undefined, sizesT ? known.toArray() : undefined);
    return [tensorType(x.dtype, p.shape)];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const a = attrsOf(ctx, x.rank);
    const s = slots(ctx);
    const scalesT = given(ctx.inputs[s.scales]);
    const sizesT = s.sizes >= 0 ? given(ctx.inputs[s.sizes]) : undefined;
    const p = plan(ctx, a, x.shape, scalesT?.toArray(), sizesT?.toArray());
    const outShape = p.shape as number[];
    const roiT = s.roi >= 0 ? given(ctx.inputs[s.roi]) : undefined;
    const roi = roiT?.toArray();
    if (a.coord === 'tf_crop_and_resize' && roi && roi.length !== 2 * a.axes.length && roi.length !== 2 * x.rank) {
      ctx.fail(`roi must have ${2 * a.axes.length} entries, got ${roi.length}`);
    }
    let cur: Float64Array = Float64Array.from(x.data);
    let shape = [...x.shape];
    for (const [k, ax] of a.axes.entries()) {
      let box: [number, number] = [0, 1];
      if (roi) box = roi.length === 2 * x.rank ? [roi[ax]!, roi[ax + x.rank]!] : [roi[k]!, roi[k + a.axes.length]!];
      const taps = axisTaps(ctx, a, shape[ax]!, outShape[ax]!, p.scales![ax]!, box);
      if (taps.identity) continue;
      cur = applyTaps(cur, shape, ax, taps);
      shape = shape.map((d, i) => (i === ax ? outShape[ax]! : d));
    }
    const out = allocData(x.dtype, numel(outShape));
    for (let i = 0; i < out.length; i++) out[i] = cur[i]!;
    return [Tensor.normalized(x.dtype, outShape, out)];
  },
};

/** For each output index along one axis: n source indices and weights (or "extrapolate"). */
interface Taps {
  readonly n: number;
  readonly out: number;
  readonly index: Int32Array;
  readonly weight: Float64Array;
  /** 1 where the output lies outside the roi (tf_crop_and_resize): it gets `fill`. */
  readonly extrapolate: Uint8Array;
  readonly fill: number;
  readonly identity: boolean;
}

/** The reference's x_original for output coordinate x. */
function sourceCoord(a: ResizeAttrs, x: number, inLen: number, outLen: number, scale: number, box: readonly [number, number]): number {
  const outW = scale * inLen;
  switch (a.coord) {
    case 'half_pixel':
      return (x + 0.5) / scale - 0.5;
    case 'half_pixel_symmetric': {
      const offset = (inLen / 2) * (1 - outLen / outW);
      return offset + (x + 0.5) / scale - 0.5;
    }
    case 'pytorch_half_pixel':
      return outW === 1 ? -0.5 : (x + 0.5) / scale - 0.5;
    case 'align_corners':
      return outW === 1 ? 0 : (x * (inLen - 1)) / (outW - 1);
    case 'asymmetric':
      return x / scale;
    case 'tf_half_pixel_for_nn':
      return (x + 0.5) / scale;
    case 'tf_crop_and_resize':
      return outW === 1 ? ((box[1] - box[0]) * (inLen - 1)) / 2 + box[0] * (inLen - 1) : (x * (box[1] - box[0]) * (inLen - 1)) / (outW - 1) + box[0] * (inLen - 1);
  }
}

function nearestIndex(mode: NearestMode, x: number, downsample: boolean): number {
  const f = Math.floor(x);
  if (x === f) return x;
  switch (mode) {
    case 'round_prefer_floor':
      return x - f <= 0.5 ? f : f + 1;
    case 'round_prefer_ceil':
      return x - f < 0.5 ? f : f + 1;
    case 'floor':
      return f;
    case 'ceil':
      return f + 1;
    case 'simple':
      return downsample ? f + 1 : f;
  }
}

function cubicCoeffs(r: number, A: number): number[] {
  const s = 1 - r;
  return [
    ((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A,
    ((A + 2) * r - (A + 3)) * r * r + 1,
    ((A + 2) * s - (A + 3)) * s * s + 1,
    ((A * (s + 1) - 5 * A) * (s + 1) + 8 * A) * (s + 1) - 4 * A,
  ];
}

function axisTaps(ctx: RuleCtx, a: ResizeAttrs, inLen: number, outLen: number, scale: number, box: readonly [number, number]): Taps {
  const n = a.mode === 'nearest' ? 1 : a.mode === 'linear' ? 2 : 4;
  const index = new Int32Array(outLen * n);
  const weight = new Float64Array(outLen * n);
  const extrapolate = new Uint8Array(outLen);
  if (inLen === 0 && outLen > 0) ctx.fail('cannot resize an empty axis to a non-empty one');
  let identity = inLen === outLen;
  const pad = Math.ceil(n / 2);
  for (let o = 0; o < outLen; o++) {
    const x = sourceCoord(a, o, inLen, outLen, scale, box);
    if (a.coord === 'tf_crop_and_resize' && (x < 0 || x > inLen - 1)) {
      extrapolate[o] = 1;
      identity = false;
      continue;
    }
    if (n === 1) {
      index[o] = Math.min(Math.max(nearestIndex(a.nearest, x, scale < 1), 0), inLen - 1);
      weight[o] = 1;
      if (index[o] !== o) identity = false;
      continue;
    }
    // The window of n neighbours: ratio in (0, 1] from the left neighbour, as the reference does.
    const left = Math.ceil(x) - 1;
    const ratio = x - left;
    const coeffs = n === 2 ? [1 - ratio, ratio] : cubicCoeffs(ratio, a.cubicA);
    const first = Math.min(Math.max(left - (n / 2 - 1), -pad), inLen - 1 + pad - (n - 1));
    let sum = 0;
    for (let t = 0; t < n; t++) {
      const i = first + t;
      if (a.excludeOutside && (i < 0 || i >= inLen)) coeffs[t] = 0;
      sum += coeffs[t]!;
    }
    for (let t = 0; t < n; t++) {
      const i = first + t;
      index[o * n + t] = Math.min(Math.max(i, 0), inLen - 1);
      weight[o * n + t] = a.excludeOutside ? coeffs[t]! / sum : coeffs[t]!;
      if (weight[o * n + t] !== 0 && (weight[o * n + t] !== 1 || index[o * n + t] !== o)) identity = false;
    }
  }
  return { n, out: outLen, index, weight, extrapolate, fill: a.extrapolation, identity: identity && a.coord !== 'tf_crop_and_resize' };
}

/** Resizes axis `ax` of the row-major buffer `src` (shape `shape`) with the given taps. */
function applyTaps(src: Float64Array, shape: readonly number[], ax: number, t: Taps): Float64Array {
  const outer = numel(shape.slice(0, ax));
  const inner = numel(shape.slice(ax + 1));
  const inLen = shape[ax]!;
  const dst = new Float64Array(outer * t.out * inner);
  for (let o = 0; o < outer; o++) {
    const sBase = o * inLen * inner;
    for (let j = 0; j < t.out; j++) {
      const d = (o * t.out + j) * inner;
      if (t.extrapolate[j]) {
        dst.fill(t.fill, d, d + inner);
        continue;
      }
      for (let k = 0; k < t.n; k++) {
        const w = t.weight[j * t.n + k]!;
        if (w === 0) continue;
        const s = sBase + t.index[j * t.n + k]! * inner;
        for (let e = 0; e < inner; e++) dst[d + e] = dst[d + e]! + w * src[s + e]!;
      }
    }
  }
  return dst;
}

/** One resized axis of a Resize node: per output index, n source indices and weights (see Taps). */
export interface ResizeAxisTaps {
  readonly axis: number;
  readonly n: number;
  readonly index: Int32Array;
  readonly weight: Float64Array;
  /** 1 where the output is outside the roi (tf_crop_and_resize): it gets `fill`. */
  readonly extrapolate: Uint8Array;
  readonly fill: number;
}

/**
 * The taps `run` applies, axis by axis in this order (identity axes left out), for an input of
 * static shape and known roi/scales/sizes: what a compiled kernel needs to reproduce Resize.
 */
export function resizeTaps(ctx: RuleCtx, input: readonly number[], operands: { roi?: readonly number[]; scales?: readonly number[]; sizes?: readonly number[] }): { shape: number[]; taps: ResizeAxisTaps[] } {
  const a = attrsOf(ctx, input.length);
  const scales = operands.scales && operands.scales.length > 0 ? operands.scales : undefined;
  const sizes = operands.sizes && operands.sizes.length > 0 ? operands.sizes : undefined;
  const p = plan(ctx, a, input, scales, sizes);
  const outShape = p.shape as number[];
  const roi = operands.roi && operands.roi.length > 0 ? operands.roi : undefined;
  const taps: ResizeAxisTaps[] = [];
  let shape = [...input];
  for (const [k, ax] of a.axes.entries()) {
    let box: [number, number] = [0, 1];
    if (roi) box = roi.length === 2 * input.length ? [roi[ax]!, roi[ax + input.length]!] : [roi[k]!, roi[k + a.axes.length]!];
    const t = axisTaps(ctx, a, shape[ax]!, outShape[ax]!, p.scales![ax]!, box);
    if (t.identity) continue;
    taps.push({ axis: ax, n: t.n, index: t.index, weight: t.weight, extrapolate: t.extrapolate, fill: t.fill });
    shape = shape.map((d, i) => (i === ax ? outShape[ax]! : d));
  }
  return { shape: outShape, taps };
}

export const resizeRules: { readonly Resize: OpRule } = { Resize: resize };
