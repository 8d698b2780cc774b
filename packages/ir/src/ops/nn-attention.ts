/**
 * Attention (ONNX opset 23, plus opset 24's nonpad_kv_seqlen): scaled dot-product attention.
 *
 * Shape letters: B batch, Nq query heads, Nkv key/value heads, Sq query length, Skv new key
 * length, P past length, T = P + Skv total key length, H head dim (Q, K), Hv value head dim.
 *
 * Inputs:  Q [B,Nq,Sq,H] | [B,Sq,Nq*H]; K [B,Nkv,Skv,H] | [B,Skv,Nkv*H]; V likewise with Hv;
 *          attn_mask? bool (true = attend) or float (added), broadcast to [B,Nq,Sq,T] (its last
 *          axis may be shorter than T; missing keys are masked); past_key? [B,Nkv,P,H];
 *          past_value? [B,Nkv,P,Hv]; nonpad_kv_seqlen? i64 [B] (keys at or past it are masked).
 * Outputs: Y in Q's layout ([B,Nq,Sq,Hv] | [B,Sq,Nq*Hv]); present_key [B,Nkv,T,H];
 *          present_value [B,Nkv,T,Hv]; qk_matmul_output [B,Nq,Sq,T] (see qk_matmul_output_mode).
 * Heads: query head h reads key/value head floor(h / (Nq/Nkv)) (GQA/MQA).
 * Scores: scale (default 1/sqrt(H)) * Q·K^T, then softcap (c*tanh(s/c), when softcap > 0), then
 *          the mask bias, is_causal (query i sees key j iff j <= i + P), softmax in doubles
 *          (row max subtracted; a fully masked row gets zero weights), times V. Softcap comes
 *          before the mask so masked keys stay at -inf (onnxruntime and the current ONNX
 *          reference agree). qk_matmul_output_mode picks the scores after: 0 the scaled matmul,
 *          1 the softcap, 2 the mask (the softmax input), 3 the softmax (onnxruntime's numbering).
 */
import type { Dim, TensorType } from '../graph';
import { Tensor, TensorData } from '../tensor';
import type { InferCtx, OpRule, RunCtx } from './rule';
import { need, sameDtype, tensorType } from './rule';
import { alloc, broadcastStrides, finish, fmt, permute, requireFloat } from './nn-kernels';

interface AttnShapes {
  readonly rank: 3 | 4;
  readonly B: Dim;
  readonly Nq: number;
  readonly Nkv: number;
  readonly Sq: Dim;
  readonly Skv: Dim;
  readonly P: Dim;
  readonly T: Dim;
  readonly H: number;
  readonly Hv: number;
}

const known = (a: Dim, b: Dim): boolean => typeof a === 'number' && typeof b === 'number';

function sumDim(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a + b;
  if (a === 0) return b;
  return `${a}+${b}`;
}

function staticDim(ctx: InferCtx | RunCtx, d: Dim, what: string): number {
  if (typeof d !== 'number') ctx.fail(`${what} must be static, got symbol '${d}'`);
  return d;
}

function attnShapes(ctx: InferCtx | RunCtx, q: readonly Dim[], k: readonly Dim[], v: readonly Dim[], pk?: readonly Dim[], pv?: readonly Dim[]): AttnShapes {
  const rank = q.length;
  if ((rank !== 3 && rank !== 4) || k.length !== rank || v.length !== rank) {
    ctx.fail(`Q, K and V must all be 4-D [B,N,S,H] or all 3-D [B,S,N*H], got Q ${fmt(q)}, K ${fmt(k)}, V ${fmt(v)}`);
  }
  let Nq: number, Nkv: number, H: number, Hk: number, Hv: number, Sq: Dim, Skv: Dim, Sv: Dim;
  const qHeads = ctx.attr.has('q_num_heads') ? ctx.attr.int('q_num_heads') : undefined;
  const kvHeads = ctx.attr.has('kv_num_heads') ? ctx.attr.int('kv_num_heads') : undefined;
  if (rank === 3) {
    if (qHeads === undefined || kvHeads === undefined) ctx.fail('3-D Q/K/V need the q_num_heads and kv_num_heads attributes');
    if (qHeads < 1 || kvHeads < 1) ctx.fail(`q_num_heads and kv_num_heads must be >= 1, got ${qHeads} and ${kvHeads}`);
    Nq = qHeads;
    Nkv = kvHeads;
    const split = (hidden: Dim, n: number, what: string): number => {
      const h = staticDim(ctx, hidden, `${what}'s hidden size`);
      if (h % n !== 0) ctx.fail(`${what}'s hidden size ${h} is not divisible by its ${n} heads`);
      return h / n;
    };
    H = split(q[2]!, Nq, 'Q');
    Hk = split(k[2]!, Nkv, 'K');
    Hv = split(v[2]!, Nkv, 'V');
    [Sq, Skv, Sv] = [q[1]!, k[1]!, v[1]!];
  } else {
    Nq = staticDim(ctx, q[1]!, 'Q heads');
    Nkv = staticDim(ctx, k[1]!, 'K heads');
    const nv = staticDim(ctx, v[1]!, 'V heads');
    if (nv !== Nkv) ctx.fail(`K has ${Nkv} heads but V has ${nv}: K ${fmt(k)}, V ${fmt(v)}`);
    if (qHeads !== undefined && qHeads !== Nq) ctx.fail(`q_num_heads=${qHeads} disagrees with Q ${fmt(q)}`);
    if (kvHeads !== undefined && kvHeads !== Nkv) ctx.fail(`kv_num_heads=${kvHeads} disagrees with K ${fmt(k)}`);
    H = staticDim(ctx, q[3]!, 'Q head size');
    Hk = staticDim(ctx, k[3]!, 'K head size');
    Hv = staticDim(ctx, v[3]!, 'V head size');
    [Sq, Skv, Sv] = [q[2]!, k[2]!, v[2]!];
  }
  if (Hk !== H) ctx.fail(`Q and K head sizes differ: Q ${fmt(q)} has ${H}, K ${fmt(k)} has ${Hk}`);
  if (Nq % Nkv !== 0) ctx.fail(`${Nq} query heads are not divisible by ${Nkv} key/value heads (GQA needs kv heads to divide q heads)`);
  if (known(Skv, Sv) && Skv !== Sv) ctx.fail(`K and V sequence lengths differ: K ${fmt(k)}, V ${fmt(v)}`);
  const B = q[0]!;
  for (const [name, s] of [['K', k], ['V', v]] as const) {
    if (known(B, s[0]!) && s[0] !== B) ctx.fail(`batch sizes differ: Q ${fmt(q)}, ${name} ${fmt(s)}`);
  }
  let P: Dim = 0;
  if ((pk === undefined) !== (pv === undefined)) ctx.fail('past_key and past_value must be given together');
  if (pk && pv) {
    const want = (s: readonly Dim[], h: number, what: string): void => {
      const ok = s.length === 4 && (!known(s[0]!, B) || s[0] === B) && s[1] === Nkv && s[3] === h && (!known(s[2]!, pk[2]!) || s[2] === pk[2]);
      if (!ok) ctx.fail(`${what} must be [B=${B}, ${Nkv}, P, ${h}], got ${fmt(s)}`);
    };
    want(pk, H, 'past_key');
    want(pv, Hv, 'past_value');
    P = pk[2]!;
  }
  return { rank: rank as 3 | 4, B, Nq, Nkv, Sq, Skv, P, T: sumDim(P, Skv), H, Hv };
}

function checkMask(ctx: InferCtx, m: TensorType, qType: TensorType, s: AttnShapes): void {
  if (m.dtype !== 'bool' && m.dtype !== qType.dtype) ctx.fail(`attn_mask must be bool or ${qType.dtype} (Q's dtype), got ${m.dtype}`);
  if (m.shape.length > 4) ctx.fail(`attn_mask must have rank <= 4, got ${fmt(m.shape)}`);
  const target: Dim[] = [s.B, s.Nq, s.Sq, s.T].slice(4 - m.shape.length);
  m.shape.forEach((d, i) => {
    const t = target[i]!;
    const last = i === m.shape.length - 1;
    if (d === 1 || !known(d, t)) return;
    if (last ? (d as number) > (t as number) : d !== t) {
      ctx.fail(`attn_mask ${fmt(m.shape)} does not broadcast to [B, Nq, Sq, T] = ${fmt([s.B, s.Nq, s.Sq, s.T])}`);
    }
  });
}

function outputTypes(dtype: TensorType['dtype'], s: AttnShapes): TensorType[] {
  const y = s.rank === 4 ? [s.B, s.Nq, s.Sq, s.Hv] : [s.B, s.Sq, s.Nq * s.Hv];
  return [
    tensorType(dtype, y),
    tensorType(dtype, [s.B, s.Nkv, s.T, s.H]),
    tensorType(dtype, [s.B, s.Nkv, s.T, s.Hv]),
    tensorType(dtype, [s.B, s.Nq, s.Sq, s.T]),
  ];
}

/** [B,N,S,h] data of a 4-D operand, or of a 3-D one ([B,S,N*h] is viewed as [B,S,N,h] and transposed). */
function toBNSH(t: Tensor, n: number, h: number): TensorData {
  if (t.rank === 4) return t.data;
  const [b, sLen] = t.shape as [number, number];
  return permute(t.data, [b, sLen, n, h], [0, 2, 1, 3]);
}

/** Concatenates past [B,N,P,h] and new [B,N,S,h] along the sequence axis. */
function concatSeq(past: Tensor | undefined, cur: TensorData, B: number, N: number, S: number, h: number, dtype: Tensor['dtype']): TensorData {
  if (!past) return cur;
  const P = past.shape[2]!;
  const T = P + S;
  const out = alloc(dtype, [B, N, T, h]);
  for (let bn = 0; bn < B * N; bn++) {
    out.set(past.data.subarray(bn * P * h, (bn + 1) * P * h), bn * T * h);
    out.set(cur.subarray(bn * S * h, (bn + 1) * S * h), (bn * T + P) * h);
  }
  return out;
}

function attentionRun(ctx: RunCtx): Tensor[] {
  const [Qt, Kt, Vt] = [0, 1, 2].map((i) => need(ctx, ctx.inputs, i)) as [Tensor, Tensor, Tensor];
  const mask = ctx.inputs[3];
  const pastK = ctx.inputs[4];
  const pastV = ctx.inputs[5];
  const nonpad = ctx.inputs[6];
  const s = attnShapes(ctx, Qt.shape, Kt.shape, Vt.shape, pastK?.shape, pastV?.shape);
  const [B, Sq, Skv, P, T] = [s.B, s.Sq, s.Skv, s.P, s.T].map((d) => staticDim(ctx, d, 'a runtime size')) as [number, number, number, number, number];
  const { Nq, Nkv, H, Hv } = s;
  const dtype = Qt.dtype;
  const q = toBNSH(Qt, Nq, H);
  const k = concatSeq(pastK, toBNSH(Kt, Nkv, H), B, Nkv, Skv, H, dtype);
  const v = concatSeq(pastV, toBNSH(Vt, Nkv, Hv), B, Nkv, Skv, Hv, dtype);
  const scale = ctx.attr.has('scale') ? ctx.attr.float('scale') : 1 / Math.sqrt(H);
  const causal = ctx.attr.int('is_causal', 0) !== 0;
  const softcap = ctx.attr.float('softcap', 0);
  const mode = ctx.attr.int('qk_matmul_output_mode', 0);
  const wantQk = ctx.numOutputs > 3;
  const qkOut = wantQk ? alloc(dtype, [B, Nq, Sq, T]) : undefined;
  // Mask geometry: strides over [B, Nq, Sq, L]; a last axis L shorter than T masks keys j >= L.
  const mRank = mask?.rank ?? 0;
  const mL = mask && mRank > 0 ? mask.shape[mRank - 1]! : T;
  const mst = mask ? broadcastStrides(mask.shape, [B, Nq, Sq, mRank > 0 ? mL : 1]) : [0, 0, 0, 0];
  const mBool = mask?.dtype === 'bool';
  const y = alloc(dtype, s.rank === 4 ? [B, Nq, Sq, Hv] : [B, Sq, Nq * Hv]);
  const row = new Float64Array(T);
  const acc = new Float64Array(Hv);
  const group = Nq / Nkv;
  for (let b = 0; b < B; b++) {
    const valid = nonpad ? nonpad.data[b]! : T;
    // Causal frontier: query i sees key j iff j <= i + offset (bottom-right aligned with the cache).
    const offset = pastK ? P : nonpad ? valid - Sq : 0;
    for (let h = 0; h < Nq; h++) {
      const kv = b * Nkv + Math.floor(h / group);
      const kBase = kv * T * H;
      const vBase = kv * T * Hv;
      for (let i = 0; i < Sq; i++) {
        const qOff = ((b * Nq + h) * Sq + i) * H;
        const qkRow = ((b * Nq + h) * Sq + i) * T;
        const mRow = b * mst[0]! + h * mst[1]! + i * mst[2]!;
        let max = -Infinity;
        for (let j = 0; j < T; j++) {
          let dot = 0;
          const kOff = kBase + j * H;
          for (let d = 0; d < H; d++) dot += q[qOff + d]! * k[kOff + d]!;
          let sc = dot * scale;
          if (qkOut && mode === 0) qkOut[qkRow + j] = sc;
          if (softcap > 0) sc = softcap * Math.tanh(sc / softcap);
          if (qkOut && mode === 1) qkOut[qkRow + j] = sc;
          if (mask) {
            if (j >= mL) sc = -Infinity;
            else {
              const mv = mask.data[mRow + j * mst[3]!]!;
              sc = mBool ? (mv ? sc : -Infinity) : sc + mv;
            }
          }
          if ((causal && j > i + offset) || j >= valid) sc = -Infinity;
          if (qkOut && mode === 2) qkOut[qkRow + j] = sc;
          row[j] = sc;
          if (sc > max) max = sc;
        }
        // A row with every key masked gets zero probabilities (as torch and onnxruntime do), not NaN.
        let sum = 0;
        if (max === -Infinity) row.fill(0);
        else {
          for (let j = 0; j < T; j++) {
            const e = Math.exp(row[j]! - max);
            row[j] = e;
            sum += e;
          }
        }
        if (sum === 0) sum = 1;
        acc.fill(0);
        for (let j = 0; j < T; j++) {
          const p = row[j]! / sum;
          if (qkOut && mode === 3) qkOut[qkRow + j] = p;
          if (p === 0) continue;
          const vOff = vBase + j * Hv;
          for (let d = 0; d < Hv; d++) acc[d] = acc[d]! + p * v[vOff + d]!;
        }
        const yOff = s.rank === 4 ? ((b * Nq + h) * Sq + i) * Hv : ((b * Sq + i) * Nq + h) * Hv;
        for (let d = 0; d < Hv; d++) y[yOff + d] = acc[d]!;
      }
    }
  }
  const res = [finish(dtype, s.rank === 4 ? [B, Nq, Sq, Hv] : [B, Sq, Nq * Hv], y)];
  if (ctx.numOutputs > 1) {
    res.push(new Tensor(dtype, [B, Nkv, T, H], k));
    res.push(new Tensor(dtype, [B, Nkv, T, Hv], v));
  }
  if (qkOut) res.push(finish(dtype, [B, Nq, Sq, T], qkOut));
  return res;
}

export const attentionRules: { readonly Attention: OpRule } = {
  Attention: {
    doc: 'Attention(Q, K, V, attn_mask?, past_key?, past_value?, nonpad_kv_seqlen?) {scale, is_causal, q_num_heads, kv_num_heads, softcap, qk_matmul_output_mode} -> Y, present_key?, present_value?, qk_matmul_output?: SDPA with GQA (see file header).',
    infer(ctx) {
      const [q, k, v] = [0, 1, 2].map((i) => need(ctx, ctx.inputs, i)) as [TensorType, TensorType, TensorType];
      const dtype = sameDtype(ctx, [q, k, v, ctx.inputs[4], ctx.inputs[5]]);
      requireFloat(ctx, dtype, 'Q');
      const s = attnShapes(ctx, q.shape, k.shape, v.shape, ctx.inputs[4]?.shape, ctx.inputs[5]?.shape);
      const m = ctx.inputs[3];
      if (m) checkMask(ctx, m, q, s);
      const np = ctx.inputs[6];
      if (np && (np.shape.length !== 1 || (np.dtype !== 'i64' && np.dtype !== 'i32'))) {
        ctx.fail(`nonpad_kv_seqlen must be an integer vector [B], got ${np.dtype}${fmt(np.shape)}`);
      }
      const mode = ctx.attr.int('qk_matmul_output_mode', 0);
      if (mode < 0 || mode > 3) ctx.fail(`qk_matmul_output_mode must be 0, 1, 2 or 3, got ${mode}`);
      return outputTypes(dtype, s);
    },
    run: attentionRun,
  },
};
