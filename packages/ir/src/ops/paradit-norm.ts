/**
 * ParaDiT's fused normalizations over the last axis (created by the fuse-norms pass).
 *
 * Shape letters: D the normalized (last) axis; "..." any leading axes ([B,S,D] for token norms,
 * [B,S,N,H] or [B,N,S,H] for per-head q/k norms, where D = H).
 *
 *   rms_norm(x [...,D], weight? [D]) {eps}        = x / sqrt(mean(x^2) + eps) * weight
 *   layer_norm(x [...,D], weight? [D], bias? [D]) {eps} = (x - mean) / sqrt(var + eps) * weight + bias
 *
 * Statistics are computed in fp32 (doubles here) whatever x's dtype; the result is rounded once
 * to x's dtype. The affine operands may have any float dtype.
 */
import type { TensorType } from '../graph';
import { isFloat } from '../dtype';
import type { Tensor } from '../tensor';
import type { InferCtx, OpRule, RunCtx } from './rule';
import { need, tensorType } from './rule';
import { alloc, finish, fmt } from './nn-kernels';
import { dimsAgree } from './paradit-attention';

function inferNorm(ctx: InferCtx, affine: readonly string[]): TensorType[] {
  const x = need(ctx, ctx.inputs, 0);
  if (!isFloat(x.dtype)) ctx.fail(`x must be a float tensor, got ${x.dtype}`);
  if (x.shape.length < 1) ctx.fail(`x must have rank >= 1 (the last axis is normalized), got a scalar`);
  const eps = ctx.attr.float('eps');
  if (!(eps >= 0) || !Number.isFinite(eps)) ctx.fail(`attribute 'eps' must be a finite number >= 0, got ${eps}`);
  const D = x.shape[x.shape.length - 1]!;
  affine.forEach((what, k) => {
    const t = ctx.inputs[k + 1];
    if (!t) return;
    if (!isFloat(t.dtype)) ctx.fail(`${what} must be a float tensor, got ${t.dtype}`);
    if (t.shape.length !== 1 || !dimsAgree(t.shape[0]!, D)) ctx.fail(`${what} must be [D] = [${D}] (x is ${fmt(x.shape)}), got ${fmt(t.shape)}`);
  });
  if (ctx.inputs.length > affine.length + 1) ctx.fail(`takes at most ${affine.length + 1} inputs, got ${ctx.inputs.length}`);
  return [tensorType(x.dtype, x.shape)];
}

/** Normalizes each row of x's last axis; `center` subtracts the mean (LayerNorm) or not (RMSNorm). */
function runNorm(ctx: RunCtx, center: boolean): Tensor[] {
  const x = need(ctx, ctx.inputs, 0);
  const w = ctx.inputs[1]?.data;
  const bias = center ? ctx.inputs[2]?.data : undefined;
  const eps = ctx.attr.float('eps');
  const D = x.shape[x.shape.length - 1]!;
  const out = alloc(x.dtype, x.shape);
  const xd = x.data;
  const rows = D === 0 ? 0 : xd.length / D;
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let mean = 0;
    if (center) {
      for (let j = 0; j < D; j++) mean += xd[o + j]!;
      mean /= D;
    }
    let sq = 0;
    for (let j = 0; j < D; j++) {
      const c = xd[o + j]! - mean;
      sq += c * c;
    }
    const inv = 1 / Math.sqrt(sq / D + eps);
    for (let j = 0; j < D; j++) {
      let y = (xd[o + j]! - mean) * inv;
      if (w) y *= w[j]!;
      if (bias) y += bias[j]!;
      out[o + j] = y;
    }
  }
  return [finish(x.dtype, x.shape, out)];
}

export const rmsNormRule: OpRule = {
  doc: 'rms_norm(x [...,D], weight? [D]) {eps}: x / sqrt(mean(x^2 over the last axis) + eps) * weight, statistics in fp32, result in x\'s dtype',
  infer: (ctx) => inferNorm(ctx, ['weight']),
  run: (ctx) => runNorm(ctx, false),
};

export const layerNormRule: OpRule = {
  doc: 'layer_norm(x [...,D], weight? [D], bias? [D]) {eps}: (x - mean) / sqrt(var + eps) * weight + bias over the last axis, statistics in fp32, result in x\'s dtype',
  infer: (ctx) => inferNorm(ctx, ['weight', 'bias']),
  run: (ctx) => runNorm(ctx, true),
};
