/**
 * Rebuilding a placed (per-rank) graph with a few nodes replaced: untouched nodes are copied as
 * they are (reading replaced values through a substitution), new nodes go through the
 * GraphBuilder (their shape rules re-check the per-rank operands) and get the dists the rewrite
 * states; `finish` writes those into the value types. Used by the local collective rewrites
 * (insert-all-to-all, insert-ring-attention).
 */
import { Graph, GraphBuilder, Module, Node, Value, distOf } from '@paradit/ir';
import type { AttrValue, Dist } from '@paradit/ir';
import { resolveValue, substituteNode } from '../../graph-edit';
import { stampPlacements } from './apply';
import { makeConverter } from './convert';
import type { Converter } from './convert';
import type { SizeOf } from './view';

export class PlacedRebuild {
  readonly b: GraphBuilder;
  readonly conv: Converter;
  private readonly dists = new Map<Value, Dist>();
  private readonly subst = new Map<Value, Value>();

  constructor(
    private readonly m: Module,
    sizeOf: SizeOf,
  ) {
    this.b = new GraphBuilder(m.opset);
    this.conv = makeConverter(this.b, sizeOf, (v, d) => this.dists.set(v, d));
  }

  dist(v: Value): Dist {
    return this.dists.get(v) ?? distOf(v.type.placement);
  }

  /** The value that now stands for `v` of the original graph. */
  get(v: Value): Value {
    return resolveValue(this.subst, v);
  }

  replace(old: Value, now: Value): void {
    this.subst.set(old, now);
  }

  copy(n: Node): void {
    this.b.addNode(substituteNode(n, this.subst));
  }

  add(op: string, inputs: readonly (Value | null)[], attrs: Record<string, AttrValue>, name: string, dists: readonly Dist[]): Value[] {
    const outs = this.b.add(op, inputs, attrs, { name, numOutputs: dists.length });
    outs.forEach((o, i) => this.dists.set(o, dists[i]!));
    return outs;
  }

  reshard(x: Value, to: Dist, name: string, fill = 0): Value {
    return this.conv.convert(x, this.dist(x), to, name, fill);
  }

  finish(): Module {
    const g = this.m.graph;
    const built = this.b.build(g.outputs.map((v) => this.get(v)), g.name);
    const graph = new Graph(g.inputs, built.nodes, built.outputs, g.name);
    return this.m.withGraph(stampPlacements(graph, (v) => this.dist(v)));
  }
}
