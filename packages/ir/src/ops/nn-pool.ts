/**
 * Pooling over 1-3 spatial axes, NC[D]HW layout: AveragePool (count_include_pad, ceil_mode,
 * dilations), MaxPool (optional int64 Indices output, storage_order, ceil_mode, dilations),
 * GlobalAveragePool and GlobalMaxPool (output [N, C, 1, ...]). Windows are evaluated directly
 * per output position; padded positions never contribute to a max.
 */
import type { Dim, TensorType } from '../graph';
import { Tensor, numel } from '../tensor';
import type { InferCtx, OpRule, RunCtx } from './rule';
import { need, tensorType } from './rule';
import { alloc, finish, fmt, requireNumeric } from './nn-kernels';
import { Window, checkSpatialRank, readWindow, resolveWindow, to3 } from './nn-spatial';

interface PoolPlan {
  readonly win: Window;
  readonly out: Dim[];
  readonly padB: number[];
  readonly padE: number[];
}

function planPool(ctx: InferCtx | RunCtx, x: readonly Dim[]): PoolPlan {
  checkSpatialRank(ctx, x.length, `X ${fmt(x)}`);
  const win = readWindow(ctx, x.length - 2);
  // Dilations exist for MaxPool (opset 10+) and AveragePool (opset 19+); readWindow read them.
  const ceil = ctx.attr.int('ceil_mode', 0) !== 0;
  const r = resolveWindow(ctx, x.slice(2), win, ceil);
  return { win, out: [x[0]!, x[1]!, ...r.out], padB: r.padB, padE: r.padE };
}

function poolInfer(ctx: InferCtx, isMax: boolean): TensorType[] {
  const x = need(ctx, ctx.inputs, 0);
  requireNumeric(ctx, x.dtype, 'X');
  if (!isMax && x.dtype !== 'f32' && x.dtype !== 'f16' && x.dtype !== 'f64' && x.dtype !== 'bf16') {
    ctx.fail(`X must be a float tensor, got ${x.dtype}`);
  }
  const plan = planPool(ctx, x.shape);
  const types = [tensorType(x.dtype, plan.out)];
  if (isMax && ctx.numOutputs > 1) types.push(tensorType('i64', plan.out));
  return types;
}

/** Canonical 3-D geometry of a pool, in plain numbers. */
function geometry(X: Tensor, plan: PoolPlan) {
  const outShape = plan.out as number[];
  const [D, H, W] = to3(X.shape.slice(2), 1) as [number, number, number];
  const [OD, OH, OW] = to3(outShape.slice(2), 1) as [number, number, number];
  const k = to3(plan.win.kernel, 1) as [number, number, number];
  const s = to3(plan.win.strides, 1) as [number, number, number];
  const d = to3(plan.win.dilations, 1) as [number, number, number];
  const pb = to3(plan.padB, 0) as [number, number, number];
  const pe = to3(plan.padE, 0) as [number, number, number];
  const planes = X.shape[0]! * X.shape[1]!;
  return { outShape, D, H, W, OD, OH, OW, k, s, d, pb, pe, planes };
}

function avgRun(ctx: RunCtx): Tensor[] {
  const X = need(ctx, ctx.inputs, 0);
  const plan = planPool(ctx, X.shape);
  const g = geometry(X, plan);
  const includePad = ctx.attr.int('count_include_pad', 0) !== 0;
  const out = alloc(X.dtype, g.outShape);
  const x = X.data;
  const inSizes = [g.D, g.H, g.W];
  const outSizes = [g.OD, g.OH, g.OW];
  // Per axis and output position: the valid kernel offsets and how many count toward the divisor.
  const axes = [0, 1, 2].map((a) => {
    const ks: number[][] = [];
    const padCount: number[] = [];
    for (let o = 0; o < outSizes[a]!; o++) {
      const valid: number[] = [];
      let inPadded = 0;
      for (let kk = 0; kk < g.k[a]!; kk++) {
        const i = o * g.s[a]! - g.pb[a]! + kk * g.d[a]!;
        if (i >= 0 && i < inSizes[a]!) valid.push(i);
        if (i >= -g.pb[a]! && i < inSizes[a]! + g.pe[a]!) inPadded++;
      }
      ks.push(valid);
      padCount.push(inPadded);
    }
    return { ks, padCount };
  });
  const [ad, ah, aw] = axes as [typeof axes[0], typeof axes[0], typeof axes[0]];
  let o = 0;
  for (let p = 0; p < g.planes; p++) {
    const base = p * g.D * g.H * g.W;
    for (let od = 0; od < g.OD; od++) {
      for (let oh = 0; oh < g.OH; oh++) {
        for (let ow = 0; ow < g.OW; ow++, o++) {
          let sum = 0;
          for (const id of ad.ks[od]!) for (const ih of ah.ks[oh]!) {
            const row = base + (id * g.H + ih) * g.W;
            for (const iw of aw.ks[ow]!) sum += x[row + iw]!;
          }
          const count = includePad
            ? ad.padCount[od]! * ah.padCount[oh]! * aw.padCount[ow]!
            : ad.ks[od]!.length * ah.ks[oh]!.length * aw.ks[ow]!.length;
          out[o] = count > 0 ? sum / count : NaN;
        }
      }
    }
  }
  return [finish(X.dtype, g.outShape, out)];
}

function maxRun(ctx: RunCtx): Tensor[] {
  const X = need(ctx, ctx.inputs, 0);
  const plan = planPool(ctx, X.shape);
  const g = geometry(X, plan);
  const colMajor = ctx.attr.int('storage_order', 0) === 1;
  const wantIdx = ctx.numOutputs > 1;
  const out = alloc(X.dtype, g.outShape);
  const idx = wantIdx ? new Float64Array(out.length) : undefined;
  const x = X.data;
  const valid = (a: number, o: number, size: number): number[] => {
    const r: number[] = [];
    for (let kk = 0; kk < g.k[a]!; kk++) {
      const i = o * g.s[a]! - g.pb[a]! + kk * g.d[a]!;
      if (i >= 0 && i < size) r.push(i);
    }
    return r;
  };
  const vd = Array.from({ length: g.OD }, (_, o) => valid(0, o, g.D));
  const vh = Array.from({ length: g.OH }, (_, o) => valid(1, o, g.H));
  const vw = Array.from({ length: g.OW }, (_, o) => valid(2, o, g.W));
  const plane = g.D * g.H * g.W;
  let o = 0;
  for (let p = 0; p < g.planes; p++) {
    const base = p * plane;
    for (let od = 0; od < g.OD; od++) {
      for (let oh = 0; oh < g.OH; oh++) {
        for (let ow = 0; ow < g.OW; ow++, o++) {
          let best = -Infinity;
          let at = -1;
          for (const id of vd[od]!) for (const ih of vh[oh]!) {
            const row = base + (id * g.H + ih) * g.W;
            for (const iw of vw[ow]!) {
              const v = x[row + iw]!;
              if (v > best || at < 0) {
                best = v;
                at = colMajor ? base + id + g.D * (ih + g.H * iw) : row + iw;
              }
            }
          }
          out[o] = best;
          if (idx) idx[o] = at;
        }
      }
    }
  }
  const res = [finish(X.dtype, g.outShape, out)];
  if (idx) res.push(new Tensor('i64', g.outShape, idx));
  return res;
}

/** Output shape of a global pool: [N, C, 1, ...]. */
function globalShape(ctx: InferCtx | RunCtx, x: readonly Dim[]): Dim[] {
  if (x.length < 3) ctx.fail(`X must have rank >= 3 ([N, C, spatial...]), got ${fmt(x)}`);
  return [x[0]!, x[1]!, ...new Array<number>(x.length - 2).fill(1)];
}

function globalRun(ctx: RunCtx, isMax: boolean): Tensor[] {
  const X = need(ctx, ctx.inputs, 0);
  const shape = globalShape(ctx, X.shape) as number[];
  const planes = X.shape[0]! * X.shape[1]!;
  const size = numel(X.shape.slice(2));
  const out = alloc(X.dtype, shape);
  const x = X.data;
  for (let p = 0; p < planes; p++) {
    let r = isMax ? -Infinity : 0;
    for (let i = p * size; i < (p + 1) * size; i++) r = isMax ? (x[i]! > r || Number.isNaN(x[i]!) ? x[i]! : r) : r + x[i]!;
    out[p] = isMax ? r : r / size;
  }
  return [finish(X.dtype, shape, out)];
}

function globalInfer(ctx: InferCtx, isMax: boolean): TensorType[] {
  const x = need(ctx, ctx.inputs, 0);
  if (isMax) requireNumeric(ctx, x.dtype, 'X');
  else if (x.dtype !== 'f32' && x.dtype !== 'f16' && x.dtype !== 'f64' && x.dtype !== 'bf16') ctx.fail(`X must be a float tensor, got ${x.dtype}`);
  return [tensorType(x.dtype, globalShape(ctx, x.shape))];
}

export const poolRules: {
  readonly AveragePool: OpRule;
  readonly MaxPool: OpRule;
  readonly GlobalAveragePool: OpRule;
  readonly GlobalMaxPool: OpRule;
} = {
  AveragePool: {
    doc: 'AveragePool(X[N,C,...]) {kernel_shape, strides, pads|auto_pad, ceil_mode, count_include_pad, dilations} -> [N,C,...]: window mean.',
    infer: (ctx) => poolInfer(ctx, false),
    run: avgRun,
  },
  MaxPool: {
    doc: 'MaxPool(X[N,C,...]) {kernel_shape, strides, pads|auto_pad, ceil_mode, dilations, storage_order} -> Y[N,C,...], Indices? (i64 flat input index).',
    infer: (ctx) => poolInfer(ctx, true),
    run: maxRun,
  },
  GlobalAveragePool: {
    doc: 'GlobalAveragePool(X[N,C,...]) -> [N,C,1,...]: mean over all spatial axes.',
    infer: (ctx) => globalInfer(ctx, false),
    run: (ctx) => globalRun(ctx, false),
  },
  GlobalMaxPool: {
    doc: 'GlobalMaxPool(X[N,C,...]) -> [N,C,1,...]: max over all spatial axes.',
    infer: (ctx) => globalInfer(ctx, true),
    run: (ctx) => globalRun(ctx, true),
  },
};
