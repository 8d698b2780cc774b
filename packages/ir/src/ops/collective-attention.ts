/**
 * Ring-attention kernels: attention over one key/value block that also returns the row
 * log-sum-exp, and the fp32 log-sum-exp merge of two partial results. Both are local ops.
 *
 * Shape letters: B batch, N query heads, Nkv key/value heads, Sq query sequence, Skv key/value
 * block sequence, H head dim of q and k, Hv head dim of v.
 *
 *   attention_lse(q [B,N,Sq,H], k [B,Nkv,Skv,H], v [B,Nkv,Skv,Hv], mask?) {scale, numHeads, kvHeads, oDtype=f32}
 *     -> (o [B,N,Sq,Hv] in oDtype (f32, bf16 or f16; computed in fp32), lse f32 [B,N,Sq])
 *   lse[i] = log sum_j exp(s_ij), o[i] = sum_j exp(s_ij - lse[i]) v_j, s = scale*q.k + mask
 *   (mask and head grouping exactly as in `attention`: the same kernel, attentionKernel). A row
 *   whose every key is masked out has o = 0 and lse = -inf, so a merge ignores it.
 *
 *   lse_merge(o1, lse1, o2, lse2) -> (o f32, lse f32): o1/o2 in any float dtype, lse in f32; the softmax-weighted combination
 *   lse = log(e^lse1 + e^lse2), o = e^(lse1-lse) o1 + e^(lse2-lse) o2 (max-subtracted).
 *
 * Merging the partials of every key block in any order gives attention over all keys.
 */
import { dtypeFromOnnx, dtypeToOnnx, isFloat } from '../dtype';
import type { DType } from '../dtype';
import { Tensor } from '../tensor';
import type { OpRule, RuleCtx, RunCtx } from './rule';
import { need, tensorType } from './rule';
import { fmt } from './nn-kernels';
import { attentionKernel, attentionRule } from './paradit-attention';

/** Storage dtype of attention_lse's o: attribute oDtype (an ONNX dtype code; f32 by default). */
function outDtype(ctx: RuleCtx): DType {
  const code = ctx.attr.int('oDtype', dtypeToOnnx('f32'));
  const d = dtypeFromOnnx(code);
  if (d !== 'f32' && d !== 'bf16' && d !== 'f16') ctx.fail(`attribute 'oDtype' must be f32, bf16 or f16 (ONNX codes 1, 16, 10), got ${code}`);
  return d;
}

/** The attention kernel of `attention` (paradit-attention.ts), with the row lse, in f32. */
function runAttentionLse(ctx: RunCtx): Tensor[] {
  const q = need(ctx, ctx.inputs, 0);
  const v = need(ctx, ctx.inputs, 2);
  const [B, N, Sq] = q.shape as [number, number, number];
  const Hv = v.shape[3]!;
  const o = new Float32Array(B * N * Sq * Hv);
  const lse = new Float32Array(B * N * Sq);
  attentionKernel(q, need(ctx, ctx.inputs, 1), v, ctx.inputs[3], ctx.attr.float('scale'), o, lse);
  // o is computed in fp32 and stored in oDtype (plans of bf16 keep the partials in bf16).
  return [Tensor.normalized(outDtype(ctx), [B, N, Sq, Hv], o), new Tensor('f32', [B, N, Sq], lse)];
}

export const attentionLseRule: OpRule = {
  doc:
    'attention_lse(q [B,N,Sq,H], k [B,Nkv,Skv,H], v [B,Nkv,Skv,Hv], mask?) {scale, numHeads, kvHeads, oDtype=f32} -> (o [B,N,Sq,Hv] in oDtype, ' +
    'lse f32 [B,N,Sq]): attention over one key block plus its row log-sum-exp (ring attention); fully masked rows give o=0, lse=-inf',
  infer(ctx) {
    const [out] = attentionRule.infer(ctx);
    const [B, N, Sq, Hv] = out!.shape;
    return [tensorType(outDtype(ctx), [B!, N!, Sq!, Hv!]), tensorType('f32', [B!, N!, Sq!])];
  },
  run: runAttentionLse,
};

export const lseMergeRule: OpRule = {
  doc: 'lse_merge(o1 [...,Hv], lse1 f32 [...], o2, lse2) -> (o f32, lse f32): fp32 log-sum-exp merge of two partial attention results (o1/o2 f32, bf16 or f16)',
  infer(ctx) {
    if (ctx.inputs.length !== 4) ctx.fail(`takes 4 inputs (o1, lse1, o2, lse2), got ${ctx.inputs.length}`);
    const [o1, l1, o2, l2] = [0, 1, 2, 3].map((i) => need(ctx, ctx.inputs, i));
    for (const [t, what] of [[l1!, 'lse1'], [l2!, 'lse2']] as const) {
      if (t.dtype !== 'f32') ctx.fail(`${what} must be f32, got ${t.dtype}`);
    }
    for (const [t, what] of [[o1!, 'o1'], [o2!, 'o2']] as const) {
      if (!isFloat(t.dtype) || t.dtype === 'f64') ctx.fail(`${what} must be f32, bf16 or f16, got ${t.dtype}`);
    }
    const same = (a: readonly (number | string)[], b: readonly (number | string)[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
    if (!same(o1!.shape, o2!.shape)) ctx.fail(`o1 ${fmt(o1!.shape)} and o2 ${fmt(o2!.shape)} must have one shape`);
    if (!same(l1!.shape, l2!.shape) || !same(l1!.shape, o1!.shape.slice(0, -1))) {
      ctx.fail(`lse1 ${fmt(l1!.shape)} and lse2 ${fmt(l2!.shape)} must be o's shape ${fmt(o1!.shape)} without its last axis`);
    }
    return [tensorType('f32', o1!.shape), tensorType('f32', l1!.shape)];
  },
  run(ctx) {
    const [o1, l1, o2, l2] = [0, 1, 2, 3].map((i) => need(ctx, ctx.inputs, i)) as [Tensor, Tensor, Tensor, Tensor];
    const Hv = o1.shape[o1.rank - 1]!;
    const rows = l1.size;
    const o = new Float32Array(o1.size);
    const lse = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      const a = l1.data[r]!;
      const b = l2.data[r]!;
      const m = Math.max(a, b);
      if (m === -Infinity) {
        lse[r] = -Infinity;
        continue;
      }
      const wa = Math.exp(a - m);
      const wb = Math.exp(b - m);
      const sum = wa + wb;
      const ca = wa / sum;
      const cb = wb / sum;
      for (let h = 0; h < Hv; h++) {
        const x = r * Hv + h;
        // A zero weight must not read its partial (it may be a masked-out row of anything).
        o[x] = (ca === 0 ? 0 : ca * o1.data[x]!) + (cb === 0 ? 0 : cb * o2.data[x]!);
      }
      lse[r] = m + Math.log(sum);
    }
    return [new Tensor('f32', o1.shape, o), new Tensor('f32', l1.shape, lse)];
  },
};
