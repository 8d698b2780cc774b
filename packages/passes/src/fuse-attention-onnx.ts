/**
 * The fuse-attention rule for the ONNX `Attention` op (opset 23+): it already is one attention,
 * so the rule only moves it to the canonical op and layout.
 *
 * Shape letters: B batch, N query heads, Nkv key/value heads, Sq/Skv sequences, H/Hv head dims.
 *
 * - 4-D form: Q [B,N,Sq,H], K/V [B,Nkv,Skv,H|Hv]: the operands are used as they are, except
 *   that K/V made by repeat_kv (Expand/Tile of [B,Nkv/r,...] heads) are read before the repeat.
 * - 3-D form: Q [B,Sq,N*H], K/V [B,Skv,Nkv*(H|Hv)] with q_num_heads/kv_num_heads: heads are split
 *   (Reshape + Transpose) and the output merged back to [B,Sq,N*Hv].
 * - scale defaults to 1/sqrt(H); attn_mask (bool: true = attend, or additive float) broadcasts to
 *   [B,N,Sq,Skv] in both ONNX and the canonical op.
 * Not rewritten: is_causal, softcap, past key/value inputs, a mask shorter than Skv (ONNX pads
 * it with -inf), and nodes whose extra outputs (present KV, qk products) are used.
 */
import type { Node, Value } from '@paradit/ir';
import type { GraphView, RewriteBuilder, RewriteRule } from './rewrite';
import { intsAttr } from './rewrite';
import { fuseTo } from './fusion-match';
import { buildOperand, planOperand } from './attention-operands';

function attrNumber(n: Node, name: string, def: number): number {
  const a = n.attrs[name];
  return a && (a.kind === 'int' || a.kind === 'float') ? a.value : def;
}

/** [B, S, heads*dim] -> [B, heads, S, dim] (Reshape with 0 = copy, so symbolic B and S pass). */
function splitHeads(b: RewriteBuilder, x: Value, heads: number, dim: number): Value {
  const r = b.op('Reshape', [x, b.i64([0, 0, heads, dim])]);
  return b.op('Transpose', [r], { perm: intsAttr([0, 2, 1, 3]) });
}

function extraOutputsUsed(view: GraphView, n: Node): boolean {
  return n.outputs.slice(1).some((o) => view.users(o).length > 0 || view.isGraphOutput(o));
}

// Attention(q, k, v, mask?) {scale?, q_num_heads?, kv_num_heads?} -> attention(q4, k4, v4, mask) {scale, numHeads, kvHeads}
export const fromOnnxAttention: RewriteRule = (n, view) => {
  if (n.op !== 'Attention') return undefined;
  if (n.inputs.slice(4).some((v) => v !== null)) return undefined;
  if (attrNumber(n, 'is_causal', 0) !== 0 || attrNumber(n, 'softcap', 0) !== 0 || extraOutputsUsed(view, n)) return undefined;
  const [q, k, v, mask] = n.inputs as [Value, Value, Value, Value | null | undefined];
  const rank = q.shape.length;
  if (k.shape.length !== rank || v.shape.length !== rank) return undefined;
  let N: number;
  let Nkv: number;
  let H: number;
  let Hv: number;
  let Skv = k.shape[rank - 2]!;
  if (rank === 4) {
    const [, qn, , qh] = q.shape;
    const [, kn, ks] = k.shape;
    const vh = v.shape[3];
    if (typeof qn !== 'number' || typeof kn !== 'number' || typeof qh !== 'number' || typeof vh !== 'number') return undefined;
    [N, Nkv, H, Hv, Skv] = [qn, kn, qh, vh, ks!];
  } else if (rank === 3) {
    N = attrNumber(n, 'q_num_heads', 0);
    Nkv = attrNumber(n, 'kv_num_heads', 0);
    const [qd, vd] = [q.shape[2], v.shape[2]];
    if (N < 1 || Nkv < 1 || typeof qd !== 'number' || typeof vd !== 'number' || qd % N !== 0 || vd % Nkv !== 0) return undefined;
    H = qd / N;
    Hv = vd / Nkv;
    Skv = k.shape[1]!;
  } else return undefined;
  if (N % Nkv !== 0) return undefined;
  if (mask) {
    const last = mask.shape[mask.shape.length - 1];
    if (mask.shape.length > 4 || (last !== 1 && last !== Skv)) return undefined;
  }
  const scale = Math.fround(attrNumber(n, 'scale', 1 / Math.sqrt(H)));
  // 4-D k/v that an exporter repeat_kv'ed (Expand/Tile of the heads) are read at their kv heads.
  let kp = rank === 4 ? planOperand(view, k, 'rows', false, true) : undefined;
  let vp = rank === 4 ? planOperand(view, v, 'rows', false, true) : undefined;
  if (kp && vp && (kp.repeat !== vp.repeat || kp.repeat === 1 || Nkv % kp.repeat !== 0)) kp = vp = undefined;
  const kvHeads = kp ? Nkv / kp.repeat : Nkv;
  return fuseTo(n, (b) => {
    const q4 = rank === 4 ? q : splitHeads(b, q, N, H);
    const B = q.shape[0]!;
    const k4 = kp ? buildOperand(b, kp, B, kvHeads) : rank === 4 ? k : splitHeads(b, k, Nkv, H);
    const v4 = vp ? buildOperand(b, vp, B, kvHeads) : rank === 4 ? v : splitHeads(b, v, Nkv, Hv);
    if (!k4 || !v4) return undefined;
    const att = b.op('attention', [q4, k4, v4, mask], {
      scale: { kind: 'float', value: scale },
      numHeads: { kind: 'int', value: N },
      kvHeads: { kind: 'int', value: kvHeads },
    });
    let out = att;
    if (rank === 3) {
      const t = b.op('Transpose', [att], { perm: intsAttr([0, 2, 1, 3]) });
      out = b.op('Reshape', [t, b.i64([0, 0, N * Hv])]);
    }
    return [out, ...n.outputs.slice(1)];
  });
};
