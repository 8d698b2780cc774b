/**
 * Block membership beyond the residual bodies (steps 2b and 3 of block discovery).
 *
 * The residual bodies (residual.ts) hold every node on a path from a stream value to the branch
 * added back onto it. Some block nodes are on no such path:
 * - work that reads an earlier value of the stream than the one the branch is added to (SD3's
 *   second attention reads the stream before the first attention's residual): those nodes are on
 *   a path from the block to the block, so making each block convex takes them;
 * - work on a stream whose own residual is gone (the text stream in the last block of a model
 *   that drops the text output: its norm still feeds the joint feed-forward, or the joint
 *   attention of a block that only reads the text stream);
 * - side inputs only this block uses (its AdaLN modulation linears).
 * The last two are claimed by one rule: a node whose every user sits in one block joins it,
 * unless its value is a stream value itself (a residual's skip operand or result), which would
 * move a block boundary.
 */
import type { Node, Value } from '@paradit/ir';
import { GraphView, METADATA_OPS } from './graph-view';
import type { ResidualUnit } from './residual';

/** Adds to each block the unowned nodes on a path from one of its nodes to another. */
export function makeConvex(view: GraphView, owner: Map<Node, number>, blockCount: number): void {
  const members: Node[][] = Array.from({ length: blockCount }, () => []);
  for (const [n, b] of owner) members[b]!.push(n);
  members.forEach((nodes, b) => {
    if (nodes.length === 0) return;
    const inBlock = new Set(nodes);
    const positions = nodes.map((n) => view.position.get(n)!);
    const lo = Math.min(...positions);
    const hi = Math.max(...positions);
    const all = view.graph.nodes;
    // Forward: unowned nodes reached from the block within its span.
    const reached = new Set<Value>();
    const forward = new Set<Node>();
    for (let i = lo; i <= hi; i++) {
      const n = all[i]!;
      if (inBlock.has(n)) {
        for (const o of n.outputs) reached.add(o);
      } else if (!owner.has(n) && !METADATA_OPS.has(n.op) && n.inputs.some((v) => v && reached.has(v))) {
        forward.add(n);
        for (const o of n.outputs) reached.add(o);
      }
    }
    if (forward.size === 0) return;
    // Backward: of those, the ones that reach the block again.
    const needed = new Set<Value>();
    for (let i = hi; i >= lo; i--) {
      const n = all[i]!;
      const take = forward.has(n) && n.outputs.some((o) => needed.has(o));
      if (take) owner.set(n, b);
      if (take || inBlock.has(n)) for (const v of n.inputs) if (v) needed.add(v);
    }
  });
}

/** Values that carry a residual chain: skip operands and results of residual ops. */
export function streamValues(units: readonly ResidualUnit[]): Set<Value> {
  const out = new Set<Value>();
  for (const u of units) {
    for (const r of u.residuals) {
      out.add(r.skip);
      out.add(r.node.outputs[0]!);
    }
  }
  return out;
}

/**
 * A node that is neither a stream value nor a graph output, all of whose users sit in one block,
 * joins that block. Visited in reverse graph order so a chain of such nodes is claimed whole.
 */
export function claimSideNodes(view: GraphView, owner: Map<Node, number>, streams: Set<Value>): void {
  const outputs = new Set(view.graph.outputs);
  for (let i = view.graph.nodes.length - 1; i >= 0; i--) {
    const n = view.graph.nodes[i]!;
    if (owner.has(n) || n.outputs.some((o) => streams.has(o) || outputs.has(o))) continue;
    let block: number | undefined;
    let ok = true;
    for (const o of n.outputs) {
      for (const u of view.usersOf(o)) {
        const b = owner.get(u);
        if (b === undefined || (block !== undefined && b !== block)) ok = false;
        block = b;
      }
    }
    if (ok && block !== undefined) owner.set(n, block);
  }
}
