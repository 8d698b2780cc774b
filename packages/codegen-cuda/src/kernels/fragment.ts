/**
 * emitFragment: the EmitFragment contract (kernel-types.ts) for every non-GEMM, non-attention
 * fragment. Plan (plan.ts) -> groups (assign.ts) -> one kernel per group (pointwise, row, loop),
 * in dependency order, plus aliases for outputs that are views of a buffer.
 *
 * Assumptions the lowering must honour: every value buffer starts 16-byte aligned (aliases made
 * here keep that: their byte offsets are multiples of 16), and every value in a kernel's `writes`
 * gets its own buffer (internal values a fragment materializes included).
 */
import type { Graph, Node, Value } from '@paradit/ir';
import type { EmittedKernel, FragmentLowering } from '../kernel-types';
import { Planner } from './plan';
import { assignGroups } from './assign';
import type { Group } from './assign';
import type { Expr } from './expr';
import { visitExpr } from './expr';
import { emitPointwise } from './pointwise-kernel';
import { emitRow } from './row-kernel';
import { emitLoopReduce } from './loop-kernel';
import { emitScatter } from './scatter-kernel';
import { CodegenError } from './codegen-error';
import type { Params } from './eval';
import { KERNEL_HEADER } from './header';

export interface EmitOptions {
  readonly namePrefix: string;
  /** Default-domain opset of the model (Hardmax's axis meaning changed in 13). */
  readonly opset?: number;
}

function sanitize(s: string): string {
  const t = s.replace(/[^A-Za-z0-9_]/g, '_');
  return /^[A-Za-z_]/.test(t) ? t : `k_${t}`;
}

function nodesOf(exprs: readonly (Expr | undefined)[], extra: readonly Node[], order: Map<Node, number>): Node[] {
  const set = new Set<Node>(extra);
  const seen = new Set<number>();
  for (const e of exprs) if (e) visitExpr(e, (x) => x.nodes.forEach((n) => set.add(n)), seen);
  return [...set].filter((n) => order.has(n)).sort((a, b) => order.get(a)! - order.get(b)!);
}

interface Built {
  readonly entry: string;
  readonly source: string;
  readonly grid: number;
  readonly block: number;
  readonly params: Params;
  readonly covers: Node[];
}

type BuildGroup = Group | { readonly kind: 'scatter_copy'; readonly plan: Extract<Group, { kind: 'scatter' }>['plan'] };

function build(g: BuildGroup, name: string, order: Map<Node, number>): Built | undefined {
  switch (g.kind) {
    case 'pointwise': {
      const k = emitPointwise(name, g.sinks);
      return { entry: name, ...k, covers: nodesOf(g.sinks.map((s) => s.expr), [], order) };
    }
    case 'row': {
      if (!g.plan.reduces && g.epilogue.length === 0) return undefined; // nothing reads it
      const k = emitRow(name, g.plan, g.prologue, g.epilogue);
      const exprs = [g.plan.input, g.plan.weight, g.plan.bias, ...g.prologue.map((s) => s.expr), ...g.epilogue.map((s) => s.expr)];
      return { entry: name, ...k, covers: nodesOf(exprs, g.plan.nodes, order) };
    }
    case 'loop': {
      const k = emitLoopReduce(name, g.plan);
      return { entry: name, ...k, covers: nodesOf([g.plan.input], g.plan.nodes, order) };
    }
    case 'scatter': {
      const k = emitScatter(name, g.plan);
      return { entry: name, ...k, covers: nodesOf([g.plan.indices, g.plan.updates], [g.plan.node], order) };
    }
    case 'scatter_copy': {
      const k = emitPointwise(name, [g.plan.copy]);
      return { entry: name, ...k, covers: nodesOf([g.plan.copy.expr], [g.plan.node], order) };
    }
  }
}

function tagOf(g: BuildGroup): string {
  if (g.kind === 'scatter_copy') return `scatter_copy`;
  if (g.kind === 'row') return g.plan.op;
  if (g.kind === 'pointwise') return 'pointwise';
  if (g.kind === 'scatter') return `scatter_${g.plan.kind}`;
  if (g.plan.wide) return `wide_${g.plan.op}`;
  return g.plan.op.includes('softmax') ? `${g.plan.op}_axis` : `reduce_${g.plan.op}`;
}

/** Orders kernels so each runs after the kernels writing what it reads (stable). */
function schedule(ks: readonly EmittedKernel[]): EmittedKernel[] {
  const writers = new Map<Value, EmittedKernel[]>();
  for (const k of ks) for (const v of k.writes) writers.set(v, [...(writers.get(v) ?? []), k]);
  const done = new Set<EmittedKernel>();
  const out: EmittedKernel[] = [];
  const visiting = new Set<EmittedKernel>();
  const visit = (k: EmittedKernel): void => {
    if (done.has(k)) return;
    if (visiting.has(k)) throw new CodegenError(`internal: kernels ${k.entry} and its producers depend on each other (${k.covers.map((n) => n.label).join(', ')})`);
    visiting.add(k);
    for (const v of k.reads) for (const w of writers.get(v) ?? []) if (w !== k) visit(w);
    visiting.delete(k);
    done.add(k);
    out.push(k);
  };
  ks.forEach(visit);
  return out;
}

export function emitFragment(fragment: Graph, opts: EmitOptions): FragmentLowering {
  const order = new Map<Node, number>(fragment.nodes.map((n, i) => [n, i]));
  const planner = new Planner(fragment, opts.opset ?? 0);
  planner.run();
  const groups = assignGroups(planner);
  const prefix = sanitize(opts.namePrefix);
  const kernels: EmittedKernel[] = [];
  // A scatter is two kernels: the copy of data into the output, then the scatter. The copy's CPU
  // reference is the scatter node, which reads indices and updates: it is ordered after them.
  const expanded: BuildGroup[] = groups.flatMap((g): BuildGroup[] => (g.kind === 'scatter' ? [{ kind: 'scatter_copy', plan: g.plan }, g] : [g]));
  expanded.forEach((g) => {
    const name = `${prefix}_k${kernels.length}_${tagOf(g)}`;
    const b = build(g, name, order);
    if (!b) return;
    const writes = b.params.writes;
    const refReads = g.kind === 'scatter_copy' ? [g.plan.indices, g.plan.updates].flatMap((e) => (e.kind === 'leaf' ? [e.value] : [])) : [];
    kernels.push({
      entry: b.entry,
      source: `${KERNEL_HEADER}\n${b.source}`,
      grid: [b.grid, 1, 1],
      block: [b.block, 1, 1],
      smem: 0,
      args: b.params.ordered().map((value) => ({ kind: 'value' as const, value })),
      covers: b.covers,
      reads: [...new Set([...b.params.reads, ...refReads])].filter((v) => !writes.includes(v)),
      writes,
    });
  });
  return {
    kernels: schedule(kernels),
    aliases: planner.aliases.map((a) => ({ value: a.value, of: a.of, byteOffset: a.byteOffset, covers: nodesOf([], a.nodes, order) })),
  };
}
