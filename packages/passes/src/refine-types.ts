/**
 * Type refinement after a pass made values known: re-infers the nodes that read them (and, in
 * turn, their readers) through GraphBuilder, so that a Reshape whose target shape just became a
 * constant gets its static output type, the way the verifier (which re-infers every node) sees it.
 *
 * An output gets a new Value only when the re-inferred type is more precise (a symbolic dim became
 * a size) and agrees with every size known before; otherwise the node is kept as it is. Nodes with
 * subgraphs are never re-inferred. Returns `g` itself when no type changed.
 */
import { Graph, GraphBuilder, Node, TensorType, Value, updateNode } from '@paradit/ir';
import { resolveValue, substituteNode, hasSubgraphs } from './graph-edit';

/** Re-infers the readers of `dirty` values (transitively) and refines their output types. */
export function refineTypes(g: Graph, opset: number, dirty: ReadonlySet<Value>): Graph {
  if (dirty.size === 0) return g;
  const touched = new Set<Value>(dirty);
  const subst = new Map<Value, Value>();
  const nodes: Node[] = [];
  let changed = false;
  for (const n0 of g.nodes) {
    let n = substituteNode(n0, subst);
    if (!hasSubgraphs(n) && n.inputs.some((v) => v !== null && touched.has(v))) {
      const types = inferTypes(n, opset);
      let outs: Value[] | undefined;
      n.outputs.forEach((o, i) => {
        const t = types[i];
        if (!t || !morePrecise(t, o.type)) return;
        outs ??= [...n.outputs];
        const v = new Value(o.type.placement ? { ...t, placement: o.type.placement } : t, o.name);
        outs[i] = v;
        subst.set(o, v);
        touched.add(v);
      });
      if (outs) n = updateNode(n, { outputs: outs });
    }
    if (n !== n0) changed = true;
    nodes.push(n);
  }
  if (!changed) return g;
  return new Graph(g.inputs, nodes, g.outputs.map((v) => resolveValue(subst, v)), g.name);
}

/** The types the op rule infers for n now (constant inputs are read by the builder). */
function inferTypes(n: Node, opset: number): readonly TensorType[] {
  const b = new GraphBuilder(opset);
  const outs = b.add(n.op, n.inputs, n.attrs, { name: n.name, numOutputs: n.outputs.length });
  return outs.map((v) => v.type);
}

/** Same dtype and rank, every known size kept, at least one symbolic dim now a size. */
function morePrecise(t: TensorType, old: TensorType): boolean {
  if (t.dtype !== old.dtype || t.shape.length !== old.shape.length) return false;
  let gained = false;
  for (let i = 0; i < t.shape.length; i++) {
    const a = t.shape[i]!;
    const b = old.shape[i]!;
    if (typeof b === 'number') {
      if (a !== b) return false;
    } else if (typeof a === 'number') gained = true;
  }
  return gained;
}
