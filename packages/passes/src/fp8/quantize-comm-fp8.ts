/**
 * quantize-comm-fp8: `--comm-dtype fp8` (docs/fp8.md). The attention payloads that context
 * parallelism moves between ranks travel as e4m3 with one fp32 scale per row of the head dim:
 * quantize_fp8_rows before the collective, the same collective on the e4m3 values and on the
 * scales (a second, small one), dequantize_fp8_rows after. About (1 + 4/H) / 2 of the bf16 bytes
 * (H the head dim: 0.53 at H = 64, 0.52 at H = 128).
 *
 * Requires: the output of the context-parallel passes (placements on the types; a mesh in ctx).
 * Ensures: each payload collective below is replaced, every other node is unchanged:
 *   - an all_to_all whose result is read as attention q/k/v (Ulysses, before attention), or whose
 *     operand is an attention result (Ulysses, the output going back to the sequence split);
 *   - a ppermute on the ring's K/V chain (its result read as attention_lse k/v, directly or by the
 *     next ppermute). A block is quantized once: the next ring step forwards the received e4m3
 *     values and scales as they are, so the error does not grow with the ring degree.
 *   The split and concat axes are never the last one (the scale's row), masks are never touched
 *   (a -inf additive mask has no finite scale), and only f32/bf16/f16 payloads qualify.
 *   The rows are the last axis (H, per token and head): a scale stays with its row through any
 *   all_to_all over the other axes. The dequantized value is written in the payload's dtype (the
 *   dtype policy then makes it the plan's storage dtype).
 *
 *   before:  %q2 = all_to_all(%q) {meshAxis: ulysses, splitAxis: 1, concatAxis: 2, groupSize: 2} : f32[1,2,32,8]
 *   after:   %e, %s = quantize_fp8_rows(%q)                          : f8e4m3fn[1,4,16,8], f32[1,4,16,1]
 *            %e2 = all_to_all(%e) {...}; %s2 = all_to_all(%s) {...}   : f8e4m3fn[1,2,32,8], f32[1,2,32,1]
 *            %q2 = dequantize_fp8_rows(%e2, %s2) {oDtype: 1}          : f32[1,2,32,8]
 */
import { Module, Node, Value, distOf, dtypeToOnnx, isFloat, worldSize } from '@paradit/ir';
import type { Dist } from '@paradit/ir';
import type { Pass } from '../pass';
import { meshOf } from '../context-parallel/shard/mesh-options';
import { meshSizes } from '../context-parallel/shard/view';
import { PlacedRebuild } from '../context-parallel/shard/rebuild';

const ATTENTION = new Set(['attention', 'attention_lse']);
const ATTENTION_RESULT = new Set(['attention', 'attention_lse', 'lse_merge']);

/** Why a collective carries an attention payload (for the printed plan), or undefined. */
export type CommPayload = 'qkv' | 'attention-output' | 'ring-kv';

export interface CommFp8Site {
  readonly node: Node;
  readonly payload: CommPayload;
}

function readersOf(m: Module): Map<Value, { node: Node; index: number }[]> {
  const r = new Map<Value, { node: Node; index: number }[]>();
  for (const n of m.graph.nodes) {
    n.inputs.forEach((v, index) => {
      if (!v) return;
      const list = r.get(v) ?? [];
      list.push({ node: n, index });
      r.set(v, list);
    });
  }
  return r;
}

/** The collectives whose payload moves as e4m3 (analysis; the rewrite is below). */
export function findCommFp8Sites(m: Module): CommFp8Site[] {
  const readers = readersOf(m);
  const producer = new Map<Value, Node>();
  for (const n of m.graph.nodes) for (const o of n.outputs) producer.set(o, n);
  // Read as q/k/v of an attention, directly or through a ppermute chain (ring K/V).
  const feedsQkv = (v: Value, seen = new Set<Value>()): boolean => {
    if (seen.has(v)) return false;
    seen.add(v);
    return (readers.get(v) ?? []).some((r) => (ATTENTION.has(r.node.op) && r.index <= 2) || (r.node.op === 'ppermute' && feedsQkv(r.node.outputs[0]!, seen)));
  };
  // An attention result: attention, a ring step or merge, or a Cast of one (the ring's cast back).
  const attentionResult = (v: Value): boolean => {
    const p = producer.get(v);
    if (!p) return false;
    return ATTENTION_RESULT.has(p.op) || (p.op === 'Cast' && attentionResult(p.inputs[0]!));
  };
  const sites: CommFp8Site[] = [];
  for (const n of m.graph.nodes) {
    if (n.op !== 'all_to_all' && n.op !== 'ppermute') continue;
    const x = n.inputs[0];
    if (!x || !isFloat(x.dtype) || x.dtype === 'f8e4m3fn' || x.dtype === 'f64' || x.shape.length < 2) continue;
    if (n.op === 'all_to_all') {
      const last = x.shape.length - 1;
      const split = n.attrs['splitAxis'];
      const concat = n.attrs['concatAxis'];
      const axes = [split, concat].map((a) => (a && a.kind === 'int' ? (a.value < 0 ? a.value + x.shape.length : a.value) : last));
      if (axes.includes(last)) continue;
      if (feedsQkv(n.outputs[0]!)) sites.push({ node: n, payload: 'qkv' });
      else if (attentionResult(x)) sites.push({ node: n, payload: 'attention-output' });
    } else if (feedsQkv(n.outputs[0]!)) {
      sites.push({ node: n, payload: 'ring-kv' });
    }
  }
  return sites;
}

interface Quantized {
  readonly q: Value;
  readonly s: Value;
}

/** The rewrite: each site becomes quantize -> collective x2 -> dequantize (see the header). */
export function quantizeCommFp8(m: Module, sizeOf: (axis: string) => number): Module {
  const sites = findCommFp8Sites(m);
  if (sites.length === 0) return m;
  const isSite = new Set(sites.map((s) => s.node));
  const r = new PlacedRebuild(m, sizeOf);
  // dequantize_fp8_rows results -> the e4m3 values and scales they came from (ring forwarding).
  const fromFp8 = new Map<Value, Quantized>();
  for (const n of m.graph.nodes) {
    if (!isSite.has(n)) {
      r.copy(n);
      continue;
    }
    const name = n.name || n.op;
    const x = r.get(n.inputs[0]!);
    const dx: Dist = r.dist(x);
    let src = fromFp8.get(x);
    if (!src) {
      const [q, s] = r.add('quantize_fp8_rows', [x], {}, `${name}/quantize`, [dx, dx]);
      src = { q: q!, s: s! };
    }
    const to = distOf(n.outputs[0]!.type.placement);
    const q2 = r.add(n.op, [src.q], n.attrs, name, [to])[0]!;
    const s2 = r.add(n.op, [src.s], n.attrs, `${name}/scales`, [to])[0]!;
    const oDtype = { kind: 'int' as const, value: dtypeToOnnx(n.outputs[0]!.dtype) };
    const y = r.add('dequantize_fp8_rows', [q2, s2], { oDtype }, `${name}/dequantize`, [to])[0]!;
    fromFp8.set(y, { q: q2, s: s2 });
    r.replace(n.outputs[0]!, y);
  }
  return r.finish();
}

export const quantizeCommFp8Pass: Pass = {
  name: 'quantize-comm-fp8',
  description: '--comm-dtype fp8: Ulysses all-to-all and ring K/V payloads move as e4m3 with per-row fp32 scales',
  run: (m, ctx) => {
    const mesh = meshOf(ctx);
    return worldSize(mesh) > 1 ? quantizeCommFp8(m, meshSizes(mesh)) : m;
  },
};
