/**
 * insert-cache-gate, step 1 (analyze -> plan): where the first block ends, which nodes a cached
 * step skips, which values leave that region, and how each leaving value's "entering" value (the
 * same stream right after the first block) is formed.
 *
 * - Blocks come from discoverBlocks. On a module already compiled for a mesh the ring attention's
 *   `attention_lse` is shown to discovery as `attention` (a view; the module is untouched).
 * - The cached region R: nodes after the first block (block discovery's `afterFirst`) that depend
 *   on the first block's values, plus side nodes (modulation linears) whose every user is in R.
 *   Everything else before the gate stays before it; nodes reading R's values come after it.
 * - Leaving values: values of R read outside R (the head, graph outputs).
 * - Entering value of a leaving value L: L with every residual op `s + f(s)` on its path replaced
 *   by its skip operand s, through data-movement ops (Concat of FLUX's text and image streams,
 *   Slice, Reshape, ...), back to values that exist after the first block. So for FLUX's joint
 *   stream L = Concat(text, image) after the single-stream blocks, entering = Concat(text_1,
 *   image_1) of the first block's outputs: exactly ParaAttention's per-stream residuals.
 */
import { Graph, IrError, Node, updateNode } from '@paradit/ir';
import { opsWith } from '@paradit/ir';
import type { Value } from '@paradit/ir';
import { discoverBlocks } from '../blocks/discover';
import { discoveryView } from '../blocks/discovery-view';
import { GraphView } from '../blocks/graph-view';
import { findResidualOps } from '../blocks/residual';

/** Ops a skip path may pass through: they move data and never compute on it. */
const DATA_MOVEMENT = opsWith('movesData');

export interface CachePlan {
  readonly totalBlocks: number;
  /** Blocks a cached step does not run. */
  readonly skippedBlocks: number;
  /** Main stream entering and leaving the first block: r1 = mainOut - mainIn. */
  readonly mainIn: Value;
  readonly mainOut: Value;
  /** Nodes the computed branch runs (graph order). */
  readonly region: Node[];
  /** Nodes before the gate and after it (graph order). */
  readonly before: Node[];
  readonly after: Node[];
  readonly leaving: Value[];
  /** Data-movement nodes re-run on first-block values to form the entering values (graph order). */
  readonly enteringClones: Node[];
  /** Region values standing for a value that exists before the gate (residual skip chains). */
  readonly skipTo: ReadonlyMap<Value, Value>;
}

export function planCacheGate(g: Graph): CachePlan {
  const { graph: viewGraph, orig } = discoveryView(g);
  const report = discoverBlocks(viewGraph);
  if (report.blocks.length < 2) {
    throw new IrError(
      'E_INPUT',
      `First Block Cache needs at least two transformer blocks, but block discovery found ${report.blocks.length} in graph '${g.name}'; ` +
        'a block is a run of residual units starting at an attention (see `paradit inspect`), so the model may not be a DiT',
    );
  }
  const view = new GraphView(g);
  const residualSkip = new Map<Value, Value>();
  for (const r of findResidualOps(new GraphView(viewGraph))) residualSkip.set(r.node.outputs[0]!, r.skip);

  const block0 = report.blocks[0]!;
  const b0 = new Set(block0.nodes.map(orig));
  const mainIn = block0.streamInputs[report.mainStream]!;
  const mainOut = findMainOut(block0.streamOutputs, mainIn, residualSkip, view, b0);

  // The region: afterFirst nodes depending on the first block, then side nodes only they use.
  const afterFirst = report.afterFirst.map(orig);
  const fromBlock0 = new Set<Value>(block0.nodes.flatMap((n) => [...n.outputs]));
  const region = new Set<Node>();
  for (const n of afterFirst) {
    if (n.inputs.some((v) => v && fromBlock0.has(v))) {
      region.add(n);
      for (const o of n.outputs) fromBlock0.add(o);
    }
  }
  const graphOutputs = new Set(g.outputs);
  for (let i = afterFirst.length - 1; i >= 0; i--) {
    const n = afterFirst[i]!;
    if (region.has(n)) continue;
    const users = n.outputs.flatMap((o) => [...view.usersOf(o)]);
    if (users.length > 0 && users.every((u) => region.has(u)) && !n.outputs.some((o) => graphOutputs.has(o))) region.add(n);
  }

  // Before / after the gate: after = nodes outside the region that read region values.
  const regionValues = new Set<Value>([...region].flatMap((n) => [...n.outputs]));
  const tainted = new Set<Value>(regionValues);
  const before: Node[] = [];
  const after: Node[] = [];
  for (const n of g.nodes) {
    if (region.has(n)) {
      const late = n.inputs.find((v) => v && tainted.has(v) && !regionValues.has(v));
      if (late) throw new IrError('E_INPUT', `${n.label} in the cached region reads '${late.name}', which is computed after the last block; First Block Cache cannot gate this graph`, n.name);
      continue;
    }
    if (n.inputs.some((v) => v && tainted.has(v))) {
      if (b0.has(n)) throw new IrError('E_INPUT', `${n.label} of the first block reads a value of a later block; the blocks found are not in order`, n.name);
      after.push(n);
      for (const o of n.outputs) tainted.add(o);
    } else before.push(n);
  }
  const leaving: Value[] = [];
  const seen = new Set<Value>();
  const afterSet = new Set(after);
  for (const n of g.nodes) {
    if (!region.has(n)) continue;
    for (const o of n.outputs) {
      if (!seen.has(o) && (graphOutputs.has(o) || view.usersOf(o).some((u) => afterSet.has(u)))) {
        seen.add(o);
        leaving.push(o);
      }
    }
  }
  const { clones, skipTo } = traceEntering(leaving, region, residualSkip, view);
  return {
    totalBlocks: report.blocks.length,
    skippedBlocks: report.blocks.length - 1,
    mainIn,
    mainOut,
    region: g.nodes.filter((n) => region.has(n)),
    before,
    after,
    leaving,
    enteringClones: g.nodes.filter((n) => clones.has(n)),
    skipTo,
  };
}

/**
 * The first block's output on the main stream: the stream output whose residual chain inside the
 * block leads back to the main input; the last such one in graph order (intermediate residual
 * values a block also exports come earlier). The chain follows residual ops' skip operands and
 * the stream operand of any other `gated_residual` or same-typed `Add` (SD3's second attention
 * adds onto the stream although its branch reads the block input).
 */
function findMainOut(outs: readonly Value[], mainIn: Value, skip: ReadonlyMap<Value, Value>, view: GraphView, b0: ReadonlySet<Node>): Value {
  const memo = new Map<Value, boolean>();
  const onChain = (v: Value): boolean => {
    if (v === mainIn) return true;
    const known = memo.get(v);
    if (known !== undefined) return known;
    memo.set(v, false);
    const p = view.producer.get(v);
    let found = false;
    if (p && b0.has(p)) {
      const s = skip.get(v);
      const prev = s ? [s] : p.op === 'gated_residual' ? [p.inputs[0]] : p.op === 'Add' ? [...p.inputs] : [];
      found = prev.some((u) => u !== null && u !== undefined && u.dtype === v.dtype && u.shape.join(',') === v.shape.join(',') && onChain(u));
    }
    memo.set(v, found);
    return found;
  };
  const found = outs.filter(onChain).sort((a, b) => view.position.get(view.producer.get(a)!)! - view.position.get(view.producer.get(b)!)!);
  const last = found[found.length - 1];
  if (!last) {
    throw new IrError('E_INPUT', `the first block's outputs (${outs.map((v) => `'${v.name}'`).join(', ')}) include none on the main stream's residual chain from '${mainIn.name}'; First Block Cache cannot form r1 = out - in`);
  }
  return last;
}

/** Skip paths of the leaving values: which region nodes to re-run on first-block values. */
function traceEntering(
  leaving: readonly Value[],
  region: ReadonlySet<Node>,
  residualSkip: ReadonlyMap<Value, Value>,
  view: GraphView,
): { clones: Set<Node>; skipTo: Map<Value, Value> } {
  const clones = new Set<Node>();
  const skipTo = new Map<Value, Value>();
  const done = new Set<Value>();
  const visit = (v: Value, from: Value): void => {
    const p = view.producer.get(v);
    if (!p || !region.has(p) || done.has(v)) return;
    done.add(v);
    const s = residualSkip.get(v);
    if (s) {
      visit(s, from);
      skipTo.set(v, s);
      return;
    }
    if (!DATA_MOVEMENT.has(p.op)) {
      throw new IrError(
        'E_INPUT',
        `value '${from.name}' leaves the cached blocks, but its stream passes through ${p.label}, which is neither a residual op ` +
          '(s + f(s)) nor a data-movement op, so its value at the first block cannot be formed; First Block Cache cannot gate this graph',
        p.name,
      );
    }
    for (const i of p.inputs) if (i) visit(i, from);
    clones.add(p);
  };
  for (const v of leaving) visit(v, v);
  return { clones, skipTo };
}

/** One line per item, for tests and `--after insert-cache-gate` debugging. */
export function formatCachePlan(p: CachePlan): string {
  const name = (v: Value): string => v.name || `#${v.id}`;
  return [
    `blocks: ${p.totalBlocks} (a cached step skips ${p.skippedBlocks})`,
    `r1 = ${name(p.mainOut)} - ${name(p.mainIn)}`,
    `region: ${p.region.length} nodes; before the gate: ${p.before.length}; after: ${p.after.length}`,
    `leaving: ${p.leaving.map(name).join(', ')}`,
    `entering clones: ${p.enteringClones.map((n) => n.op).join(', ') || 'none'}`,
  ].join('\n');
}
