/**
 * Applying a sharding plan: rebuilds the graph for one rank (every rank runs it, SPMD). Inputs
 * are resharded to what each node needs (shard/convert.ts), nodes are localized (local shapes,
 * chunk boundaries; shard/localize.ts) and rebuilt through the GraphBuilder, so every op's shape
 * rule re-checks the per-rank operands; each output's local shape is checked against its global
 * shape and dist. Placements are then written into the value types (stampPlacements).
 */
import { Graph, GraphBuilder, IrError, Module, Node, Value, capturedValues, distOf, formatDist, localShape, placementOf, tensorType, updateNode } from '@paradit/ir';
import type { Dist } from '@paradit/ir';
import { REPLICATED } from '@paradit/ir';
import { editGraph, mapSubgraphAttrs } from '../../graph-edit';
import type { ShardPlanData } from './plan';
import { makeConverter } from './convert';
import { localizeNode } from './localize';
import type { SizeOf } from './view';
import { globalShape, staticShapeOf } from './view';

export function applySharding(m: Module, plan: ShardPlanData, sizeOf: SizeOf): Module {
  const g = m.graph;
  const b = new GraphBuilder(m.opset);
  const val = new Map<Value, Value>();
  const dist = new Map<Value, Dist>();
  const conv = makeConverter(b, sizeOf, (v, d) => dist.set(v, d));
  const get = (v: Value): Value => val.get(v) ?? v;
  const distIn = (v: Value): Dist => dist.get(v) ?? distOf(v.type.placement);
  const glob = (v: Value): number[] => globalShape(staticShapeOf(v), distOf(v.type.placement), sizeOf);
  // Names of new nodes come from names already in the graph (never from value ids): printing stays stable.
  const label = (v: Value, what: string): string => v.name || what;

  g.inputs.forEach((v, i) => {
    const nv = b.input(v.name, v.type);
    const base = distOf(v.type.placement);
    const root = plan.inputRoots[i];
    dist.set(nv, base);
    const r = root ? conv.convert(nv, base, root, label(v, `input${i}`)) : nv;
    dist.set(r, root ?? base);
    val.set(v, r);
  });

  for (const step of plan.steps) {
    const n = step.node;
    const fillFor = (i: number, v: Value): number => (n.op.startsWith('attention') && i === 3 ? (v.dtype === 'bool' ? 1 : 0) : 0);
    const ins = n.inputs.map((v, i) => (v ? conv.convert(get(v), distIn(get(v)), step.need[i]!, `${n.name || n.op}.in${i}`, fillFor(i, v)) : null));
    const loc = localizeNode({
      b,
      node: n,
      opset: m.opset,
      inputs: ins,
      inShapes: n.inputs.map((v) => (v ? glob(v) : undefined)),
      need: step.need,
      outShapes: n.outputs.map(glob),
      outs: step.outs,
      sizeOf,
      record: (v, d) => dist.set(v, d),
      ...(step.lower ? { lower: step.lower } : {}),
    });
    let outs: Value[];
    if (loc.replace) outs = [...loc.replace];
    else {
      // Subgraphs (If) read outer values: point them at whole (replicated) versions on this rank.
      const captured = new Map<Value, Value>();
      for (const sg of n.subgraphs()) {
        for (const v of capturedValues(sg)) {
          const x = get(v);
          captured.set(v, conv.convert(x, distIn(x), REPLICATED, `${n.name || n.op}.captured`));
        }
      }
      const attrs = mapSubgraphAttrs(loc.attrs, (sg) => editGraph(sg, { subst: captured }));
      try {
        outs = b.add(n.op, loc.inputs, attrs, { name: n.name, numOutputs: n.outputs.length, outputNames: n.outputs.map((o) => o.name) });
      } catch (e) {
        throw new IrError('E_VERIFY', `${plan.pass}: the per-rank ${n.label} is invalid (${(e as Error).message}); inputs ${step.need.map(formatDist).join(' | ')}`, n.name);
      }
    }
    n.outputs.forEach((o, k) => {
      const nv = outs[k]!;
      const want = localShape(glob(o), step.outs[k]!, sizeOf);
      const got = staticShapeOf(nv);
      if (typeof want === 'string' || want.length !== got.length || want.some((d, j) => d !== got[j])) {
        throw new IrError('E_VERIFY', `${plan.pass}: ${n.label} output ${k} has per-rank shape [${got.join(',')}], expected ${typeof want === 'string' ? want : `[${want.join(',')}]`} for ${formatDist(step.outs[k]!)}`, n.name);
      }
      dist.set(nv, step.outs[k]!);
      const root = step.rooted[k];
      const r = root ? conv.convert(nv, step.outs[k]!, root, label(o, `${n.name || n.op}.out${k}`)) : nv;
      dist.set(r, root ?? step.outs[k]!);
      val.set(o, r);
    });
  }
  const outputs = g.outputs.map((v, k) => {
    const x = get(v);
    return conv.convert(x, distIn(x), REPLICATED, label(v, `output${k}`));
  });
  return m.withGraph(stampPlacements(b.build(outputs, g.name), (v) => dist.get(v) ?? REPLICATED));
}

/** The graph with every node output's type carrying its placement (new values where it changes). */
export function stampPlacements(g: Graph, distOfValue: (v: Value) => Dist): Graph {
  const subst = new Map<Value, Value>();
  const nodes = g.nodes.map((n) => {
    const inputs = n.inputs.map((v) => (v ? (subst.get(v) ?? v) : null));
    const outputs = n.outputs.map((o) => {
      const p = placementOf(distOfValue(o));
      const same = p === undefined ? o.type.placement === undefined : JSON.stringify(p) === JSON.stringify(o.type.placement);
      if (same) return o;
      const nv = new Value(tensorType(o.dtype, o.shape, p), o.name, o.constant);
      subst.set(o, nv);
      return nv;
    });
    const attrs = mapSubgraphAttrs(n.attrs, (sg) => editGraph(sg, { subst }));
    return updateNode(n, { inputs, outputs, attrs });
  });
  const outputs = g.outputs.map((v) => subst.get(v) ?? v);
  return new Graph(g.inputs, nodes, outputs, g.name);
}
