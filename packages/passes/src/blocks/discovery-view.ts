/**
 * Block discovery on a sharded step: ring attention replaces each `attention` with partial
 * `attention_lse` ops (one per K/V block) merged by LSE, which discovery does not take for an
 * attention. The view renames them back, so a ring module has the same blocks, prologue and head
 * as the unsharded model; `orig` maps a view node to the module's own node.
 */
import { Graph, updateNode } from '@paradit/ir';
import type { Node } from '@paradit/ir';

export interface DiscoveryView {
  readonly graph: Graph;
  readonly orig: (n: Node) => Node;
}

export function discoveryView(g: Graph): DiscoveryView {
  if (!g.nodes.some((n) => n.op === 'attention_lse')) return { graph: g, orig: (n) => n };
  const nodes = g.nodes.map((n) => (n.op === 'attention_lse' ? updateNode(n, { op: 'attention' }) : n));
  const back = new Map<Node, Node>(nodes.map((n, i) => [n, g.nodes[i]!]));
  return { graph: new Graph(g.inputs, nodes, g.outputs, g.name), orig: (n) => back.get(n) ?? n };
}
