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
import { opsWith } from '@paradit/ir';
import { GraphView } from './graph-view';

/** Ops that do the heavy work inside a block. */
const HEAVY = opsWith('heavy');
const ATTENTION = opsWith('attention');
const MLP_ACTIVATIONS = opsWith('mlpActivation');

export function isAttentionNode(n: Node): boolean {
  return ATTENTION.has(n.op) || n.op === 'Softmax';
}

interface ResidualOp {
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
  /**
   * The unit's token mixing: its attention, or without one the products of two activations (a
   * linear attention's relu(k)^T v and q (k^T v), which has no Softmax). Blocks start at mixing.
   */
  readonly mixing: Node[];
  /** True when the unit ends a block: it mixes no tokens, or it runs an MLP beside its mixing. */
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
    const mixing = attention.length > 0 ? attention : activationProducts(view, ordered);
    units.push({
      residuals: members.map((i) => residuals[i]!),
      body: ordered,
      attention,
      mixing,
      closes: mixing.length === 0 || hasParallelWork(view, ordered, mixing),
      position: Math.min(...members.map((i) => view.position.get(residuals[i]!.node)!)),
    });
  }
  return units.sort((a, b) => a.position - b.position);
}

/**
 * MatMul/Einsum nodes whose operands are both computed inside the body, i.e. from the stream (a
 * linear layer multiplies by a weight, which is a constant or a graph input, so it is not one).
 */
function activationProducts(view: GraphView, body: readonly Node[]): Node[] {
  const inBody = new Set(body);
  const computed = (v: Value | null): boolean => {
    const p = v ? view.producer.get(v) : undefined;
    return p !== undefined && inBody.has(p);
  };
  return body.filter((n) => (n.op === 'MatMul' || n.op === 'Einsum') && n.inputs.length >= 2 && n.inputs.every(computed));
}

/** True when some heavy node of the body is neither upstream nor downstream of any attention. */
function hasParallelWork(view: GraphView, body: readonly Node[], attention: readonly Node[]): boolean {
  const upstream = new Set<Node>();
  const downstream = new Set<Node>();
  for (const a of attention) {
    for (const i of a.inputs) if (i) for (const n of view.ancestorNodes(i)) upstream.add(n);
    // An unfused attention (a Softmax) reads v in the product after it: v's projection is part
    // of the attention, not work beside it.
    if (a.op === 'Softmax') for (const pv of probsProducts(view, a)) for (const i of pv.inputs) if (i) for (const n of view.ancestorNodes(i)) upstream.add(n);
  }
  const reach = new Set<Value>(attention.flatMap((a) => [...a.outputs]));
  for (const n of body) {
    if (n.inputs.some((v) => v && reach.has(v))) {
      downstream.add(n);
      for (const o of n.outputs) reach.add(o);
    }
  }
  // An MLP activation beside the attention counts too: a fused `linear1` whose output is split
  // into qkv and the MLP input (HunyuanVideo's and FLUX's reference single-stream blocks) is
  // upstream of the attention, so the MLP's only own op before `linear2` is its activation.
  const parallel = (n: Node): boolean => (HEAVY.has(n.op) && !ATTENTION.has(n.op)) || MLP_ACTIVATIONS.has(n.op);
  return body.some((n) => parallel(n) && !upstream.has(n) && !downstream.has(n) && !attention.includes(n));
}

/** The MatMuls that multiply a Softmax's probabilities into v (through casts and reshapes). */
function probsProducts(view: GraphView, softmax: Node): Node[] {
  const out: Node[] = [];
  let frontier: Value[] = [...softmax.outputs];
  for (let depth = 0; depth < 4 && frontier.length > 0; depth++) {
    const next: Value[] = [];
    for (const v of frontier) {
      for (const u of view.usersOf(v)) {
        if (u.op === 'MatMul' || u.op === 'Einsum') out.push(u);
        else if (u.op === 'Cast' || u.op === 'Reshape' || u.op === 'Where' || u.op === 'Dropout') next.push(...u.outputs);
      }
    }
    frontier = next;
  }
  return out;
}
