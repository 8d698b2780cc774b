/**
 * Cuts a graph into the fragments emitFragment takes: maximal runs of nodes that are not GEMMs,
 * attention or other ops handled elsewhere, after a reordering that runs those ops as early as
 * their inputs allow, so the pointwise/norm work between two GEMM waves lands in one fragment
 * (e.g. the q/k norms of both FLUX streams, their Concat and the rope). For tests, the GPU check
 * generator and benchmarks; the real lowering makes its own cut.
 */
import type { Value } from '@paradit/ir';
import { opsWith } from '@paradit/ir';
import { Graph } from '@paradit/ir';
import type { Node } from '@paradit/ir';

export const ELSEWHERE = opsWith('ownKernel');

/**
 * Topological order that takes a ready ELSEWHERE node (GEMM, attention...) before any other ready
 * node. Lowering fragments in this order puts e.g. both FLUX streams' q/k norms, their Concat and
 * the rope into one fragment, where they become one kernel (a node-order cut splits them).
 */
export function gemmFirstOrder(g: Graph): Node[] {
  const producer = g.producers();
  const users = g.users();
  const waiting = new Map<Node, number>();
  for (const n of g.nodes) waiting.set(n, new Set(n.inputs.filter((v): v is Value => !!v && producer.has(v)).map((v) => producer.get(v)!)).size);
  const ready = g.nodes.filter((n) => waiting.get(n) === 0);
  const order: Node[] = [];
  const pos = new Map<Node, number>(g.nodes.map((n, i) => [n, i]));
  while (ready.length) {
    ready.sort((a, b) => Number(ELSEWHERE.has(b.op)) - Number(ELSEWHERE.has(a.op)) || pos.get(a)! - pos.get(b)!);
    const n = ready.shift()!;
    order.push(n);
    const next = new Set<Node>();
    for (const o of n.outputs) for (const u of users.get(o) ?? []) next.add(u);
    for (const u of next) {
      const w = waiting.get(u)! - 1;
      waiting.set(u, w);
      if (w === 0) ready.push(u);
    }
  }
  return order;
}

export function cutFragments(g: Graph): Graph[] {
  const nodes = gemmFirstOrder(g);
  const runs: Node[][] = [];
  let cur: Node[] = [];
  for (const n of nodes) {
    if (ELSEWHERE.has(n.op)) {
      if (cur.length) runs.push(cur);
      cur = [];
    } else cur.push(n);
  }
  if (cur.length) runs.push(cur);
  const index = new Map<Node, number>(nodes.map((n, i) => [n, i]));
  const useAfter = new Map<Value, number>();
  nodes.forEach((n, i) => n.inputs.forEach((v) => v && useAfter.set(v, Math.max(i, useAfter.get(v) ?? -1))));
  const graphOut = new Set(g.outputs);
  return runs.map((run, r) => {
    const defined = new Set<Value>(run.flatMap((n) => n.outputs));
    const inputs: Value[] = [];
    for (const n of run) for (const v of n.inputs) if (v && !v.constant && !defined.has(v) && !inputs.includes(v)) inputs.push(v);
    const last = index.get(run[run.length - 1]!)!;
    const outputs = [...defined].filter((v) => graphOut.has(v) || (useAfter.get(v) ?? -1) > last);
    return new Graph(inputs, run, outputs, `fragment_${r}`);
  });
}
