/**
 * Immutable graph edits shared by the global passes: rebuild a graph with some values substituted
 * and some nodes dropped, recursing into subgraphs (which may read values of enclosing graphs).
 * Every helper returns its input object when nothing changes, so unchanged graphs, nodes and
 * subgraphs keep their identity.
 */
import { AttrValue, Attrs, Graph, Node, Value, updateNode } from '@paradit/ir';

interface GraphEdit {
  /** Reads of a key read its value instead (chains a -> b -> c resolve to c). */
  readonly subst?: ReadonlyMap<Value, Value>;
  /** Nodes to leave out (the caller guarantees nothing live reads their outputs). */
  readonly drop?: ReadonlySet<Node>;
  /** Replaces a node after its inputs were substituted (return it unchanged to keep it). */
  readonly mapNode?: (n: Node) => Node;
}

/** Follows substitution chains to their end. */
export function resolveValue(subst: ReadonlyMap<Value, Value>, v: Value): Value {
  let cur = v;
  for (let steps = 0; steps <= subst.size; steps++) {
    const next = subst.get(cur);
    if (next === undefined || next === cur) return cur;
    cur = next;
  }
  throw new Error(`resolveValue: substitution cycle through value '${v.name || v.id}'`);
}

/**
 * Applies an edit to a graph and, recursively, to the subgraphs of its nodes (one substitution map
 * and drop set serve every level: values and nodes are unique objects). Returns `g` itself when
 * the edit changes nothing in it.
 */
export function editGraph(g: Graph, edit: GraphEdit): Graph {
  const subst = edit.subst ?? EMPTY;
  let changed = false;
  const nodes: Node[] = [];
  for (const n of g.nodes) {
    if (edit.drop?.has(n)) {
      changed = true;
      continue;
    }
    const m = editNode(edit.mapNode ? edit.mapNode(n) : n, edit);
    if (m !== n) changed = true;
    nodes.push(m);
  }
  const outputs = subst.size === 0 ? g.outputs : g.outputs.map((v) => resolveValue(subst, v));
  if (outputs.some((v, i) => v !== g.outputs[i])) changed = true;
  return changed ? new Graph(g.inputs, nodes, outputs, g.name) : g;
}

const EMPTY: ReadonlyMap<Value, Value> = new Map();

/** The node with the edit applied to its inputs and subgraphs; itself when nothing applies. */
export function editNode(n: Node, edit: GraphEdit): Node {
  const subst = edit.subst ?? EMPTY;
  let inputs: (Value | null)[] | undefined;
  if (subst.size > 0) {
    n.inputs.forEach((v, i) => {
      if (!v) return;
      const r = resolveValue(subst, v);
      if (r !== v) {
        inputs ??= [...n.inputs];
        inputs[i] = r;
      }
    });
  }
  const attrs = hasSubgraphs(n) ? mapSubgraphAttrs(n.attrs, (sg) => editGraph(sg, edit)) : n.attrs;
  return updateNode(n, { ...(inputs ? { inputs } : {}), attrs });
}

/** The node with substituted inputs (and captures in its subgraphs); itself when none apply. */
export function substituteNode(n: Node, subst: ReadonlyMap<Value, Value>): Node {
  return editNode(n, { subst });
}

/** Attributes with every graph-valued one mapped through `f`; the same object when f changes none. */
export function mapSubgraphAttrs(attrs: Attrs, f: (g: Graph) => Graph): Attrs {
  let out: Record<string, AttrValue> | undefined;
  for (const [k, a] of Object.entries(attrs)) {
    let b: AttrValue = a;
    if (a.kind === 'graph') {
      const g = f(a.value);
      if (g !== a.value) b = { kind: 'graph', value: g };
    } else if (a.kind === 'graphs') {
      const gs = a.value.map(f);
      if (gs.some((g, i) => g !== a.value[i])) b = { kind: 'graphs', value: gs };
    }
    if (b !== a) {
      out ??= { ...attrs };
      out[k] = b;
    }
  }
  return out ?? attrs;
}

/** True when the node has graph-valued attributes (If branches). */
export function hasSubgraphs(n: Node): boolean {
  for (const a of Object.values(n.attrs)) if (a.kind === 'graph' || a.kind === 'graphs') return true;
  return false;
}

/**
 * `after` with its graph outputs named as in `before` where a pass replaced a named output by an
 * unnamed value (runtimes, plans and users find outputs by name). The value's producer is rebuilt
 * with the named output; an output that is a graph input, a constant or listed twice is left as is.
 * Returns `after` itself when nothing was renamed.
 */
export function keepOutputNames(before: Graph, after: Graph): Graph {
  if (before.outputs.length !== after.outputs.length) return after;
  const producers = after.producers();
  const subst = new Map<Value, Value>();
  const renamed = new Map<Node, Node>();
  after.outputs.forEach((v, k) => {
    const want = before.outputs[k]!.name;
    if (!want || v.name || v.constant || subst.has(v) || after.outputs.indexOf(v) !== k) return;
    const p = producers.get(v);
    if (!p || after.outputs.some((o, j) => j !== k && o.name === want)) return;
    const named = new Value(v.type, want);
    const q = renamed.get(p) ?? p;
    renamed.set(p, updateNode(q, { outputs: q.outputs.map((o) => (o === v ? named : o)) }));
    subst.set(v, named);
  });
  if (subst.size === 0) return after;
  return editGraph(after, { subst, mapNode: (n) => renamed.get(n) ?? n });
}
