/**
 * The verifier's placement check for modules compiled for a mesh: every node's operands must have
 * the placements its sharding rule demands (a per-token op sees its operands split alike, an op
 * that mixes tokens sees them whole, a collective sees the placement it starts from) and every
 * output must carry the placement the rule derives. Collectives are thus checked, not trusted.
 *
 * Mesh axis sizes come from the module's own collectives (their groupSize); global shapes are
 * reconstructed from per-rank types and placements, and the rules run in per-rank coordinates.
 */
import type { Graph, Module, Node } from './graph';
import { IrError } from './errors';
import type { PlacementRule } from './verify-placement';
import { DEFAULT_PLACEMENT_RULES } from './verify-placement';
import { verifyModule } from './verify';
import type { VerifyOptions } from './verify';
import { distOf, formatDist, isReplicated, sameDist } from './placement';
import { SHARD_RULES } from './shard-rules/table';
import { makeView } from './shard-rules/view';
import { isCollectiveOp } from './ops/collective';

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

/** Outputs of a compiled module must be whole on every rank. */
export function outputsReplicated(m: Module): string[] {
  return m.graph.outputs
    .map((v, k) => (isReplicated(distOf(v.type.placement)) ? undefined : `model output ${k} ('${v.name}') is placed ${formatDist(distOf(v.type.placement))}; gather it`))
    .filter((x): x is string => x !== undefined);
}

/** verifyModule with the default rules plus the SPMD placement rule; throws IrError('E_VERIFY'). */
export function verifySharded(m: Module, opts: VerifyOptions = {}): void {
  verifyModule(m, { ...opts, placementRules: [...(opts.placementRules ?? DEFAULT_PLACEMENT_RULES), spmdPlacementRule(m)] });
  const outs = outputsReplicated(m);
  if (outs.length) throw new IrError('E_VERIFY', `IR verification failed:\n  - [placement] ${outs.join('\n  - [placement] ')}`);
}
