/**
 * Finding the axis to split, from the graph alone: start at every attention's queries (the
 * sequence axis 2 of q for sequence parallelism, the batch axis 0 for CFG parallelism; for an
 * unfused graph, the row axis of the MatMul feeding a last-axis Softmax) and walk backwards with
 * each op's `trace` rule to where the axis comes from: a model input (hidden_states, text
 * embeddings, position ids) or the op that creates it (the flatten of a patch embedding). Those
 * are the roots the sharding pass splits; everything downstream follows by propagation.
 *
 * Only queries are traced: keys and values that come from the query streams are split by
 * propagation anyway, while a cross-attention's text keys stay replicated (no communication).
 * Constants are never roots: a positional table meets the split tokens and is sliced there.
 */
import { Graph, Node, SHARD_RULES, Value } from '@paradit/ir';
import type { Dist } from '@paradit/ir';
import { REPLICATED } from '@paradit/ir';
import type { SizeOf } from './view';
import { makeView, staticShapeOf } from './view';

export interface AxisRoot {
  readonly value: Value;
  readonly axis: number;
  /** Global size of the axis at the root. */
  readonly length: number;
  /** 'input', or the op that creates the axis. */
  readonly origin: string;
}

interface AxisAnalysis {
  /** Attention sites whose queries were traced (fused `attention` or decomposed Softmax). */
  readonly sites: readonly Node[];
  readonly roots: readonly AxisRoot[];
}

/** Queries of each attention site: [node, query value, axis of q to trace]. */
function querySites(g: Graph, which: 'seq' | 'batch'): { node: Node; q: Value; axis: number }[] {
  const prod = g.producers();
  const out: { node: Node; q: Value; axis: number }[] = [];
  for (const n of g.nodes) {
    if (n.op === 'attention' || n.op === 'attention_lse') out.push({ node: n, q: n.inputs[0]!, axis: which === 'seq' ? 2 : 0 });
    if (n.op === 'Softmax') {
      // Decomposed attention: Softmax(scale?(MatMul(q, k^T)) + mask?) over the last axis.
      let v = n.inputs[0]!;
      for (let hops = 0; hops < 4; hops++) {
        const p = prod.get(v);
        if (!p) break;
        if (p.op === 'MatMul') {
          const q = p.inputs[0]!;
          const r = q.shape.length;
          if (r >= 2) out.push({ node: n, q, axis: which === 'seq' ? r - 2 : 0 });
          break;
        }
        if (!['Mul', 'Div', 'Add', 'Where', 'Cast'].includes(p.op)) break;
        v = p.inputs.find((x) => x && !x.constant && x.shape.length === v.shape.length) ?? v;
        if (p.op === 'Where') v = p.inputs[1] ?? v;
      }
    }
  }
  return out;
}

export function findAxisRoots(g: Graph, opset: number, which: 'seq' | 'batch', sizeOf: SizeOf): AxisAnalysis {
  const prod = g.producers();
  const inputs = new Set(g.inputs);
  const sites = querySites(g, which);
  const seen = new Set<string>();
  const roots = new Map<Value, AxisRoot>();
  const work: { v: Value; axis: number }[] = sites.map((s) => ({ v: s.q, axis: s.axis }));
  while (work.length > 0) {
    const { v, axis } = work.pop()!;
    const key = `${v.id}:${axis}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (v.constant) continue;
    const shape = staticShapeOf(v);
    if (shape[axis] === 1) continue;
    const root = (origin: string): void => {
      if (!roots.has(v)) roots.set(v, { value: v, axis, length: shape[axis]!, origin });
    };
    if (inputs.has(v)) {
      root('input');
      continue;
    }
    const n = prod.get(v);
    if (!n) continue; // a value of an enclosing graph: not traced
    const view = makeView({ node: n, opset, dists: n.inputs.map((): Dist => REPLICATED), sizeOf, coords: 'global' });
    // Multi-output ops (Split, LayerNormalization) carry an axis the same way in every output.
    const step = SHARD_RULES[n.op].trace(view, axis);
    if (step === 'origin') root(n.op);
    else if (step !== 'stop') {
      for (const s of step) {
        const x = n.inputs[s.input];
        if (x) work.push({ v: x, axis: s.axis });
      }
    }
  }
  // Deterministic order: by position of definition (inputs first, then nodes).
  const order = new Map<Value, number>();
  g.inputs.forEach((v, i) => order.set(v, i));
  g.nodes.forEach((n, i) => n.outputs.forEach((o) => order.set(o, g.inputs.length + i)));
  const list = [...roots.values()].sort((a, b) => order.get(a.value)! - order.get(b.value)!);
  return { sites: [...new Set(sites.map((s) => s.node))], roots: list };
}
