/**
 * A read-only view of one graph for the block analysis: topological positions, producers, users,
 * and bounded ancestor queries. Built once per analysis; never mutates the graph.
 */
import type { Graph, Node, Value } from '@paradit/ir';
import { opsWith } from '@paradit/ir';

/**
 * Ops that read only their input's type. Data flow through them is no dependence: a mask of ones
 * sized with Shape(stream) is not computed from the stream.
 */
export const METADATA_OPS = opsWith('metadata');

export class GraphView {
  readonly position = new Map<Node, number>();
  readonly producer = new Map<Value, Node>();
  readonly users = new Map<Value, Node[]>();

  constructor(readonly graph: Graph) {
    graph.nodes.forEach((n, i) => {
      this.position.set(n, i);
      for (const o of n.outputs) this.producer.set(o, n);
    });
    for (const n of graph.nodes) {
      for (const v of n.inputs) {
        if (!v) continue;
        const list = this.users.get(v);
        if (!list) this.users.set(v, [n]);
        else if (list[list.length - 1] !== n) list.push(n);
      }
    }
  }

  usersOf(v: Value): readonly Node[] {
    return this.users.get(v) ?? [];
  }

  /** Nodes that `v` depends on, transitively (constants and inputs have none). */
  ancestorNodes(v: Value, stopBefore = -1): Set<Node> {
    const out = new Set<Node>();
    const stack: Value[] = [v];
    while (stack.length > 0) {
      const x = stack.pop()!;
      const p = this.producer.get(x);
      if (!p || out.has(p) || this.position.get(p)! <= stopBefore) continue;
      out.add(p);
      for (const i of p.inputs) if (i) stack.push(i);
    }
    return out;
  }

  /** True when `b` is computed (transitively) from the data of `a` (not through Shape/Size). */
  dependsOn(b: Value, a: Value): boolean {
    if (a === b) return true;
    const pa = this.producer.get(a);
    const limit = pa ? this.position.get(pa)! : -1;
    const seen = new Set<Value>();
    const stack: Value[] = [b];
    while (stack.length > 0) {
      const x = stack.pop()!;
      if (x === a) return true;
      if (seen.has(x)) continue;
      seen.add(x);
      const p = this.producer.get(x);
      if (!p || this.position.get(p)! <= limit || METADATA_OPS.has(p.op)) continue;
      for (const i of p.inputs) if (i) stack.push(i);
    }
    return false;
  }

  /** Nodes on some data path from `from` (exclusive) to `to` (inclusive of its producer). */
  between(from: Value, to: Value): Set<Node> {
    const anc = this.ancestorNodes(to, this.producer.has(from) ? this.position.get(this.producer.get(from)!)! : -1);
    const out = new Set<Node>();
    const reach = new Set<Value>([from]);
    const ordered = [...anc].sort((x, y) => this.position.get(x)! - this.position.get(y)!);
    for (const n of ordered) {
      if (!METADATA_OPS.has(n.op) && n.inputs.some((v) => v && reach.has(v))) {
        out.add(n);
        for (const o of n.outputs) reach.add(o);
      }
    }
    return out;
  }
}
