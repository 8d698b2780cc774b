/**
 * ParaDiT's fused attention op (created by the fuse-attention pass, never imported).
 *
 * Shape letters: B batch, N query heads, Nkv key/value heads, Sq query sequence, Skv key/value
 * sequence, H head dim (of q and k), Hv head dim of v, D model dim (N*H).
 *
 *   attention(q [B,N,Sq,H], k [B,Nkv,Skv,H], v [B,Nkv,Skv,Hv], mask?) {scale, numHeads, kvHeads}
 *     -> [B,N,Sq,Hv]
 *   out[b,n,i,:] = softmax_j(scale * q[b,n,i,:]·k[b,n',j,:] + bias[b,n,i,j]) @ v[b,n',:,:]
 *   where n' = floor(n / (N/Nkv)) (grouped-query attention when Nkv < N).
 *
 * The mask is optional and broadcasts (numpy-style) to [B,N,Sq,Skv]: a bool mask means "true =
 * attend" (false adds -inf), a float mask is added to the scaled scores. The softmax runs in fp32
 * (doubles here) with max subtraction. A row whose every key is masked out (-inf everywhere)
 * gives zeros: the "safe softmax" of PyTorch's SDPA and of flash attention (a plain Softmax would
 * give NaN there; exporters that guard it with Where(IsNaN(p), 0, p) give zeros too).
 */
import type { Dim, TensorType } from '../graph';
import { isFloat } from '../dtype';
import type { Tensor, TensorData } from '../tensor';
import type { InferCtx, OpRule, RunCtx } from './rule';
import { need, tensorType } from './rule';
import { alloc, broadcastStrides, finish, fmt, gemm } from './nn-kernels';

/** Two dims agree when either is symbolic or both are equal sizes. */
export function dimsAgree(a: Dim, b: Dim): boolean {
  return typeof a !== 'number' || typeof b !== 'number' || a === b;
}

function requireRank4(ctx: InferCtx, t: TensorType, what: string, layout: string): void {
  if (t.shape.length !== 4) ctx.fail(`${what} must be ${layout} (rank 4), got ${t.dtype}${fmt(t.shape)}`);
  if (!isFloat(t.dtype)) ctx.fail(`${what} must be a float tensor, got ${t.dtype}`);
}

function inferAttention(ctx: InferCtx): TensorType[] {
  const q = need(ctx, ctx.inputs, 0);
  const k = need(ctx, ctx.inputs, 1);
  const v = need(ctx, ctx.inputs, 2);
  requireRank4(ctx, q, 'q', '[B,N,Sq,H]');
  requireRank4(ctx, k, 'k', '[B,Nkv,Skv,H]');
  requireRank4(ctx, v, 'v', '[B,Nkv,Skv,Hv]');
  if (k.dtype !== q.dtype || v.dtype !== q.dtype) ctx.fail(`q, k and v must share a dtype, got ${q.dtype}, ${k.dtype} and ${v.dtype}`);
  const scale = ctx.attr.float('scale');
  if (!Number.isFinite(scale)) ctx.fail(`attribute 'scale' must be finite, got ${scale}`);
  const numHeads = ctx.attr.int('numHeads');
  const kvHeads = ctx.attr.int('kvHeads');
  if (numHeads < 1 || kvHeads < 1 || numHeads % kvHeads !== 0) {
    ctx.fail(`numHeads (${numHeads}) must be a positive multiple of kvHeads (${kvHeads})`);
  }
  const [B, N, Sq, H] = q.shape as [Dim, Dim, Dim, Dim];
  if (!dimsAgree(N, numHeads)) ctx.fail(`q has ${N} heads on axis 1, expected numHeads = ${numHeads}`);
  if (!dimsAgree(k.shape[1]!, kvHeads) || !dimsAgree(v.shape[1]!, kvHeads)) {
    ctx.fail(`k and v must have kvHeads = ${kvHeads} heads on axis 1, got k ${fmt(k.shape)} and v ${fmt(v.shape)}`);
  }
  if (!dimsAgree(k.shape[0]!, B) || !dimsAgree(v.shape[0]!, B)) ctx.fail(`batch differs: q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)}`);
  if (!dimsAgree(k.shape[3]!, H)) ctx.fail(`head dims differ: q ${fmt(q.shape)} and k ${fmt(k.shape)} (axis 3 must match)`);
  const Skv = k.shape[2]!;
  if (!dimsAgree(v.shape[2]!, Skv)) ctx.fail(`k and v sequence lengths differ: k ${fmt(k.shape)}, v ${fmt(v.shape)}`);
  const mask = ctx.inputs[3];
  if (mask) {
    if (mask.dtype !== 'bool' && !isFloat(mask.dtype)) ctx.fail(`mask must be bool (true = attend) or float (additive), got ${mask.dtype}`);
    const target: Dim[] = [B, N, Sq, Skv];
    if (mask.shape.length > 4) ctx.fail(`mask must broadcast to [B,N,Sq,Skv] = ${fmt(target)}, got rank ${mask.shape.length} ${fmt(mask.shape)}`);
    const off = 4 - mask.shape.length;
    mask.shape.forEach((d, i) => {
      if (d !== 1 && !dimsAgree(d, target[off + i]!)) ctx.fail(`mask ${fmt(mask.shape)} does not broadcast to [B,N,Sq,Skv] = ${fmt(target)}`);
    });
  }
  return [tensorType(q.dtype, [B, N, Sq, v.shape[3]!])];
}

/**
 * The attention kernel of `attention` and of `attention_lse` (ring steps): per (b, n), scores =
 * scale * q @ k^T (+ mask), a max-subtracted softmax in doubles, then p @ v, both products
 * through the blocked gemm. Writes `out` ([B,N,Sq,Hv]) and, when given, the row log-sum-exp
 * `lse` ([B,N,Sq]). A masked key gets probability exactly 0 and never touches v (padding may hold
 * anything); a row whose every key is masked gives zeros and lse = -inf.
 */
export function attentionKernel(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | undefined, scale: number, out: TensorData, lse?: Float32Array): void {
  const [B, N, Sq, H] = q.shape as [number, number, number, number];
  const Nkv = k.shape[1]!;
  const Skv = k.shape[2]!;
  const Hv = v.shape[3]!;
  const group = N / Nkv;
  const kt = new Float64Array(H * Skv);
  const scores = new Float64Array(Sq * Skv);
  const ms = mask ? broadcastStrides(mask.shape, [B, N, Sq, Skv]) : [0, 0, 0, 0];
  const md = mask?.data;
  const boolMask = mask?.dtype === 'bool';
  const log = Math.log;
  const exp = Math.exp;
  let vFinite = true;
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < N; n++) {
      const kvh = Math.floor(n / group);
      const kOff = (b * Nkv + kvh) * Skv * H;
      const vOff = (b * Nkv + kvh) * Skv * Hv;
      // K^T of this kv head ([H, Skv]); shared by the `group` query heads that read it.
      if (n % group === 0) {
        for (let j = 0; j < Skv; j++) for (let h = 0; h < H; h++) kt[h * Skv + j] = k.data[kOff + j * H + h]!;
        vFinite = allFinite(v.data, vOff, Skv * Hv);
      }
      gemm(q.data, (b * N + n) * Sq * H, H, kt, 0, Skv, scores, 0, Skv, Sq, H, Skv);
      for (let i = 0; i < Sq; i++) {
        const r = i * Skv;
        const mRow = b * ms[0]! + n * ms[1]! + i * ms[2]!;
        const mStep = ms[3]!;
        let max = -Infinity;
        for (let j = 0; j < Skv; j++) {
          let s = scores[r + j]! * scale;
          if (md) {
            const m = md[mRow + j * mStep]!;
            s = boolMask ? (m ? s : -Infinity) : s + m;
          }
          scores[r + j] = s;
          if (s > max) max = s;
        }
        if (max === -Infinity) {
          scores.fill(0, r, r + Skv); // every key masked out: safe softmax gives zeros
          if (lse) lse[(b * N + n) * Sq + i] = -Infinity; // and contributes nothing to a merge
          continue;
        }
        let sum = 0;
        for (let j = 0; j < Skv; j++) {
          const e = exp(scores[r + j]! - max);
          scores[r + j] = e;
          sum += e;
        }
        const inv = 1 / sum;
        for (let j = 0; j < Skv; j++) scores[r + j]! *= inv;
        if (lse) lse[(b * N + n) * Sq + i] = max + log(sum);
      }
      const oOff = (b * N + n) * Sq * Hv;
      if (vFinite) gemm(scores, 0, Skv, v.data, vOff, Hv, out, oOff, Hv, Sq, Skv, Hv);
      else probsTimesV(scores, v.data, vOff, out, oOff, Sq, Skv, Hv);
    }
  }
}

function allFinite(d: TensorData, off: number, n: number): boolean {
  for (let i = off; i < off + n; i++) if (!Number.isFinite(d[i]!)) return false;
  return true;
}

/**
 * p @ v without reading v at keys of probability 0: a masked key never touches v, so padding or
 * masked positions holding inf/NaN cannot turn 0 * v into NaN (the slow path, only when v has
 * non-finite values).
 */
function probsTimesV(p: Float64Array, v: TensorData, vOff: number, out: TensorData, oOff: number, Sq: number, Skv: number, Hv: number): void {
  for (let i = 0; i < Sq; i++) {
    for (let h = 0; h < Hv; h++) out[oOff + i * Hv + h] = 0;
    for (let j = 0; j < Skv; j++) {
      const w = p[i * Skv + j]!;
      if (w === 0) continue;
      for (let h = 0; h < Hv; h++) out[oOff + i * Hv + h]! += w * v[vOff + j * Hv + h]!;
    }
  }
}

function runAttention(ctx: RunCtx): Tensor[] {
  const q = need(ctx, ctx.inputs, 0);
  const v = need(ctx, ctx.inputs, 2);
  const [B, N, Sq] = q.shape as [number, number, number];
  const Hv = v.shape[3]!;
  const out = alloc(q.dtype, [B, N, Sq, Hv]);
  attentionKernel(q, need(ctx, ctx.inputs, 1), v, ctx.inputs[3], ctx.attr.float('scale'), out);
  return [finish(q.dtype, [B, N, Sq, Hv], out)];
}

export const attentionRule: OpRule = {
  doc:
    'attention(q [B,N,Sq,H], k [B,Nkv,Skv,H], v [B,Nkv,Skv,Hv], mask?) {scale, numHeads, kvHeads} -> [B,N,Sq,Hv]: ' +
    'softmax(scale*q@k^T + mask) @ v per head, fp32 softmax with max subtraction, query head n reads kv head n/(N/Nkv); ' +
    'mask broadcasts to [B,N,Sq,Skv], bool = attend where true, float = additive; a fully masked row gives zeros',
  infer: inferAttention,
  run: runAttention,
};
