/**
 * Site discovery shared by insert-all-to-all and insert-ring-attention: attention nodes in the
 * "gather keys" form shard-sequence leaves (q split on its sequence axis 2 over a mesh axis; k and
 * v each the output of an all_gather over that mesh axis on axis 2), and the gathers that become
 * dead once every such attention reads the local keys instead.
 */
import { Module, Node, Value, axisPlace, distFromPlaces, distOf, isPlainAxis } from '@paradit/ir';
import type { Dist } from '@paradit/ir';

export interface GatheredKeySite {
  readonly node: Node;
  readonly q: Value;
  /** Keys and values before their sequence gather (this rank's block). */
  readonly k: Value;
  readonly v: Value;
}

/** The input of the all_gather {meshAxis, axis: 2} that produced `x`, if that is how x was made. */
function gatherInput(producers: ReadonlyMap<Value, Node>, x: Value | null, meshAxis: string): Value | undefined {
  const g = x ? producers.get(x) : undefined;
  if (!g || g.op !== 'all_gather') return undefined;
  const a = g.attrs;
  return a.meshAxis?.kind === 'string' && a.meshAxis.value === meshAxis && a.axis?.kind === 'int' && a.axis.value === 2 ? g.inputs[0]! : undefined;
}

/** Attention nodes whose q is split over `meshAxis` on axis 2 and whose k and v are gathered over it. */
export function findGatheredKeySites(m: Module, meshAxis: string): GatheredKeySite[] {
  const producers = m.graph.producers();
  const sites: GatheredKeySite[] = [];
  for (const n of m.graph.nodes) {
    if (n.op !== 'attention') continue;
    const q = n.inputs[0]!;
    const k = gatherInput(producers, n.inputs[1]!, meshAxis);
    const v = gatherInput(producers, n.inputs[2]!, meshAxis);
    if (k && v && axisPlace(distOf(q.type.placement), 2).meshAxis === meshAxis) sites.push({ node: n, q, k, v });
  }
  return sites;
}

/** The key/value gathers of `sites` that nothing else reads (not other nodes, not graph outputs). */
export function deadKeyGathers(m: Module, sites: readonly GatheredKeySite[]): Set<Node> {
  const rewritten = new Set(sites.map((s) => s.node));
  const users = m.graph.users();
  const producers = m.graph.producers();
  const dead = new Set<Node>();
  for (const s of sites) {
    for (const x of [s.node.inputs[1]!, s.node.inputs[2]!]) {
      if ((users.get(x) ?? []).every((u) => rewritten.has(u)) && !m.graph.outputs.includes(x)) dead.add(producers.get(x)!);
    }
  }
  return dead;
}

/** An attention output's dist for queries placed `qd`: q's places on B, N and Sq (axes 0..2). */
export function attentionOutDist(qd: Dist): Dist {
  return distFromPlaces(new Map([0, 1, 2].map((a) => [a, axisPlace(qd, a)] as const).filter(([, p]) => !isPlainAxis(p))));
}
