/**
 * eliminate-common-subexpressions: merges constants with equal contents, then nodes that apply the
 * same op with the same attributes to the same inputs.
 *
 * analyze: constants (in every graph level; they have no scope) are keyed by content, confirmed
 *          bit for bit; big ones that are not loaded are keyed by their file range, or not merged
 *          (seeded random data), so nothing big is loaded to compare (const-key.ts). Then one forward sweep keys each node by op,
 *          attributes, output count and its inputs after the merges so far (the two inputs of a
 *          commutative binary op in a canonical order); a node whose key was seen earlier is a
 *          duplicate. A subgraph sees the keys of its enclosing graph (it may read those values),
 *          never the other way round. Nodes holding subgraphs are not merged.
 * plan:    CsePlan: duplicate constant -> kept constant, duplicate node -> kept node.
 * apply:   reads of duplicates read the kept values; duplicate nodes are dropped.
 *
 * Requires: nothing. Ensures: no two constants hold the same bits; no two nodes of one scope are
 * equal. The kept node is the first in topological order, so the result is topological. Values
 * are bit-identical (every op is deterministic).
 *
 *     before:  %1 = Sigmoid(%x) : f32[3]
 *              %2 = Sigmoid(%x) : f32[3]
 *              %3 = Mul(%1, %2) : f32[3]
 *     after:   %1 = Sigmoid(%x) : f32[3]
 *              %3 = Mul(%1, %1) : f32[3]
 */
import { Graph, Module, Node, Tensor, Value, formatType } from '@paradit/ir';
import { opsWith } from '@paradit/ir';
import type { Pass } from './pass';
import { editGraph, hasSubgraphs } from './graph-edit';
import { attrsKey, constantKey, sameBytes } from './const-key';
import { sameShape } from './rewrite';

/** Binary ops whose result is bit-identical with the operands swapped. */
const COMMUTATIVE = opsWith('commutative');

interface CsePlan {
  /** Duplicate constant -> the constant kept. */
  readonly constants: ReadonlyMap<Value, Value>;
  /** Duplicate node -> the node kept (same outputs, in order). */
  readonly nodes: ReadonlyMap<Node, Node>;
}

export function planCommonSubexpressions(g: Graph, maxContentElements: number): CsePlan {
  const constants = mergeConstants(g, maxContentElements);
  const subst = new Map<Value, Value>(constants);
  const nodes = new Map<Node, Node>();
  sweep(g, new Scope(undefined), subst, nodes);
  return { constants, nodes };
}

function applyCsePlan(g: Graph, plan: CsePlan): Graph {
  if (plan.constants.size === 0 && plan.nodes.size === 0) return g;
  const subst = new Map<Value, Value>(plan.constants);
  for (const [dup, kept] of plan.nodes) dup.outputs.forEach((o, i) => subst.set(o, kept.outputs[i]!));
  return editGraph(g, { subst, drop: new Set(plan.nodes.keys()) });
}

export function formatCsePlan(plan: CsePlan): string {
  const name = (v: Value): string => (v.name ? `'${v.name}'` : `#${v.id}`);
  const lines = [`eliminate-common-subexpressions: ${plan.constants.size} constants, ${plan.nodes.size} nodes merged`];
  for (const [dup, kept] of plan.constants) lines.push(`  merge constant ${formatType(dup.type)} ${name(dup)} into ${name(kept)}`);
  for (const [dup, kept] of plan.nodes) lines.push(`  merge ${dup.label} into ${kept.label}`);
  return lines.join('\n');
}

export const eliminateCommonSubexpressions: Pass = {
  name: 'eliminate-common-subexpressions',
  description: 'merges equal constants and nodes applying the same op to the same inputs',
  run(m: Module, ctx) {
    const plan = planCommonSubexpressions(m.graph, ctx.options.cseMaxContentElements);
    ctx.instruments.report?.count('merged', plan.constants.size + plan.nodes.size);
    return m.withGraph(applyCsePlan(m.graph, plan));
  },
};

// ---------------------------------------------------------------------------------------------

/** Keys of the nodes seen so far in a graph, falling back to its enclosing graphs' keys. */
class Scope {
  private readonly keys = new Map<string, Node>();
  constructor(private readonly parent: Scope | undefined) {}
  get(k: string): Node | undefined {
    return this.keys.get(k) ?? this.parent?.get(k);
  }
  set(k: string, n: Node): void {
    this.keys.set(k, n);
  }
}

function mergeConstants(g: Graph, maxContentElements: number): Map<Value, Value> {
  const merged = new Map<Value, Value>();
  const buckets = new Map<string, Value[]>();
  const seen = new Set<Value>();
  const visit = (graph: Graph): void => {
    for (const v of graph.constants()) {
      if (seen.has(v)) continue;
      seen.add(v);
      const k = constantKey(v.constant!, maxContentElements);
      if (!k) continue;
      const { key, exact } = k;
      const bucket = buckets.get(key);
      if (!bucket) {
        buckets.set(key, [v]);
        continue;
      }
      const data = exact ? undefined : v.constant!.tensor();
      const same = bucket.find((k) => sameType(k, v) && (exact || sameBytes(k.constant!.tensor(), data as Tensor)));
      if (same) merged.set(v, same);
      else bucket.push(v);
    }
    for (const n of graph.nodes) if (hasSubgraphs(n)) n.subgraphs().forEach(visit);
  };
  visit(g);
  return merged;
}

function sweep(g: Graph, scope: Scope, subst: Map<Value, Value>, dups: Map<Node, Node>): void {
  const id = (v: Value | null): string => (v ? String((subst.get(v) ?? v).id) : '-');
  for (const n of g.nodes) {
    if (hasSubgraphs(n)) {
      for (const sg of n.subgraphs()) sweep(sg, new Scope(scope), subst, dups);
      continue;
    }
    const attrs = attrsKey(n.attrs);
    if (attrs === undefined) continue;
    let ins = n.inputs.map(id);
    if (COMMUTATIVE.has(n.op) && ins.length === 2) ins = ins.slice().sort();
    const key = `${n.op}|${n.outputs.length}|${ins.join(',')}|${attrs}`;
    const kept = scope.get(key);
    if (kept && kept.outputs.every((o, i) => sameType(o, n.outputs[i]!))) {
      dups.set(n, kept);
      n.outputs.forEach((o, i) => subst.set(o, kept.outputs[i]!));
    } else if (!kept) scope.set(key, n);
  }
}

function sameType(a: Value, b: Value): boolean {
  return a.dtype === b.dtype && sameShape(a.shape, b.shape);
}
