/**
 * The SPMD placement rule (see verify-spmd.ts): per node, the operands must be placed as the op's
 * sharding rule demands and the outputs as it derives. verifyModule applies it by default to
 * every module that carries placements (carriesPlacements), so every pass of compileForMesh and
 * every test that verifies a compiled module checks collectives instead of trusting them.
 */
import type { Graph, Module, Node } from './graph';
import { IrError } from './errors';
import type { PlacementRule } from './verify-placement';
import { distOf, formatDist, sameDist } from './placement';
import { SHARD_RULES } from './shard-rules/table';
import { makeView } from './shard-rules/view';
import { isCollectiveOp } from './ops/collective';

/**
 * True for a module compiled for a mesh: it has a collective op (which says how many ranks its
 * mesh axis has) and values with placements in their types (subgraphs included). Placements on a
 * module without collectives are mere annotations (printer tests), not an SPMD program.
 */
export function carriesPlacements(m: Module): boolean {
  let placed = false;
  let collective = false;
  const visit = (g: Graph): void => {
    if (g.inputs.some((v) => v.type.placement !== undefined)) placed = true;
    for (const n of g.nodes) {
      if (isCollectiveOp(n.op)) collective = true;
      if (n.outputs.some((o) => o.type.placement !== undefined)) placed = true;
      n.subgraphs().forEach(visit);
    }
  };
  visit(m.graph);
  return placed && collective;
}

/** groupSize of each mesh axis named by the graph's collectives (and its subgraphs'). */
export function meshAxisSizes(g: Graph, out: Map<string, number> = new Map()): Map<string, number> {
  for (const n of g.nodes) {
    const m = n.attrs.meshAxis;
    const s = n.attrs.groupSize;
    if (m?.kind === 'string' && s?.kind === 'int') out.set(m.value, s.value);
    for (const sg of n.subgraphs()) meshAxisSizes(sg, out);
  }
  return out;
}

function placed(n: Node): boolean {
  return n.inputs.some((v) => v?.type.placement !== undefined) || n.outputs.some((v) => v.type.placement !== undefined);
}

/** A placement rule bound to one module (it needs the module's mesh axis sizes and opset). */
export function spmdPlacementRule(m: Module): PlacementRule {
  const sizes = meshAxisSizes(m.graph);
  const sizeOf = (axis: string): number => {
    const s = sizes.get(axis);
    if (s === undefined) throw new IrError('E_VERIFY', `a placement names mesh axis '${axis}', but no collective in the module says how many ranks it has`);
    return s;
  };
  return (node) => {
    if (!placed(node) && !isCollectiveOp(node.op)) return undefined;
    const dists = node.inputs.map((v) => distOf(v?.type.placement));
    let plan;
    try {
      plan = SHARD_RULES[node.op].propagate(makeView({ node, opset: m.opset, dists, sizeOf, coords: 'local' }));
    } catch (e) {
      return (e as Error).message;
    }
    const problems: string[] = [];
    dists.forEach((d, i) => {
      const need = plan.ins[i]!;
      if (node.inputs[i] && !sameDist(d, need)) {
        problems.push(`input ${i} is placed ${formatDist(d)}, but ${node.op} needs ${formatDist(need)}${plan.note ? ` (${plan.note})` : ''}; insert the collective that reshards it`);
      }
    });
    if (problems.length === 0) {
      node.outputs.forEach((o, k) => {
        const got = distOf(o.type.placement);
        const want = plan.outs[k]!;
        if (!sameDist(got, want)) problems.push(`output ${k} is recorded as ${formatDist(got)}, but its inputs make it ${formatDist(want)}`);
      });
    }
    return problems.length ? problems.join('; ') : undefined;
  };
}

