/**
 * ParaDiT's fused rotary position embedding (created by the fuse-rope pass).
 *
 * Shape letters: B batch, N heads, S sequence, H head dim (even); C the table width, H or H/2.
 *
 *   rope(x, cos, sin) {style, layout} -> x's type;  out = x * cos + rot(x) * sin
 *
 * - layout 'BNSH': x is [B,N,S,H]; layout 'BSNH': x is [B,S,N,H].
 * - style 'rotate_half' (GPT-NeoX, SD3/CogVideoX/HunyuanVideo): rot(x) = concat(-x[H/2:], x[:H/2]),
 *   so element j pairs with j + H/2. style 'interleaved' (GPT-J, FLUX, Wan): rot(x)[2p] = -x[2p+1],
 *   rot(x)[2p+1] = x[2p], so element 2p pairs with 2p+1.
 * - cos/sin: [S,C], [B,S,C] (placed on x's B and S axes per layout), or rank 4 broadcasting to x
 *   with last axis C. C = H gives one value per element; C = H/2 gives one value per rotation
 *   pair, shared by its two elements (pair p is (p, p+H/2) for rotate_half, (2p, 2p+1) for
 *   interleaved).
 *
 * Computed in fp32 (doubles here), rounded once to x's dtype.
 */
import type { Dim, TensorType } from '../graph';
import { isFloat } from '../dtype';
import type { Tensor } from '../tensor';
import type { InferCtx, OpRule, RuleCtx, RunCtx } from './rule';
import { need, tensorType } from './rule';
import { alloc, broadcastStrides, finish, fmt } from './nn-kernels';
import { dimsAgree } from './paradit-attention';

type RopeStyle = 'rotate_half' | 'interleaved';
type RopeLayout = 'BNSH' | 'BSNH';

function readStyle(ctx: RuleCtx): RopeStyle {
  const s = ctx.attr.string('style');
  if (s !== 'rotate_half' && s !== 'interleaved') ctx.fail(`attribute 'style' must be 'rotate_half' or 'interleaved', got '${s}'`);
  return s;
}

function readLayout(ctx: RuleCtx): RopeLayout {
  const l = ctx.attr.string('layout');
  if (l !== 'BNSH' && l !== 'BSNH') ctx.fail(`attribute 'layout' must be 'BNSH' or 'BSNH', got '${l}'`);
  return l;
}

/** The table's shape as a rank-4 shape aligned with x's axes (size 1 where it broadcasts). */
function ropeTableShape<D extends Dim>(shape: readonly D[], layout: RopeLayout): (D | 1)[] | undefined {
  const c = shape[shape.length - 1]!;
  if (shape.length === 2) return layout === 'BNSH' ? [1, 1, shape[0]!, c] : [1, shape[0]!, 1, c];
  if (shape.length === 3) return layout === 'BNSH' ? [shape[0]!, 1, shape[1]!, c] : [shape[0]!, shape[1]!, 1, c];
  if (shape.length === 4) return [...shape];
  return undefined;
}

function inferRope(ctx: InferCtx): TensorType[] {
  const x = need(ctx, ctx.inputs, 0);
  readStyle(ctx);
  const layout = readLayout(ctx);
  const shape = layout === 'BNSH' ? '[B,N,S,H]' : '[B,S,N,H]';
  if (x.shape.length !== 4) ctx.fail(`x must be ${shape} (layout ${layout}), got ${fmt(x.shape)}`);
  if (!isFloat(x.dtype)) ctx.fail(`x must be a float tensor, got ${x.dtype}`);
  const H = x.shape[3]!;
  if (typeof H === 'number' && H % 2 !== 0) ctx.fail(`head dim must be even, got ${H} (x is ${fmt(x.shape)})`);
  for (const [i, what] of [[1, 'cos'], [2, 'sin']] as const) {
    const t = need(ctx, ctx.inputs, i);
    if (!isFloat(t.dtype)) ctx.fail(`${what} must be a float tensor, got ${t.dtype}`);
    const aligned = ropeTableShape(t.shape, layout);
    if (!aligned) ctx.fail(`${what} must be [S,C], [B,S,C] or rank 4, got ${fmt(t.shape)}`);
    const C = aligned[3]!;
    const width = typeof H === 'number' && typeof C === 'number' ? C === H || 2 * C === H : true;
    const lead = aligned.slice(0, 3).every((d, k) => d === 1 || dimsAgree(d, x.shape[k]!));
    if (!width || !lead) {
      ctx.fail(`${what} ${fmt(t.shape)} must broadcast to x ${fmt(x.shape)} (layout ${layout}) with last axis H = ${H} or H/2`);
    }
  }
  return [tensorType(x.dtype, x.shape)];
}

function runRope(ctx: RunCtx): Tensor[] {
  const x = need(ctx, ctx.inputs, 0);
  const cos = need(ctx, ctx.inputs, 1);
  const sin = need(ctx, ctx.inputs, 2);
  const style = readStyle(ctx);
  const layout = readLayout(ctx);
  const [A0, A1, A2, H] = x.shape as [number, number, number, number];
  const half = H / 2;
  const cShape = ropeTableShape(cos.shape, layout)!;
  const sShape = ropeTableShape(sin.shape, layout)!;
  const cs = broadcastStrides(cShape, [A0, A1, A2, cShape[3]!]);
  const ss = broadcastStrides(sShape, [A0, A1, A2, sShape[3]!]);
  const cHalf = cShape[3] !== H;
  const sHalf = sShape[3] !== H;
  const xd = x.data;
  const cd = cos.data;
  const sd = sin.data;
  const out = alloc(x.dtype, x.shape);
  // Pair p is (lo, hi) with lo = p, hi = p + H/2 (rotate_half) or lo = 2p, hi = 2p + 1 (interleaved);
  // out[lo] = x[lo]*cos[lo] - x[hi]*sin[lo] and out[hi] = x[hi]*cos[hi] + x[lo]*sin[hi].
  for (let i0 = 0; i0 < A0; i0++) {
    for (let i1 = 0; i1 < A1; i1++) {
      for (let i2 = 0; i2 < A2; i2++) {
        const o = ((i0 * A1 + i1) * A2 + i2) * H;
        const co = i0 * cs[0]! + i1 * cs[1]! + i2 * cs[2]!;
        const so = i0 * ss[0]! + i1 * ss[1]! + i2 * ss[2]!;
        for (let p = 0; p < half; p++) {
          const lo = style === 'interleaved' ? 2 * p : p;
          const hi = style === 'interleaved' ? 2 * p + 1 : p + half;
          const xl = xd[o + lo]!;
          const xh = xd[o + hi]!;
          const cl = cd[co + (cHalf ? p : lo)]!;
          const ch = cd[co + (cHalf ? p : hi)]!;
          const sl = sd[so + (sHalf ? p : lo)]!;
          const sh = sd[so + (sHalf ? p : hi)]!;
          out[o + lo] = xl * cl - xh * sl;
          out[o + hi] = xh * ch + xl * sh;
        }
      }
    }
  }
  return [finish(x.dtype, x.shape, out)];
}

export const ropeRule: OpRule = {
  doc:
    "rope(x, cos, sin) {style: 'rotate_half'|'interleaved', layout: 'BNSH'|'BSNH'}: x*cos + rot(x)*sin over the head dim H; " +
    'cos/sin [S,C], [B,S,C] or rank 4 broadcasting to x, C = H (per element) or H/2 (per rotation pair)',
  infer: inferRope,
  run: runRope,
};
