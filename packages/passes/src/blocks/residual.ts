/**
 * Residual units: the first step of transformer-block discovery.
 *
 * A residual op adds a branch computed from a stream value back onto that value:
 * `Add(s, f(s))` (either operand order) or a fused `gated_residual(s, g, f(s))`, where the path from s
 * to f(s) holds real work (an attention or a linear layer). Its body is every node on a path from
 * s to the residual op. Residual ops whose bodies share a node (a joint attention feeding the
 * image and the text stream, a feed-forward run on concatenated streams) form one unit.
 */
import type { Node, Value } from '@paradit/ir';
import { GraphView } from './graph-view';

/** Ops that do the heavy work inside a block. */
const HEAVY = new Set(['MatMul', 'Gemm', 'Conv', 'Einsum', 'linear', 'attention', 'Attention']);
const ATTENTION = new Set(['attention', 'Attention']);

export function isAttentionNode(n: Node): boolean {
  return ATTENTION.has(n.op) || n.op === 'Softmax';
}

export interface ResidualOp {
  readonly node: Node;
  /** The stream value the branch is added back onto. */
  readonly skip: Value;
  /** The branch value. */
  readonly branch: Value;
}

export interface ResidualUnit {
  readonly residuals: ResidualOp[];
  /** Nodes of every residual body, in graph order. */
  readonly body: Node[];
  readonly attention: Node[];
  /** True when the unit ends a block: it has no attention, or it runs an MLP beside its attention. */
  readonly closes: boolean;
  /** Graph position of its first residual op. */
  readonly position: number;
}

function sameType(a: Value, b: Value): boolean {
  return a.dtype === b.dtype && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
}

/** Finds the residual ops of the graph. */
export function findResidualOps(view: GraphView): ResidualOp[] {
  const out: ResidualOp[] = [];
  for (const n of view.graph.nodes) {
    let pairs: [Value, Value][] = [];
    if (n.op === 'Add' && n.inputs[0] && n.inputs[1]) pairs = [[n.inputs[0], n.inputs[1]], [n.inputs[1], n.inputs[0]]];
    else if (n.op === 'gated_residual' && n.inputs[0] && n.inputs[2]) pairs = [[n.inputs[0], n.inputs[2]]];
    for (const [skip, branch] of pairs) {
      if (skip.constant || !sameType(skip, n.outputs[0]!) || !view.dependsOn(branch, skip)) continue;
      const body = view.between(skip, branch);
      if (![...body].some((b) => HEAVY.has(b.op))) continue;
      out.push({ node: n, skip, branch });
      break;
    }
  }
  return out;
}

/** Groups residual ops into units (union of overlapping bodies), in graph order. */
export function residualUnits(view: GraphView, residuals: readonly ResidualOp[]): ResidualUnit[] {
  const bodies = residuals.map((r) => {
    const b = view.between(r.skip, r.branch);
    b.add(r.node);
    return b;
  });
  // Union-find over residual ops sharing a body node.
  const parent = residuals.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  const owner = new Map<Node, number>();
  bodies.forEach((b, i) => {
    for (const n of b) {
      const j = owner.get(n);
      if (j === undefined) owner.set(n, i);
      else parent[find(i)] = find(j);
    }
  });
  const groups = new Map<number, number[]>();
  residuals.forEach((_, i) => {
    const r = find(i);
    groups.set(r, [...(groups.get(r) ?? []), i]);
  });
  const units: ResidualUnit[] = [];
  for (const members of groups.values()) {
    const body = new Set<Node>();
    for (const i of members) for (const n of bodies[i]!) body.add(n);
    const ordered = [...body].sort((a, b) => view.position.get(a)! - view.position.get(b)!);
    const attention = ordered.filter(isAttentionNode);
    units.push({
      residuals: members.map((i) => residuals[i]!),
      body: ordered,
      attention,
      closes: attention.length === 0 || hasParallelWork(view, ordered, attention),
      position: Math.min(...members.map((i) => view.position.get(residuals[i]!.node)!)),
    });
  }
  return units.sort((a, b) => a.position - b.position);
}

/** True when some heavy node of the body is neither upstream nor downstream of any attention. */
function hasParallelWork(view: GraphView, body: readonly Node[], attention: readonly Node[]): boolean {
  const upstream = new Set<Node>();
  const downstream = new Set<Node>();
  for (const a of attention) {
    for (const i of a.inputs) if (i) for (const n of view.ancestorNodes(i)) upstream.add(n);
  }
  const reach = new Set<Value>(attention.flatMap((a) => [...a.outputs]));
  for (const n of body) {
    if (n.inputs.some((v) => v && reach.has(v))) {
      downstream.add(n);
      for (const o of n.outputs) reach.add(o);
    }
  }
  return body.some((n) => HEAVY.has(n.op) && !ATTENTION.has(n.op) && !upstream.has(n) && !downstream.has(n) && !attention.includes(n));
}
