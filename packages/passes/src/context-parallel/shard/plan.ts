/**
 * The sharding plan: forward propagation of dists from the roots through every node with the
 * ops' sharding rules (@paradit/ir SHARD_RULES). For each node it records the dists the node's
 * inputs need, the dists of its outputs and why an operand had to be gathered; model outputs
 * are always gathered to replicated, natural order. The plan is plain data: print it with
 * `formatShardPlan` and test it on its own; shard/apply.ts turns it into the per-rank graph.
 */
import { Graph, IrError, Mesh, Node, SHARD_RULES, Value, distOf, formatDist, formatMesh, isReplicated, sameDist } from '@paradit/ir';
import type { AxisPlace, Dist } from '@paradit/ir';
import { REPLICATED, withPlace } from '@paradit/ir';
import type { AxisRoot } from './token-axes';
import type { SizeOf } from './view';
import { makeView } from './view';

export interface RootPlan {
  readonly root: AxisRoot;
  /** How the root's axis is placed right after the value is defined (its other axes keep theirs). */
  readonly place: AxisPlace;
}

export interface NodeStep {
  readonly node: Node;
  /** Dists the inputs have before any conversion. */
  readonly have: readonly Dist[];
  /** Dists the node needs (collectives make up the difference). */
  readonly need: readonly Dist[];
  readonly outs: readonly Dist[];
  /** Per output: the dist it is resharded to right after the node (a root), if any. */
  readonly rooted: readonly (Dist | undefined)[];
  readonly note?: string;
  /** The node is rewritten (see ShardPlan.lower). */
  readonly lower?: 'all-reduce';
}

export interface ShardPlanData {
  readonly pass: string;
  readonly mesh: Mesh;
  readonly roots: readonly RootPlan[];
  readonly steps: readonly NodeStep[];
  /** Per graph input: the dist it is resharded to at the start (a root), if any. */
  readonly inputRoots: readonly (Dist | undefined)[];
  /** Dists of the graph outputs before the final gather. */
  readonly outputs: readonly Dist[];
}

interface PlanInput {
  readonly pass: string;
  readonly graph: Graph;
  readonly opset: number;
  readonly mesh: Mesh;
  readonly sizeOf: SizeOf;
  readonly roots: readonly RootPlan[];
}

export function planSharding(x: PlanInput): ShardPlanData {
  const dist = new Map<Value, Dist>();
  const rootOf = new Map<Value, RootPlan>();
  for (const r of x.roots) rootOf.set(r.root.value, r);
  const cur = (v: Value | null): Dist => (v ? (dist.get(v) ?? distOf(v.type.placement)) : REPLICATED);
  const rooted = (v: Value, base: Dist): Dist | undefined => {
    const r = rootOf.get(v);
    if (!r) return undefined;
    const d = withPlace(base, r.root.axis, r.place);
    return sameDist(d, base) ? undefined : d;
  };
  const inputRoots = x.graph.inputs.map((v) => {
    const base = distOf(v.type.placement);
    const r = rooted(v, base);
    dist.set(v, r ?? base);
    return r;
  });
  const steps: NodeStep[] = [];
  for (const node of x.graph.nodes) {
    const have = node.inputs.map(cur);
    const view = makeView({ node, opset: x.opset, dists: have, sizeOf: x.sizeOf, coords: 'global' });
    let plan;
    try {
      plan = SHARD_RULES[node.op].propagate(view);
    } catch (e) {
      throw new IrError('E_UNSUPPORTED', `${x.pass}: cannot plan ${node.label}: ${(e as Error).message}`, node.name);
    }
    const outs = node.outputs.map((_, k) => plan.outs[k] ?? REPLICATED);
    const roots = node.outputs.map((o, k) => rooted(o, outs[k]!));
    steps.push({ node, have, need: plan.ins, outs, rooted: roots, ...(plan.note ? { note: plan.note } : {}), ...(plan.lower ? { lower: plan.lower } : {}) });
    node.outputs.forEach((o, k) => dist.set(o, roots[k] ?? outs[k]!));
  }
  return { pass: x.pass, mesh: x.mesh, roots: x.roots, steps, inputRoots, outputs: x.graph.outputs.map(cur) };
}

/** Steps where something is placed or moves (the rest of the graph runs replicated, unchanged). */
function interestingSteps(p: ShardPlanData): NodeStep[] {
  return p.steps.filter((s) => s.have.some((d) => !isReplicated(d)) || s.outs.some((d) => !isReplicated(d)));
}

/** Steps that need a collective before them (an input's dist differs from what the node needs). */
function reshardingSteps(p: ShardPlanData): NodeStep[] {
  return p.steps.filter((s) => s.have.some((d, i) => !sameDist(d, s.need[i]!)));
}

/** One line per root and per resharding step; stable text for tests and `--after` dumps. */
export function formatShardPlan(p: ShardPlanData): string {
  const lines = [`${p.pass} on mesh ${formatMesh(p.mesh)}`];
  for (const r of p.roots) {
    const where = [r.place.meshAxis ? `split over '${r.place.meshAxis}'` : '', r.place.tokens ? `${r.place.tokens.chunks} chunks` : ''].filter(Boolean).join(', ');
    lines.push(`  root '${r.root.value.name}' axis ${r.root.axis} (${r.root.length}, from ${r.root.origin}): ${where}`);
  }
  const placed = interestingSteps(p).length;
  lines.push(`  ${placed} of ${p.steps.length} nodes see placed values`);
  for (const s of reshardingSteps(p)) {
    const moves = s.have
      .map((d, i) => (sameDist(d, s.need[i]!) ? undefined : `in${i} ${formatDist(d)} -> ${formatDist(s.need[i]!)}`))
      .filter((m): m is string => m !== undefined);
    lines.push(`  ${s.node.label}: ${moves.join('; ')}${s.note ? `  (${s.note})` : ''}`);
  }
  const gathered = p.outputs.filter((d) => !isReplicated(d)).length;
  if (gathered) lines.push(`  gather ${gathered} model output${gathered === 1 ? '' : 's'}`);
  return lines.join('\n');
}
