/**
 * Normalization layers. Statistics are computed in doubles (two passes: mean, then variance of
 * the centred values); outputs are rounded to the input dtype.
 * - LayerNormalization(X, Scale, B?) {axis=-1, epsilon, stash_type} -> Y, Mean?, InvStdDev?
 *   (statistics over axes [axis, rank); Mean/InvStdDev have shape X[:axis] + [1...]).
 * - RMSNormalization(X, scale) {axis=-1, epsilon, stash_type} -> Y = X / sqrt(mean(X^2) + eps) * scale.
 * - GroupNormalization(X[N,C,...], scale, bias) {num_groups, epsilon}: opset 21 takes per-channel
 *   scale/bias [C]; opset 18 took per-group [num_groups].
 * - InstanceNormalization(X[N,C,...], scale[C], B[C]) {epsilon}: statistics per (n, c).
 * - BatchNormalization(X[N,C,...], scale, B, mean, var) {epsilon, momentum, training_mode}:
 *   inference uses the given statistics; training_mode also returns running mean and variance.
 */
import type { Dim, TensorType } from '../graph';
import { dtypeFromOnnx } from '../dtype';
import type { DType } from '../dtype';
import { Tensor, numel } from '../tensor';
import type { InferCtx, OpRule, RuleCtx, RunCtx } from './rule';
import { need, normAxis, sameDtype, tensorType } from './rule';
import { alloc, broadcastStrides, finish, fmt, requireFloat } from './nn-kernels';

/** Requires `s` to broadcast (numpy, one-directional) to `target`. */
function checkBroadcastTo(ctx: RuleCtx, what: string, s: readonly Dim[], target: readonly Dim[], perSample = false): void {
  const off = target.length - s.length;
  const bad = off < 0 || s.some((d, i) => d !== 1 && typeof d === 'number' && typeof target[off + i] === 'number' && d !== target[off + i]);
  if (bad) ctx.fail(`${what} ${fmt(s)} does not broadcast to ${perSample ? "X's shape (a per-sample parameter)" : 'the normalized shape'} ${fmt(target)}`);
}

/** `t` broadcast to `shape`, as a dense Float64Array. */
function expand(t: Tensor, shape: readonly number[]): Float64Array {
  const n = numel(shape);
  const out = new Float64Array(n);
  if (t.size === n) {
    out.set(t.data);
    return out;
  }
  const st = broadcastStrides(t.shape, shape);
  const idx = new Array<number>(shape.length).fill(0);
  let src = 0;
  for (let i = 0; i < n; i++) {
    out[i] = t.data[src]!;
    for (let k = shape.length - 1; k >= 0; k--) {
      idx[k]!++;
      src += st[k]!;
      if (idx[k]! < shape[k]!) break;
      src -= st[k]! * shape[k]!;
      idx[k] = 0;
    }
  }
  return out;
}

function stashDtype(ctx: RuleCtx): DType {
  const code = ctx.attr.int('stash_type', 1);
  const d = dtypeFromOnnx(code);
  if (d !== 'f32' && d !== 'f64' && d !== 'bf16' && d !== 'f16') ctx.fail(`stash_type must be a float type code, got ${code}`);
  return d;
}

/** Mean and 1/sqrt(var + eps) of x[off, off+n). */
function stats(x: Tensor['data'], off: number, n: number, eps: number): [number, number] {
  let s = 0;
  for (let i = off; i < off + n; i++) s += x[i]!;
  const mean = s / n;
  let v = 0;
  for (let i = off; i < off + n; i++) {
    const d = x[i]! - mean;
    v += d * d;
  }
  return [mean, 1 / Math.sqrt(v / n + eps)];
}

// ---------------------------------------------------------------------------------------------

function layerNormInfer(ctx: InferCtx, rms: boolean): TensorType[] {
  const x = need(ctx, ctx.inputs, 0);
  const scale = need(ctx, ctx.inputs, 1);
  const bias = rms ? undefined : ctx.inputs[2];
  const dtype = sameDtype(ctx, [x, scale, bias]);
  requireFloat(ctx, dtype, 'X');
  const axis = normAxis(ctx, ctx.attr.int('axis', -1), x.shape.length);
  // Scale and bias broadcast to the normalized shape or, per sample (opset-23 exports of modulated
  // norms; ONNX Runtime accepts them), to X's whole shape.
  const norm = x.shape.length - axis;
  checkBroadcastTo(ctx, rms ? 'scale' : 'Scale', scale.shape, scale.shape.length > norm ? x.shape : x.shape.slice(axis), scale.shape.length > norm);
  if (bias) checkBroadcastTo(ctx, 'B', bias.shape, bias.shape.length > norm ? x.shape : x.shape.slice(axis), bias.shape.length > norm);
  const stash = stashDtype(ctx);
  if (rms) return [tensorType(dtype, x.shape)];
  const statShape = [...x.shape.slice(0, axis), ...new Array<number>(x.shape.length - axis).fill(1)];
  return [tensorType(dtype, x.shape), tensorType(stash, statShape), tensorType(stash, statShape)];
}

function layerNormRun(ctx: RunCtx, rms: boolean): Tensor[] {
  const X = need(ctx, ctx.inputs, 0);
  const axis = normAxis(ctx, ctx.attr.int('axis', -1), X.rank);
  const eps = ctx.attr.float('epsilon', 1e-5);
  const normShape = X.shape.slice(axis);
  const inner = numel(normShape);
  const outer = numel(X.shape.slice(0, axis));
  // A parameter over the normalized axes repeats for every row (stride 0); a per-sample one
  // (rank above the normalized axes) is expanded to X's shape and read at the row's offset.
  const param = (t: Tensor): { data: Float64Array; rowStride: number } =>
    t.rank > X.rank - axis ? { data: expand(t, X.shape), rowStride: inner } : { data: expand(t, normShape), rowStride: 0 };
  const sc = param(need(ctx, ctx.inputs, 1));
  const B = rms ? undefined : ctx.inputs[2];
  const bp = B ? param(B) : undefined;
  const x = X.data;
  const y = alloc(X.dtype, X.shape);
  const stash = stashDtype(ctx);
  const statShape = [...X.shape.slice(0, axis), ...new Array<number>(X.rank - axis).fill(1)];
  const means = alloc(stash, statShape);
  const invs = alloc(stash, statShape);
  for (let r = 0; r < outer; r++) {
    const off = r * inner;
    let mean = 0;
    let inv: number;
    if (rms) {
      let s = 0;
      for (let i = 0; i < inner; i++) s += x[off + i]! * x[off + i]!;
      inv = 1 / Math.sqrt(s / inner + eps);
    } else {
      [mean, inv] = stats(x, off, inner, eps);
    }
    means[r] = mean;
    invs[r] = inv;
    const so = r * sc.rowStride;
    const scale = sc.data;
    if (bp) {
      const bo = r * bp.rowStride;
      const bias = bp.data;
      for (let i = 0; i < inner; i++) y[off + i] = (x[off + i]! - mean) * inv * scale[so + i]! + bias[bo + i]!;
    } else for (let i = 0; i < inner; i++) y[off + i] = (x[off + i]! - mean) * inv * scale[so + i]!;
  }
  const out = [finish(X.dtype, X.shape, y)];
  if (!rms) out.push(finish(stash, statShape, means), finish(stash, statShape, invs));
  return out;
}

// ---------------------------------------------------------------------------------------------

/** Checks X[N, C, ...] and per-channel parameter vectors of length `len` (a Dim). */
function checkChannelParams(ctx: InferCtx, first: number, names: readonly string[], len: Dim, lenWhat: string): void {
  names.forEach((name, k) => {
    const t = need(ctx, ctx.inputs, first + k);
    const ok = t.shape.length === 1 && (typeof t.shape[0] !== 'number' || typeof len !== 'number' || t.shape[0] === len);
    if (!ok) ctx.fail(`${name} must be [${len}] (${lenWhat}), got ${fmt(t.shape)}`);
  });
}

function channelInput(ctx: InferCtx): TensorType {
  const x = need(ctx, ctx.inputs, 0);
  requireFloat(ctx, x.dtype, 'X');
  if (x.shape.length < 2) ctx.fail(`X must have rank >= 2 ([N, C, ...]), got ${fmt(x.shape)}`);
  return x;
}

/** Per-group (opset < 21) or per-channel (opset 21) affine parameters of GroupNormalization. */
function groupParamsPerChannel(ctx: RuleCtx, C: Dim, G: number, scaleLen: Dim): boolean {
  if (ctx.opset >= 21) return true;
  // Opset 18 specified per-group parameters; accept per-channel ones when they are unambiguous.
  return scaleLen !== G && scaleLen === C;
}

const GroupNormalization: OpRule = {
  doc: 'GroupNormalization(X[N,C,...], scale, bias) {num_groups, epsilon, stash_type}: normalize over (C/num_groups channels x spatial); scale/bias per channel (opset 21) or per group (18).',
  infer(ctx) {
    const x = channelInput(ctx);
    sameDtype(ctx, [x, ctx.inputs[1], ctx.inputs[2]]);
    const G = ctx.attr.int('num_groups');
    const C = x.shape[1]!;
    if (G < 1 || (typeof C === 'number' && C % G !== 0)) ctx.fail(`num_groups ${G} must divide the ${C} channels of X ${fmt(x.shape)}`);
    const perChannel = groupParamsPerChannel(ctx, C, G, need(ctx, ctx.inputs, 1).shape[0]!);
    checkChannelParams(ctx, 1, ['scale', 'bias'], perChannel ? C : G, perChannel ? 'one per channel' : 'one per group (opset 18)');
    return [tensorType(x.dtype, x.shape)];
  },
  run(ctx) {
    const X = need(ctx, ctx.inputs, 0);
    const scale = need(ctx, ctx.inputs, 1).data;
    const bias = need(ctx, ctx.inputs, 2).data;
    const G = ctx.attr.int('num_groups');
    const eps = ctx.attr.float('epsilon', 1e-5);
    const [N, C] = X.shape as [number, number];
    const perChannel = groupParamsPerChannel(ctx, C, G, scale.length);
    const spatial = numel(X.shape.slice(2));
    const cg = C / G;
    const y = alloc(X.dtype, X.shape);
    const x = X.data;
    for (let n = 0; n < N; n++) {
      for (let g = 0; g < G; g++) {
        const off = (n * C + g * cg) * spatial;
        const [mean, inv] = stats(x, off, cg * spatial, eps);
        for (let c = 0; c < cg; c++) {
          const ch = g * cg + c;
          const s = perChannel ? scale[ch]! : scale[g]!;
          const b = perChannel ? bias[ch]! : bias[g]!;
          const o = off + c * spatial;
          for (let i = o; i < o + spatial; i++) y[i] = (x[i]! - mean) * inv * s + b;
        }
      }
    }
    return [finish(X.dtype, X.shape, y)];
  },
};

const InstanceNormalization: OpRule = {
  doc: 'InstanceNormalization(X[N,C,...], scale[C], B[C]) {epsilon}: normalize each (n, c) plane over its spatial axes.',
  infer(ctx) {
    const x = channelInput(ctx);
    sameDtype(ctx, [x, ctx.inputs[1], ctx.inputs[2]]);
    checkChannelParams(ctx, 1, ['scale', 'B'], x.shape[1]!, 'one per channel');
    return [tensorType(x.dtype, x.shape)];
  },
  run(ctx) {
    const X = need(ctx, ctx.inputs, 0);
    const scale = need(ctx, ctx.inputs, 1).data;
    const bias = need(ctx, ctx.inputs, 2).data;
    const eps = ctx.attr.float('epsilon', 1e-5);
    const [N, C] = X.shape as [number, number];
    const spatial = numel(X.shape.slice(2));
    const y = alloc(X.dtype, X.shape);
    const x = X.data;
    for (let p = 0; p < N * C; p++) {
      const c = p % C;
      const off = p * spatial;
      const [mean, inv] = stats(x, off, spatial, eps);
      for (let i = off; i < off + spatial; i++) y[i] = (x[i]! - mean) * inv * scale[c]! + bias[c]!;
    }
    return [finish(X.dtype, X.shape, y)];
  },
};

const BatchNormalization: OpRule = {
  doc: 'BatchNormalization(X[N,C,...], scale[C], B[C], mean[C], var[C]) {epsilon, momentum, training_mode} -> Y, running_mean?, running_var?.',
  infer(ctx) {
    const x = channelInput(ctx);
    sameDtype(ctx, [x, ctx.inputs[1], ctx.inputs[2]]);
    sameDtype(ctx, [ctx.inputs[3], ctx.inputs[4]]);
    checkChannelParams(ctx, 1, ['scale', 'B', 'input_mean', 'input_var'], x.shape[1]!, 'one per channel');
    if (ctx.numOutputs > 3) ctx.fail(`declares ${ctx.numOutputs} outputs; only Y, running_mean and running_var (opset 14+) are supported`);
    const C = x.shape[1]!;
    const statType = need(ctx, ctx.inputs, 3).dtype;
    return [tensorType(x.dtype, x.shape), tensorType(statType, [C]), tensorType(statType, [C])];
  },
  run(ctx) {
    const X = need(ctx, ctx.inputs, 0);
    const scale = need(ctx, ctx.inputs, 1).data;
    const bias = need(ctx, ctx.inputs, 2).data;
    const M = need(ctx, ctx.inputs, 3);
    const V = need(ctx, ctx.inputs, 4);
    const eps = ctx.attr.float('epsilon', 1e-5);
    const momentum = ctx.attr.float('momentum', 0.9);
    const training = ctx.attr.int('training_mode', 0) !== 0 || ctx.numOutputs > 1;
    const [N, C] = X.shape as [number, number];
    const spatial = numel(X.shape.slice(2));
    const x = X.data;
    let mean: ArrayLike<number> = M.data;
    let variance: ArrayLike<number> = V.data;
    if (training) {
      // Batch statistics over every axis but the channel axis (population variance).
      const bm = new Float64Array(C);
      const bv = new Float64Array(C);
      const count = N * spatial;
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let n = 0; n < N; n++) for (let i = (n * C + c) * spatial, e = i + spatial; i < e; i++) s += x[i]!;
        const m = s / count;
        let v = 0;
        for (let n = 0; n < N; n++) for (let i = (n * C + c) * spatial, e = i + spatial; i < e; i++) v += (x[i]! - m) * (x[i]! - m);
        bm[c] = m;
        bv[c] = v / count;
      }
      mean = bm;
      variance = bv;
    }
    const y = alloc(X.dtype, X.shape);
    for (let p = 0; p < N * C; p++) {
      const c = p % C;
      const inv = 1 / Math.sqrt(variance[c]! + eps);
      const m = mean[c]!;
      const s = scale[c]!;
      const b = bias[c]!;
      for (let i = p * spatial, e = i + spatial; i < e; i++) y[i] = (x[i]! - m) * inv * s + b;
    }
    const out = [finish(X.dtype, X.shape, y)];
    if (ctx.numOutputs > 1) {
      const rm = alloc(M.dtype, [C]);
      const rv = alloc(V.dtype, [C]);
      for (let c = 0; c < C; c++) {
        rm[c] = M.data[c]! * momentum + mean[c]! * (1 - momentum);
        rv[c] = V.data[c]! * momentum + variance[c]! * (1 - momentum);
      }
      out.push(finish(M.dtype, [C], rm), finish(V.dtype, [C], rv));
    }
    return out;
  },
};

export const normRules: {
  readonly LayerNormalization: OpRule;
  readonly RMSNormalization: OpRule;
  readonly GroupNormalization: OpRule;
  readonly InstanceNormalization: OpRule;
  readonly BatchNormalization: OpRule;
} = {
  LayerNormalization: {
    doc: 'LayerNormalization(X, Scale, B?) {axis=-1, epsilon=1e-5, stash_type} -> Y, Mean?, InvStdDev?: normalize over axes [axis, rank).',
    infer: (ctx) => layerNormInfer(ctx, false),
    run: (ctx) => layerNormRun(ctx, false),
  },
  RMSNormalization: {
    doc: 'RMSNormalization(X, scale) {axis=-1, epsilon=1e-5, stash_type} -> X / sqrt(mean(X^2 over [axis, rank)) + eps) * scale.',
    infer: (ctx) => layerNormInfer(ctx, true),
    run: (ctx) => layerNormRun(ctx, true),
  },
  GroupNormalization,
  InstanceNormalization,
  BatchNormalization,
};
