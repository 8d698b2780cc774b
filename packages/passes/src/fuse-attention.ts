/**
 * fuse-attention: every softmax attention becomes one `attention` op in the canonical layout
 * q [B,N,Sq,H], k [B,Nkv,Skv,H], v [B,Nkv,Skv,Hv], with its scale and mask as operands/attributes.
 *
 * Shape letters: B batch, N query heads, Nkv key/value heads, S sequence (Sq queries, Skv keys),
 * H head dim (Hv of v), D model dim = N*H.
 *
 * Requires: constants folded (canonicalize), so scales and mask fills are constants.
 * Ensures: no Softmax that feeds an attention product remains; ONNX `Attention` (opset 23, 3-D
 *   and 4-D, non-causal, no KV cache) is rewritten too. Layout ops around the new op (rebuilding
 *   [B,N,S,H] operands, restoring a 3-D output) are left for canonicalize to fold.
 *
 *   Before:  %s = MatMul(%q, %kt)                 # kt = Reshape(Transpose(Reshape(%k))) or Transpose(%k)
 *            %p = Softmax(Add(Mul(%s, 0.125), %m)) {axis=-1}
 *            %o = MatMul(%p, %v)
 *   After:   %o = attention(%q, %k, %v, %m) {scale=0.125, numHeads=N, kvHeads=N}
 *
 * Both products may be MatMuls or Einsums that are batched matmuls (`bhid,bhjd->bhij`,
 * `bhij,bhjd->bhid`). Scales may sit on q, on k (or k^T), on both, or on the scores, as Mul or
 * Div, before or after the mask (baddbmm's Add(Mul(scores, alpha), Mul(input, beta)) is that
 * form; a provably zero input, Mul(ConstantOfShape, 0) from beta=0, is no mask); masks are `Add`
 * (additive; SDPA's Add(s, Where(keep, 0, -inf)) becomes the bool keep mask) or `Where`
 * (masked_fill with -inf, or a large negative fill, in either branch order).
 * Casts around the softmax (fp32 softmax of bf16 scores) and PyTorch's NaN guard
 * Where(IsNaN(p), 0, p) are looked through: the op computes its softmax in fp32 and gives zeros
 * on fully masked rows. 3-D batched heads ([B*N,S,H]) and symbolic batch and sequence dims are
 * handled (dynamic head_to_batch_dim: [batch*4,S,H] traced back to [batch,4,S,H]); operands are
 * rebuilt from their ancestors (layout-trace.ts) so no Transpose is stacked on the exporter's
 * head split.
 */
import type { Dim, Node, Value } from '@paradit/ir';
import { Tensor, isFloat } from '@paradit/ir';
import type { GraphView, RewriteBuilder, RewriteRule } from './rewrite';
import { sameShape } from './rewrite';
import { rewritePass } from './rewriter';
import { einsumMatMul, fuseTo, isConst, isZeroTensor, keepsShape, orders, scalarConst, softmaxAxis } from './fusion-match';
import { OperandPlan, buildOperand, maskTo4d, planOperand } from './attention-operands';
import { reshapeDims } from './layout-trace';
import { fromOnnxAttention } from './fuse-attention-onnx';

/** One mask term met between the scores MatMul and the Softmax, with the scale applied after it. */
type MaskTerm =
  | { readonly kind: 'add'; readonly value: Value; readonly factor: number }
  | { readonly kind: 'where'; readonly cond: Value; readonly keepWhen: boolean; readonly fill: number; readonly factor: number };

interface ScoresMatch {
  /** MatMul(q', k^T'), or an Einsum that is one (kRows: it reads k' itself, `...id,...jd->...ij`). */
  readonly qk: Node;
  readonly kRows: boolean;
  /** Total scalar factor applied to q' @ k^T'. */
  readonly factor: number;
  readonly masks: readonly MaskTerm[];
}

/** A Where fill counts as "masked out" when it is -inf or a large negative number. */
const MASK_FILL_LIMIT = -1e4;

/**
 * An additive mask term; Where(keep, 0, -inf) (what SDPA makes of a bool mask) is recorded as the
 * bool mask itself, since s + Where(keep, 0, -inf) = Where(keep, s, -inf).
 */
function additiveMask(view: GraphView, m: Value, factor: number): MaskTerm {
  const w = view.producerOf(m, 'Where');
  if (w && factor > 0) {
    const [cond, a, b] = w.inputs as [Value, Value, Value];
    const fa = scalarConst(view, a);
    const fb = scalarConst(view, b);
    if (fa === 0 && fb === -Infinity) return { kind: 'where', cond, keepWhen: true, fill: -Infinity, factor };
    if (fa === -Infinity && fb === 0) {
      const not = view.producerOf(cond, 'Not');
      return not ? { kind: 'where', cond: not.inputs[0]!, keepWhen: true, fill: -Infinity, factor } : { kind: 'where', cond, keepWhen: false, fill: -Infinity, factor };
    }
  }
  return { kind: 'add', value: m, factor };
}

/** Walks from the Softmax input up to the q @ k^T MatMul through scales, masks and casts. */
function matchScores(view: GraphView, v: Value, factor: number, masks: readonly MaskTerm[], depth = 0): ScoresMatch | undefined {
  const p = view.producer(v);
  if (!p || depth > 10) return undefined;
  if (!view.hasSingleUser(v)) return undefined;
  if (p.op === 'MatMul') return { qk: p, factor, masks, kRows: false };
  const e = p.op === 'Einsum' ? einsumMatMul(p) : undefined;
  if (e) return { qk: p, factor, masks, kRows: e.transB };
  if (p.op === 'Cast' && isFloat(p.outputs[0]!.dtype) && isFloat(p.inputs[0]!.dtype)) return matchScores(view, p.inputs[0]!, factor, masks, depth + 1);
  if (p.op === 'Mul' || p.op === 'Div') {
    for (const [s, c] of p.op === 'Mul' ? orders(p) : [[p.inputs[0]!, p.inputs[1]!] as [Value, Value]]) {
      const k = scalarConst(view, c);
      if (k === undefined || k === 0 || !keepsShape(p, s)) continue;
      return matchScores(view, s, p.op === 'Mul' ? factor * k : factor / k, masks, depth + 1);
    }
    return undefined;
  }
  if (p.op === 'Add') {
    for (const [s, m] of orders(p)) {
      if (s === m || !keepsShape(p, s)) continue;
      // baddbmm(torch.empty(...), q, k^T, beta=0) adds Mul(ConstantOfShape, 0): no mask at all.
      const terms = isZeroTensor(view, m) ? masks : [...masks, additiveMask(view, m, factor)];
      const r = matchScores(view, s, factor, terms, depth + 1);
      if (r) return r;
    }
    return undefined;
  }
  if (p.op === 'Where') {
    const [cond, a, b] = p.inputs as [Value, Value, Value];
    for (const [s, f, keepWhen] of [[a, b, true], [b, a, false]] as [Value, Value, boolean][]) {
      const fill = scalarConst(view, f);
      if (fill === undefined || !(fill <= MASK_FILL_LIMIT) || !keepsShape(p, s) || factor <= 0) continue;
      // Where(Not(keep), -inf, s) is masked_fill(~keep, -inf): record the keep mask itself.
      const not = keepWhen ? undefined : view.producerOf(cond, 'Not');
      const term: MaskTerm = not ? { kind: 'where', cond: not.inputs[0]!, keepWhen: true, fill, factor } : { kind: 'where', cond, keepWhen, fill, factor };
      const r = matchScores(view, s, factor, [...masks, term], depth + 1);
      if (r) return r;
    }
  }
  return undefined;
}

/**
 * p when w = Where(IsNaN(p), 0, p): the guard PyTorch's SDPA puts after a masked softmax so that
 * fully masked rows give zeros (what the attention op does anyway).
 */
function nanGuarded(view: GraphView, w: Node): Value | undefined {
  const [c, zero, p] = w.inputs as [Value, Value, Value];
  const isNan = view.producerOf(c, 'IsNaN');
  if (!isNan || isNan.inputs[0] !== p || !isConst(view, zero, 0) || !view.hasSingleUser(c)) return undefined;
  const users = view.users(p);
  return users.length === 2 && users.includes(w) && users.includes(isNan) && !view.isGraphOutput(p) ? p : undefined;
}

/** The Softmax feeding `v` through float Casts and a NaN guard, when each link has this single use. */
function softmaxAbove(view: GraphView, v: Value): Node | undefined {
  let cur = v;
  let guarded = false;
  for (let i = 0; i < 4; i++) {
    if (!guarded && !view.hasSingleUser(cur)) return undefined;
    guarded = false;
    const p = view.producer(cur);
    if (!p) return undefined;
    if (p.op === 'Softmax') return p;
    if (p.op === 'Where') {
      const inner = nanGuarded(view, p);
      if (!inner) return undefined;
      cur = inner;
      guarded = true;
      continue;
    }
    if (p.op !== 'Cast' || !isFloat(p.inputs[0]!.dtype)) return undefined;
    cur = p.inputs[0]!;
  }
  return undefined;
}

/** Builds the mask operand: one bool mask as is, otherwise the sum of additive terms. */
function buildMask(b: RewriteBuilder, masks: readonly MaskTerm[], dtype: Value['dtype']): Value | undefined {
  if (masks.length === 0) return undefined;
  const only = masks[0]!;
  if (masks.length === 1 && only.kind === 'where' && only.fill === -Infinity) {
    return only.keepWhen ? only.cond : b.op('Not', [only.cond]);
  }
  const scalar = (x: number): Value => b.constant(Tensor.from(dtype, [], [x]));
  let sum: Value | undefined;
  for (const m of masks) {
    let term: Value;
    if (m.kind === 'add') term = m.factor === 1 ? m.value : b.op('Mul', [m.value, scalar(m.factor)]);
    else {
      const [yes, no] = m.keepWhen ? [scalar(0), scalar(m.fill * m.factor)] : [scalar(m.fill * m.factor), scalar(0)];
      term = b.op('Where', [m.cond, yes, no]);
    }
    sum = sum ? b.op('Add', [sum, term]) : term;
  }
  return sum;
}

/** v itself, or x when v = Cast(x -> wider float) and x has dtype `want`. */
function narrowSource(view: GraphView, v: Value, want: Value['dtype']): Value {
  const c = view.producerOf(v, 'Cast');
  const x = c?.inputs[0];
  return x && x.dtype === want && v.dtype !== want && isFloat(x.dtype) && isFloat(v.dtype) ? x : v;
}

/** [B, N] of q and [B, Nkv] of k and v from the operand shapes and plans; undefined when inconsistent. */
function headCounts(q: OperandPlan, k: OperandPlan, v: OperandPlan): { B: Dim; N: number; Nkv: number } | undefined {
  const rank = q.value.shape.length;
  if (rank === 4) {
    const [B, N] = q.value.shape;
    const [Bk, Nk0] = k.value.shape;
    const [Bv, Nv0] = v.value.shape;
    if (typeof N !== 'number' || typeof Nk0 !== 'number' || typeof Nv0 !== 'number') return undefined;
    // With repeat_kv seen through, k and v hold N/repeat distinct heads (grouped-query attention).
    const Nk = Nk0 / k.repeat;
    if (Nk !== Nv0 / v.repeat || !Number.isInteger(Nk) || N % Nk !== 0) return undefined;
    // The batch may be symbolic (dynamic batch exports), but it must be the same dim everywhere.
    if (B === undefined || B !== Bk || B !== Bv) return undefined;
    return { B, N, Nkv: Nk };
  }
  // [B*N, S, H]: the split comes from q's trace (a symbolic B*N needs one: "batch*4" alone is ambiguous).
  const BN = q.value.shape[0];
  if (BN === undefined || k.value.shape[0] !== BN || v.value.shape[0] !== BN) return undefined;
  const split = q.batch ?? (typeof BN === 'number' ? ([1, BN] as const) : undefined);
  if (!split) return undefined;
  const [B, N] = split;
  return { B, N, Nkv: N };
}

// MatMul(Softmax(scale * MatMul(q', k^T') + mask), v') -> attention(q, k, v, mask) {scale, numHeads, kvHeads}
const fuseSoftmaxAttention: RewriteRule = (n, view) => {
  if (n.op !== 'MatMul' && !(n.op === 'Einsum' && einsumMatMul(n)?.transB === false)) return undefined;
  const [pv, vv] = n.inputs as [Value, Value];
  const sm = softmaxAbove(view, pv);
  if (!sm || softmaxAxis(view, sm) !== sm.inputs[0]!.shape.length - 1) return undefined;
  const m = matchScores(view, sm.inputs[0]!, 1, []);
  if (!m) return undefined;
  const [qv, ktv] = m.qk.inputs as [Value, Value];
  const rank = qv.shape.length;
  if ((rank !== 3 && rank !== 4) || ktv.shape.length !== rank || vv.shape.length !== rank) return undefined;
  const out = n.outputs[0]!;
  // Scores computed in fp32 from up-cast q and k (`q.float() @ k.float().T`): the op does that itself.
  const q0 = narrowSource(view, qv, out.dtype);
  const kt0 = narrowSource(view, ktv, out.dtype);
  if (q0.dtype !== out.dtype || kt0.dtype !== out.dtype || vv.dtype !== out.dtype) return undefined;
  const q = planOperand(view, q0, 'rows', true);
  const kRole = m.kRows ? 'rows' : 'cols';
  let k = planOperand(view, kt0, kRole, true, true);
  let v = planOperand(view, vv, 'rows', false, true);
  if (k.repeat !== v.repeat) {
    k = planOperand(view, kt0, kRole, true);
    v = planOperand(view, vv, 'rows', false);
  }
  const heads = headCounts(q, k, v);
  if (!heads) return undefined;
  const { B, N, Nkv } = heads;
  // ONNX float attributes are f32; a product of f32 constants is rounded back to one.
  const scale = Math.fround(m.factor * q.factor * k.factor);
  if (!Number.isFinite(scale)) return undefined;
  return fuseTo(n, (b) => {
    const q4 = buildOperand(b, q, B, N);
    const k4 = buildOperand(b, k, B, Nkv);
    const v4 = buildOperand(b, v, B, Nkv);
    if (!q4 || !k4 || !v4) return undefined;
    let mask = buildMask(b, m.masks, sm.inputs[0]!.dtype);
    if (mask) mask = maskTo4d(b, mask, rank, B, N);
    if (m.masks.length > 0 && !mask) return undefined;
    const att = b.op('attention', [q4, k4, v4, mask], {
      scale: { kind: 'float', value: scale },
      numHeads: { kind: 'int', value: N },
      kvHeads: { kind: 'int', value: Nkv },
    });
    return reshapeDims(b, att, out.shape);
  });
};

const fuseAttentionRules: readonly RewriteRule[] = [fuseSoftmaxAttention, fromOnnxAttention];

export const fuseAttention = rewritePass(
  'fuse-attention',
  'Fuses softmax attention (MatMul-scale-mask-Softmax-MatMul, and ONNX Attention) into attention ops in [B,N,S,H] layout',
  fuseAttentionRules,
);
