/**
 * fold-constants: evaluates at compile time every node whose inputs are all known, and replaces
 * its outputs by constants.
 *
 * analyze: one forward sweep. Shape and Size of a static shape fold from the type alone (the
 *          input's data is never read); other nodes fold when every input is a constant (or a
 *          value folded earlier in the sweep) of at most `foldMaxElements` elements, every output
 *          is static and within the limit too (Constant nodes: any size, their data exists already),
 *          and the op is pure (not Dropout, not If, not rank-dependent like shard_slice). The op
 *          rules' own `run` computes the values (through the reference interpreter, which also
 *          checks them against the inferred types). A view (Reshape/Squeeze/Unsqueeze/Flatten/
 *          Identity) of a larger constant folds to a lazily reshaped constant that shares the data,
 *          so big weights are never copied or loaded.
 * plan:    FoldPlan, one entry per folded node (printable with formatFoldPlan).
 * apply:   outputs of folded nodes are replaced by the new constants; the folded nodes are dropped;
 *          their readers are re-inferred (refine-types.ts), so a Reshape whose target just became
 *          a constant gets its static type.
 *
 * Requires: nothing. Ensures: with static shapes, no Shape/Size node remains and no node with
 * all-constant inputs remains unless a result would exceed the limit. Values are exactly what the
 * interpreter computes. Subgraphs are folded too (an If itself is not).
 *
 *     before:  %1 = Shape(%x) : i64[2]                    (%x: f32[2,8])
 *              %2 = Gather(%1, %one) {axis=0} : i64[]
 *              %3 = Unsqueeze(%2, %zero) : i64[1]
 *              %4 = Concat(%minus1, %3) {axis=0} : i64[2]
 *              %5 = Reshape(%x, %4) : f32[2,8]
 *     after:   %t = const i64[2] [-1, 8]
 *              %5 = Reshape(%x, %t) : f32[2,8]
 */
import { ConstData, Graph, Module, Node, OPS, Tensor, Value, formatType, isElided, isOpKind, numel, runGraph, tensorType } from '@paradit/ir';
import type { Pass } from './pass';
import { editGraph, hasSubgraphs } from './graph-edit';
import { VIEW_OPS, staticShapeOf } from './rewrite';
import { refineTypes } from './refine-types';

interface FoldEntry {
  readonly node: Node;
  /** How the outputs were found: from the input's type, by running the op, or as a view of a constant. */
  readonly how: 'shape' | 'evaluated' | 'view';
  /** One constant per output of the node. */
  readonly values: readonly Value[];
}

interface FoldPlan {
  readonly entries: readonly FoldEntry[];
}

/** Finds every node of `g` (and its subgraphs) that folds. */
export function planFoldConstants(g: Graph, opset: number, maxElements: number): FoldPlan {
  const entries: FoldEntry[] = [];
  analyzeGraph(g, opset, maxElements, new Map(), entries);
  return { entries };
}

/** Replaces folded outputs by their constants, drops the folded nodes, then refines the types of their readers. */
export function applyFoldPlan(g: Graph, plan: FoldPlan, opset: number): Graph {
  if (plan.entries.length === 0) return g;
  const subst = new Map<Value, Value>();
  const drop = new Set<Node>();
  const fresh = new Set<Value>();
  for (const e of plan.entries) {
    drop.add(e.node);
    e.node.outputs.forEach((o, i) => {
      subst.set(o, e.values[i]!);
      fresh.add(e.values[i]!);
    });
  }
  return refineTypes(editGraph(g, { subst, drop }), opset, fresh);
}

/** One line per folded node: `Shape 'n3' -> i64[2] = [1,64] (shape)`. */
export function formatFoldPlan(plan: FoldPlan): string {
  const lines = [`fold-constants: ${plan.entries.length} nodes fold`];
  for (const e of plan.entries) {
    const outs = e.values.map((v) => `${formatType(v.type)}${v.constant && v.constant.loaded ? ` = ${preview(v.constant.tensor())}` : ''}`);
    lines.push(`  ${e.node.label} -> ${outs.join(', ')} (${e.how})`);
  }
  return lines.join('\n');
}

export const foldConstants: Pass = {
  name: 'fold-constants',
  description: 'evaluates nodes whose inputs are all constants and replaces them by constants',
  run(m: Module, ctx) {
    const plan = planFoldConstants(m.graph, m.opset, ctx.options.foldMaxElements);
    ctx.instruments.report?.count('folded', plan.entries.length);
    return m.withGraph(applyFoldPlan(m.graph, plan, m.opset));
  },
};

// ---------------------------------------------------------------------------------------------

/** Values computed so far (folded node outputs); shared with subgraphs, which see outer values. */
type Known = Map<Value, Tensor>;

function analyzeGraph(g: Graph, opset: number, max: number, known: Known, entries: FoldEntry[], folded = new Map<Value, Value>()): void {
  for (const n of g.nodes) {
    if (hasSubgraphs(n)) {
      for (const sg of n.subgraphs()) analyzeGraph(sg, opset, max, known, entries, folded);
      continue;
    }
    if (n.op === 'Dropout') continue; // remove-noop-ops handles it; training mode is not a constant function
    if (isOpKind(n.op) && OPS[n.op].rankDependent) continue; // collectives and shard_slice depend on the rank, not only on their inputs
    const e = foldShape(n) ?? evaluate(n, opset, max, known) ?? foldView(n, folded);
    if (!e) continue;
    entries.push(e);
    // Later nodes still name the old outputs as inputs; they find the folded values here.
    e.node.outputs.forEach((o, i) => {
      const c = e.values[i]!;
      folded.set(o, c);
      if (c.constant!.loaded) known.set(o, c.constant!.tensor());
    });
  }
}

/** Shape(x) and Size(x) of a static shape, without reading x. */
function foldShape(n: Node): FoldEntry | undefined {
  if (n.op !== 'Shape' && n.op !== 'Size') return undefined;
  const x = n.inputs[0];
  const s = x ? staticShapeOf(x) : undefined;
  if (!s) return undefined;
  let t: Tensor;
  if (n.op === 'Size') t = Tensor.scalar('i64', numel(s));
  else {
    const r = s.length;
    const clamp = (a: number): number => Math.min(Math.max(a < 0 ? a + r : a, 0), r);
    const start = clamp(intAttr(n, 'start') ?? 0);
    const end = clamp(intAttr(n, 'end') ?? r);
    const dims = s.slice(start, Math.max(start, end));
    t = Tensor.from('i64', [dims.length], dims);
  }
  return entry(n, 'shape', [t]);
}

/** Runs n when all its inputs are known and small and its outputs are static and small. */
function evaluate(n: Node, opset: number, max: number, known: Known): FoldEntry | undefined {
  // A Constant node's data already exists (its attribute), so any size folds.
  const limit = n.op === 'Constant' ? Infinity : max;
  for (const o of n.outputs) {
    const s = staticShapeOf(o);
    if (!s || numel(s) > limit) return undefined;
  }
  const env = new Map<Value, Tensor>();
  for (const v of n.inputs) {
    if (!v) continue;
    const k = known.get(v);
    if (k) env.set(v, k);
    else if (!v.constant || isElided(v.constant)) return undefined;
    else {
      const s = staticShapeOf(v);
      if (!s || numel(s) > max) return undefined; // never load a big weight to fold a small result
    }
  }
  const outs = runGraph(new Graph([], [n], n.outputs, 'fold'), env, opset);
  return entry(n, 'evaluated', outs);
}

/** A view of a (possibly big, possibly not loaded) constant: a constant sharing its data. */
function foldView(n: Node, folded: ReadonlyMap<Value, Value>): FoldEntry | undefined {
  if (!VIEW_OPS.has(n.op) && n.op !== 'Identity') return undefined;
  const x0 = n.inputs[0];
  const x = x0 ? (folded.get(x0) ?? x0) : undefined;
  const out = n.outputs[0]!;
  const shape = staticShapeOf(out);
  if (!x || !x.constant || isElided(x.constant) || !shape || x.dtype !== out.dtype) return undefined;
  const src = x.constant;
  // Same bytes, so an external file range stays valid; other sources become a lazy inline view.
  const source = src.source.kind === 'external' ? src.source : ({ kind: 'inline' } as const);
  const data = new ConstData(tensorType(out.dtype, shape), source, () => src.tensor().reshape(shape));
  return { node: n, how: 'view', values: [new Value(data.type, out.name, data)] };
}

function entry(n: Node, how: FoldEntry['how'], tensors: readonly Tensor[]): FoldEntry {
  const values = n.outputs.map((o, i) => {
    const t = tensors[i]!;
    return new Value(o.type, o.name, ConstData.of(t));
  });
  return { node: n, how, values };
}

function intAttr(n: Node, name: string): number | undefined {
  const a = n.attrs[name];
  return a && a.kind === 'int' ? a.value : undefined;
}

function preview(t: Tensor): string {
  const xs = t.toArray().slice(0, 8);
  const body = xs.join(',') + (t.size > 8 ? ',...' : '');
  return t.rank === 0 ? body : `[${body}]`;
}
