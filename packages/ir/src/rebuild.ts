/**
 * Rebuilds a graph node by node through GraphBuilder, so every node's types are re-inferred from
 * (possibly new) input types and small known values fold. The dtype policy and static-shape
 * specialization are both "replay the graph with a hook": the hook may replace a node by values
 * of its own making (inserted Casts, an elided no-op) or let the default replay add it.
 *
 * Subgraphs (If branches) are rebuilt recursively with a child builder that sees the enclosing
 * graph's values through the same value map.
 *
 * This is the one way to rebuild a whole graph with types re-inferred (dev/builders.md): the
 * lowering passes in codegen-cuda use it, and a pass in packages/passes may too.
 */
import type { AttrValue, Attrs, Graph, Module, Node, TensorType, Value } from './graph';
import { GraphBuilder } from './builder';

export interface ReplayCtx {
  readonly builder: GraphBuilder;
  /** The new value standing for an old one (constants map to themselves unless replaced). */
  map(v: Value): Value;
  /** Adds `node` with new inputs (default: its inputs mapped) and returns the new outputs. */
  replay(node: Node, inputs?: readonly (Value | null)[], attrs?: Attrs): Value[];
  /** Rebuilds a subgraph in a child scope. */
  subgraph(g: Graph): Graph;
}

/** Returns the new outputs of `node`, or undefined to replay it unchanged (inputs mapped). */
export type NodeHook = (node: Node, ctx: ReplayCtx) => readonly Value[] | undefined;

export interface RebuildOptions {
  /** New types for (some of) the graph inputs, by position. */
  readonly inputTypes?: readonly (TensorType | undefined)[];
  readonly hook?: NodeHook;
  /** Replaces the graph outputs after replay (e.g. casts back to the interface dtype). */
  readonly finishOutputs?: (outputs: Value[], ctx: ReplayCtx) => Value[];
}

export function rebuildModule(m: Module, opts: RebuildOptions): Module {
  const g = rebuildGraph(m.graph, m.opset, opts, new Map(), undefined);
  return m.withGraph(g);
}

function rebuildGraph(g: Graph, opset: number, opts: RebuildOptions, outer: Map<Value, Value>, parent: GraphBuilder | undefined): Graph {
  const b = new GraphBuilder(opset, parent);
  const vmap = new Map<Value, Value>(outer);
  const top = parent === undefined;
  for (const [i, v] of g.inputs.entries()) {
    const t = top ? (opts.inputTypes?.[i] ?? v.type) : v.type;
    vmap.set(v, b.input(v.name, t));
  }
  const ctx: ReplayCtx = {
    builder: b,
    map(v: Value): Value {
      const n = vmap.get(v);
      if (n) return n;
      if (v.constant) return v;
      throw new Error(`rebuild: value '${v.name || v.id}' is used before it is defined`);
    },
    replay(node: Node, inputs?: readonly (Value | null)[], attrs?: Attrs): Value[] {
      const ins = inputs ?? node.inputs.map((v) => (v ? ctx.map(v) : null));
      return b.add(node.op, ins, attrs ?? mapSubgraphs(node.attrs, ctx), {
        name: node.name,
        numOutputs: node.outputs.length,
        outputNames: node.outputs.map((o) => o.name),
      });
    },
    subgraph(sg: Graph): Graph {
      return rebuildGraph(sg, opset, { hook: opts.hook }, vmap, b);
    },
  };
  for (const node of g.nodes) {
    const outs = opts.hook?.(node, ctx) ?? ctx.replay(node);
    node.outputs.forEach((o, i) => vmap.set(o, outs[i]!));
  }
  let outputs = g.outputs.map((v) => ctx.map(v));
  if (top && opts.finishOutputs) outputs = opts.finishOutputs(outputs, ctx);
  return b.build(outputs, g.name);
}

function mapSubgraphs(attrs: Attrs, ctx: ReplayCtx): Attrs {
  let changed = false;
  const out: Record<string, AttrValue> = {};
  for (const [k, a] of Object.entries(attrs)) {
    if (a.kind === 'graph') {
      out[k] = { kind: 'graph', value: ctx.subgraph(a.value) };
      changed = true;
    } else if (a.kind === 'graphs') {
      out[k] = { kind: 'graphs', value: a.value.map((g) => ctx.subgraph(g)) };
      changed = true;
    } else out[k] = a;
  }
  return changed ? out : attrs;
}
