/**
 * eliminate-dead-code: removes nodes whose outputs nothing reads, and outputs nothing reads.
 *
 * analyze: a backward sweep from the graph outputs marks live values. A node none of whose outputs
 *          is live is dead (every op is pure). An If keeps only its live outputs: the unused
 *          results are removed from both branches together, which is safe because branches are
 *          pure and results are matched by position; the trimmed branches are then swept too, and
 *          only what their live nodes read of the enclosing graph stays live there. Ops whose
 *          trailing outputs are optional (LayerNormalization's Mean and InvStdDev, Dropout's
 *          mask, ...) lose the unused ones at the end.
 * plan:    DcePlan: the dead nodes and the trimmed nodes (printable with formatDcePlan).
 * apply:   the graph without the dead nodes, with the trimmed nodes in place.
 *
 * Requires: nothing. Ensures: every node has a live output; graph inputs are kept (they are the
 * model's interface). Values are unchanged.
 *
 *     before:  %1 = Mul(%x, %x) : f32[2,4]
 *              %2, %3, %4 = LayerNormalization(%x, %w) {axis=-1} : f32[2,4], f32[2,1], f32[2,1]
 *              return %2
 *     after:   %2 = LayerNormalization(%x, %w) {axis=-1} : f32[2,4]
 *              return %2
 */
import { Graph, Module, Node, Value, updateNode } from '@paradit/ir';
import type { OpKind } from '@paradit/ir';
import type { Pass } from './pass';
import { editGraph, hasSubgraphs } from './graph-edit';

/** Ops whose outputs after the first `n` are optional, so unused trailing ones can go. */
const OPTIONAL_TRAILING_OUTPUTS: Partial<Record<OpKind, number>> = {
  LayerNormalization: 1,
  Dropout: 1,
  BatchNormalization: 1,
  MaxPool: 1,
  Attention: 1,
};

interface DcePlan {
  readonly dead: ReadonlySet<Node>;
  /** Live nodes with fewer outputs (or trimmed subgraphs): original -> replacement. */
  readonly trimmed: ReadonlyMap<Node, Node>;
}

export function planDeadCode(g: Graph): DcePlan {
  const plan = { dead: new Set<Node>(), trimmed: new Map<Node, Node>() };
  sweep(g, plan);
  return plan;
}

export function applyDcePlan(g: Graph, plan: DcePlan): Graph {
  if (plan.dead.size === 0 && plan.trimmed.size === 0) return g;
  return editGraph(g, { drop: plan.dead, mapNode: (n) => plan.trimmed.get(n) ?? n });
}

export function formatDcePlan(plan: DcePlan): string {
  const lines = [`eliminate-dead-code: ${plan.dead.size} dead nodes, ${plan.trimmed.size} trimmed`];
  for (const n of plan.dead) lines.push(`  remove ${n.label}`);
  for (const [n, t] of plan.trimmed) lines.push(`  trim ${n.label}: ${n.outputs.length} -> ${t.outputs.length} outputs`);
  return lines.join('\n');
}

export const eliminateDeadCode: Pass = {
  name: 'eliminate-dead-code',
  description: 'removes nodes and optional outputs that nothing reads, in subgraphs too',
  run(m: Module, ctx) {
    const plan = planDeadCode(m.graph);
    ctx.instruments.report?.count('removed', plan.dead.size);
    return m.withGraph(applyDcePlan(m.graph, plan));
  },
};

/** Marks dead nodes of g given its outputs are live; returns the live values g reads from outside it. */
function sweep(g: Graph, plan: { dead: Set<Node>; trimmed: Map<Node, Node> }): Set<Value> {
  const live = new Set<Value>(g.outputs);
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i]!;
    if (!n.outputs.some((o) => live.has(o))) {
      plan.dead.add(n);
      continue;
    }
    let kept = n;
    if (n.op === 'If') kept = trimIf(n, live);
    else {
      const min = OPTIONAL_TRAILING_OUTPUTS[n.op];
      if (min !== undefined) {
        let k = n.outputs.length;
        while (k > min && !live.has(n.outputs[k - 1]!)) k--;
        if (k < n.outputs.length) kept = updateNode(n, { outputs: n.outputs.slice(0, k) });
      }
    }
    for (const v of kept.inputs) if (v) live.add(v);
    if (hasSubgraphs(kept)) for (const sg of kept.subgraphs()) for (const v of sweep(sg, plan)) live.add(v);
    if (kept !== n) plan.trimmed.set(n, kept);
  }
  const defined = new Set<Value>(g.inputs);
  for (const n of g.nodes) for (const o of n.outputs) defined.add(o);
  const outside = new Set<Value>();
  for (const v of live) if (!defined.has(v) && !v.constant) outside.add(v);
  return outside;
}

/** The If with only its live outputs, removed from both branches at the same positions. */
function trimIf(n: Node, live: ReadonlySet<Value>): Node {
  const keep = n.outputs.map((o) => live.has(o));
  if (keep.every(Boolean)) return n;
  const attrs = { ...n.attrs };
  for (const key of ['then_branch', 'else_branch']) {
    const a = n.attrs[key];
    if (!a || a.kind !== 'graph') continue;
    const b = a.value;
    attrs[key] = { kind: 'graph', value: new Graph(b.inputs, b.nodes, b.outputs.filter((_, i) => keep[i]), b.name) };
  }
  return updateNode(n, { outputs: n.outputs.filter((_, i) => keep[i]), attrs });
}
