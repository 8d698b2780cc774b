/**
 * Placements for the rows-parallel module: each value's dist is what the sharding rules
 * (@paradit/ir SHARD_RULES, per-rank coordinates) derive from its operands, starting from
 * replicated graph inputs and constants: shard_slice splits the latent's rows, the halo pieces
 * are "rows [a, a+n) of every band" (split rows), the halo'd conv input is a Concat in rank-chunk
 * token order, the GroupNorm sums are partial until all_reduce. Node by node, the operands get
 * their placed types first (so the rule sees global shapes), then the outputs; a Reshape's output
 * dist is the one the rewrite states (its per-rank shape alone is ambiguous: [B,C,1,h,W] may hold
 * the band index or the rows). verify (the SPMD rule) then checks the whole module; an operand placed
 * otherwise than its op needs is a bug in apply.ts and is reported here already.
 */
import { Graph, IrError, Module, Node, SHARD_RULES, Value, distOf, formatDist, makeView, placementOf, sameDist, tensorType, updateNode } from '@paradit/ir';
import type { Dist } from '@paradit/ir';
import { REPLICATED } from '@paradit/ir';

/** `stated`: Reshape outputs whose dist the rewrite states. */
export function placeByRules(m: Module, world: number, meshAxis: string, stated: ReadonlyMap<Value, Dist>): Module {
  const sizeOf = (axis: string): number => {
    if (axis !== meshAxis) throw new IrError('E_VERIFY', `rows-parallel: a placement names mesh axis '${axis}', expected '${meshAxis}'`);
    return world;
  };
  const subst = new Map<Value, Value>();
  const get = (v: Value): Value => subst.get(v) ?? v;
  const placed = (o: Value, d: Dist): Value => {
    const p = placementOf(d);
    if (!p) return o;
    const nv = new Value(tensorType(o.dtype, o.shape, p), o.name, o.constant);
    subst.set(o, nv);
    return nv;
  };
  const nodes = m.graph.nodes.map((n0) => {
    // Stated outputs are placed before the rule reads them (it needs their global shapes).
    const pre = n0.outputs.map((o) => (stated.has(o) ? placed(o, stated.get(o)!) : o));
    const n = updateNode(n0, { inputs: n0.inputs.map((v) => (v ? get(v) : null)), outputs: pre });
    const have = n.inputs.map((v): Dist => distOf(v?.type.placement));
    const plan = SHARD_RULES[n.op].propagate(makeView({ node: n, opset: m.opset, dists: have, sizeOf, coords: 'local' }));
    const bad = have.findIndex((d, i) => n.inputs[i] !== null && !sameDist(d, plan.ins[i]!));
    if (bad >= 0) {
      throw new IrError('E_VERIFY', `rows-parallel: ${n.label} input ${bad} is placed ${formatDist(have[bad]!)}, but ${n.op} needs ${formatDist(plan.ins[bad]!)}${plan.note ? ` (${plan.note})` : ''}; the rewrite is missing a collective`, n.name);
    }
    const outputs = n0.outputs.map((o, k) => (stated.has(o) ? pre[k]! : placed(o, plan.outs[k] ?? REPLICATED)));
    return updateNode(n, { outputs });
  });
  return m.withGraph(new Graph(m.graph.inputs, nodes, m.graph.outputs.map(get), m.graph.name));
}
