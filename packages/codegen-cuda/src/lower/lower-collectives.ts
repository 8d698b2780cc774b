/**
 * lower-collectives: puts a sharded module's context-parallel ops into the forms a plan runs.
 *
 * Requires: a module compiled for a mesh (passes' compileForMesh), after the dtype policy.
 * Ensures:
 *   - every all_to_all exchanges contiguous chunks: splitAxis = concatAxis = 0 on an operand whose
 *     axis 0 has groupSize parts; the packing before and the unpacking after are Reshape/Transpose
 *     nodes (canonicalize drops those that only move size-1 axes, e.g. Ulysses at batch 1);
 *   - every all_gather concatenates along axis 0 (a Transpose after it moves the gathered parts
 *     where the sharded axis was, unless every axis before it has size 1);
 *   - to_token_order / from_token_order are Gathers with constant indices (the padding of uneven
 *     shards reads a `fill` row appended by a Concat), which the fragment emitter fuses;
 *   - lse_merge is the fp32 elementwise formula (Max, Exp, Log, Where...) in one fused kernel.
 * Values are identical to the input module's, lse_merge up to fp32 rounding.
 *
 *   before: %o = all_to_all(%x: bf16[1,24,S,128]) {splitAxis=1, concatAxis=2, groupSize=2}
 *   after:  %p = Reshape(%x) : bf16[2,12,S,128]           (Transpose of a size-1 axis folded away)
 *           %e = all_to_all(%p) {splitAxis=0, concatAxis=0, groupSize=2} : bf16[2,12,S,128]
 *           %t = Transpose(%e) {perm=[1,0,2,3]} : bf16[12,2,S,128]
 *           %o = Reshape(%t) : bf16[1,12,2S,128]
 */
import { Graph, IrError, Module, Node, Tensor, Value, attrsOf, capturedValues, dtypeToOnnx, naturalToOrdered, orderedToNatural, updateNode } from '@paradit/ir';
import { opsWith } from '@paradit/ir';
import type { AttrValue, GraphBuilder, OpKind } from '@paradit/ir';
import { rebuildModule } from '@paradit/ir';
import type { ReplayCtx } from '@paradit/ir';
import type { Pass } from '@paradit/passes';

const int = (value: number): AttrValue => ({ kind: 'int', value });
const ints = (value: readonly number[]): AttrValue => ({ kind: 'ints', value: [...value] });
const dims = (v: Value): number[] => {
  if (v.shape.some((d) => typeof d !== 'number')) throw new IrError('E_UNSUPPORTED', `value '${v.name}' has a symbolic shape [${v.shape.join(',')}]; sharded plans need static shapes`);
  return v.shape as number[];
};
const normAxis = (a: number, r: number): number => (a < 0 ? a + r : a);

class Emit {
  private step = 0;
  constructor(
    readonly b: GraphBuilder,
    readonly name: string,
  ) {}
  add(op: string, ins: (Value | null)[], attrs: Record<string, AttrValue> = {}, outputName?: string): Value {
    return this.b.add(op, ins, attrs, { name: `${this.name}/${op.toLowerCase()}_${this.step++}`, ...(outputName ? { outputNames: [outputName] } : {}) })[0]!;
  }
  reshape(x: Value, shape: readonly number[]): Value {
    return this.add('Reshape', [x, this.b.constant(Tensor.from('i64', [shape.length], [...shape]))]);
  }
  transpose(x: Value, perm: readonly number[]): Value {
    return perm.every((p, i) => p === i) ? x : this.add('Transpose', [x], { perm: ints(perm) });
  }
  scalar(v: number): Value {
    return this.b.constant(Tensor.scalar('f32', v));
  }
}

/** True when the axes before `axis` all have size 1 (the axis is outermost in memory). */
const outermost = (shape: readonly number[], axis: number): boolean => shape.slice(0, axis).every((d) => d === 1);

/** What the layout choice of an all_to_all knows about its neighbours (old-graph nodes). */
interface Neighbours {
  /** x comes from a fused-kernel op (read only here): any layout change folds into that kernel. */
  readonly producerFusable: boolean;
  /** x = Transpose(y, perm) read only by this all_to_all: its perm. */
  readonly producerPerm?: readonly number[];
  /** x is an attention output read only by this all_to_all (the kernel can write it transposed). */
  readonly producerAttention: boolean;
  /** Every reader of the output is a fused-kernel op: the unpacking folds into its kernel. */
  readonly consumerFusable: boolean;
  /** The output's only reader is Transpose(out, perm): its perm. */
  readonly consumerPerm?: readonly number[];
  /** Every reader of the output is an attention (it folds a head swap into its strides). */
  readonly consumerAttention: boolean;
}

const HEAD_SWAP = [0, 2, 1, 3];
const same = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const inverse = (p: readonly number[]): number[] => {
  const q = new Array<number>(p.length);
  p.forEach((a, k) => (q[a] = k));
  return q;
};
const compose = (p: readonly number[], q: readonly number[]): number[] => q.map((a) => p[a]!); // Transpose(Transpose(x, p), q)
const isIdentity = (p: readonly number[]): boolean => p.every((a, i) => a === i);
const unitPrefix = (shape: readonly number[], k: number): boolean => shape.slice(0, k).every((d) => d === 1);

/** Ops whose kernels are not fused-kernel fragments (a layout change before or after them is a copy). */
const NOT_FUSED = opsWith('contraction', 'control', 'communicating', 'rankSlice', 'reshape', 'alias', 'transpose');
const isFusedKernelOp = (op: OpKind): boolean => !NOT_FUSED.has(op);

/**
 * Copy kernels a layout P costs around an all_to_all. The exchange buffer holds the chunks in
 * order P; the output is Transpose(out', P^-1) with out' the received chunks in order P. Packing
 * is a view when the split axis is outermost in order P, unpacking when the concat axis is; a
 * layout change next to a fused-kernel op folds into that kernel, one next to flash attention
 * folds into its strides (a head swap), one that cancels a neighbouring Transpose disappears.
 */
function layoutCost(P: readonly number[], D: readonly number[], O: readonly number[], s: number, c: number, nb: Neighbours): number {
  const Pinv = inverse(P);
  const packView = unitPrefix(P.map((a) => D[a]!), Pinv[s]!);
  const unpackView = unitPrefix(P.map((a) => O[a]!), Pinv[c]!);
  let producer = 1;
  if (nb.producerFusable) producer = 0;
  else if (packView && nb.producerAttention && same(P, HEAD_SWAP)) producer = 0;
  else if (packView && nb.producerPerm && isIdentity(compose(nb.producerPerm, P))) producer = 0;
  else if (packView && isIdentity(P)) producer = 0;
  let consumer = 1;
  if (nb.consumerFusable) consumer = 0;
  else if (unpackView) {
    if (nb.consumerPerm) consumer = isIdentity(compose(Pinv, nb.consumerPerm)) ? 0 : 1;
    else if (nb.consumerAttention) consumer = isIdentity(Pinv) || same(Pinv, HEAD_SWAP) ? 0 : 1;
    else consumer = isIdentity(Pinv) ? 0 : 1;
  }
  return producer + consumer;
}

function allToAll(n: Node, e: Emit, x: Value, nb: Neighbours): Value[] {
  const D = dims(x);
  const r = D.length;
  const at = attrsOf(n, 'all_to_all');
  const s = normAxis(at.splitAxis, r);
  const c = normAxis(at.concatAxis, r);
  const g = at.groupSize;
  const out = n.outputs[0]!;
  if (s === c && outermost(D, s)) return [e.b.add('all_to_all', [x], n.attrs, { name: n.name, outputNames: [out.name] })[0]!];
  const E = [...D];
  E[s] = D[s]! / g;
  const O = [...E];
  O[c] = g * E[c]!;
  // Candidate layouts: as is, the producer's layout, the consumer's layout; fewest copies wins.
  const ident = [...Array(r).keys()];
  const candidates = [ident, ...(nb.producerPerm ? [inverse(nb.producerPerm)] : []), ...(nb.consumerPerm ? [[...nb.consumerPerm]] : []), ...(r === 4 ? [HEAD_SWAP] : [])];
  const P = candidates.reduce((best, p) => (layoutCost(p, D, O, s, c, nb) < layoutCost(best, D, O, s, c, nb) ? p : best), ident);
  const Pinv = inverse(P);
  // Pack: x in order P (a head swap next to attention folds into its output strides), its split
  // axis (now at position ks) cut into (g, E_s), g moved in front (a view when ks is outermost).
  const xp = e.transpose(x, P);
  const DP = P.map((a) => D[a]!);
  const ks = Pinv[s]!;
  const split = e.reshape(xp, [...DP.slice(0, ks), g, E[s]!, ...DP.slice(ks + 1)]);
  const packed = e.transpose(split, [ks, ...[...Array(r + 1).keys()].filter((a) => a !== ks)]);
  const EP = P.map((a) => E[a]!);
  const attrs = { ...n.attrs, splitAxis: int(0), concatAxis: int(0) };
  const exchanged = e.b.add('all_to_all', [e.reshape(packed, [g, ...EP])], attrs, { name: n.name })[0]!;
  // Unpack: chunk i (axis 0) came from member i; it goes before the concat axis (position kc in
  // order P), merged with it; then back from order P to the output's own order.
  const kc = Pinv[c]!;
  const moved = e.transpose(exchanged, [...[...Array(kc).keys()].map((a) => a + 1), 0, ...[...Array(r - kc).keys()].map((a) => a + kc + 1)]);
  const OP = P.map((a) => O[a]!);
  const merged = e.reshape(moved, OP);
  if (isIdentity(P)) return [e.b.add('Identity', [merged], {}, { name: `${n.name}/unpack`, outputNames: [out.name] })[0]!];
  return [e.b.add('Transpose', [merged], { perm: ints(Pinv) }, { name: `${n.name}/unpack`, outputNames: [out.name] })[0]!];
}

function allGather(n: Node, e: Emit, x: Value): Value[] {
  const D = dims(x);
  const r = D.length;
  const at = attrsOf(n, 'all_gather');
  const a = normAxis(at.axis, r);
  const g = at.groupSize;
  const out = n.outputs[0]!;
  if (outermost(D, a)) return [e.b.add('all_gather', [x], { ...n.attrs, axis: int(a) }, { name: n.name, outputNames: [out.name] })[0]!];
  // Gather whole operands along a new axis 0, then move it before axis a and merge.
  const gathered = e.b.add('all_gather', [e.reshape(x, [1, ...D])], { ...n.attrs, axis: int(0) }, { name: n.name })[0]!;
  const perm = [...[...Array(a).keys()].map((k) => k + 1), 0, ...[...Array(r - a).keys()].map((k) => k + a + 1)];
  const moved = e.transpose(gathered, perm);
  const merged = [...D.slice(0, a), g * D[a]!, ...D.slice(a + 1)];
  return [e.b.add('Reshape', [moved, e.b.constant(Tensor.from('i64', [merged.length], merged))], {}, { name: `${n.name}/unpack`, outputNames: [out.name] })[0]!];
}

function segmentsOf(n: Node): { axis: number; segments: number[]; chunks: number } {
  const at = n.op === 'to_token_order' ? attrsOf(n, 'to_token_order') : attrsOf(n, 'from_token_order');
  return { axis: normAxis(at.axis, n.inputs[0]!.shape.length), segments: [...at.segments], chunks: at.chunks };
}

function gatherAxis(n: Node, e: Emit, x: Value, idx: Int32Array, axis: number): Value {
  const indices = e.b.constant(Tensor.from('i64', [idx.length], Array.from(idx)));
  return e.b.add('Gather', [x, indices], { axis: int(axis) }, { name: n.name, outputNames: [n.outputs[0]!.name] })[0]!;
}

function toTokenOrder(n: Node, e: Emit, x: Value): Value[] {
  const { axis, segments, chunks } = segmentsOf(n);
  const idx = orderedToNatural(segments, chunks);
  if (!idx.includes(-1)) return [gatherAxis(n, e, x, idx, axis)];
  // Padding positions read a fill row appended after the natural tokens.
  const D = dims(x);
  const { fill } = attrsOf(n, 'to_token_order');
  const rowShape = D.map((d, k) => (k === axis ? 1 : d));
  const value = e.b.constant(Tensor.from(x.dtype, [], [fill]));
  const row = e.add('Expand', [value, e.b.constant(Tensor.from('i64', [rowShape.length], rowShape))]);
  const padded = e.add('Concat', [x, row], { axis: int(axis) });
  const total = D[axis]!;
  return [gatherAxis(n, e, padded, idx.map((i) => (i < 0 ? total : i)), axis)];
}

function fromTokenOrder(n: Node, e: Emit, x: Value): Value[] {
  const { axis, segments, chunks } = segmentsOf(n);
  return [gatherAxis(n, e, x, naturalToOrdered(segments, chunks), axis)];
}

/**
 * lse_merge as fp32 arithmetic: m = max(l1, l2) (0 when both are -inf), w_i = exp(l_i - m),
 * s = w1 + w2, lse = m + log(s), o = (w1 o1 + w2 o2) / s (0 when s = 0: a fully masked row).
 * A fully masked partial has o_i = 0 and w_i = 0, so it adds nothing.
 */
function lseMerge(n: Node, e: Emit, ins: Value[]): Value[] {
  const [o1, l1, o2, l2] = ins as [Value, Value, Value, Value];
  const f32 = (v: Value): Value => (v.dtype === 'f32' ? v : e.add('Cast', [v], { to: int(dtypeToOnnx('f32')) }));
  const zero = e.scalar(0);
  const mx = e.add('Max', [l1, l2]);
  const m = e.add('Where', [e.add('IsInf', [mx]), zero, mx]);
  const w1 = e.add('Exp', [e.add('Sub', [l1, m])]);
  const w2 = e.add('Exp', [e.add('Sub', [l2, m])]);
  const s = e.add('Add', [w1, w2]);
  const lse = e.b.add('Add', [m, e.add('Log', [s])], {}, { name: `${n.name}/lse`, outputNames: [n.outputs[1]!.name] })[0]!;
  const axis = e.b.constant(Tensor.from('i64', [1], [-1]));
  const unsq = (v: Value): Value => e.add('Unsqueeze', [v, axis]);
  const safe = e.add('Where', [e.add('Equal', [s, zero]), e.scalar(1), s]);
  const num = e.add('Add', [e.add('Mul', [f32(o1), unsq(w1)]), e.add('Mul', [f32(o2), unsq(w2)])]);
  const o = e.b.add('Div', [num, unsq(safe)], {}, { name: `${n.name}/o`, outputNames: [n.outputs[0]!.name] })[0]!;
  return [o, lse];
}

/** Producers and readers of every value of the module (all graphs), for the layout choice. */
function neighbourhood(m: Module): (n: Node) => Neighbours {
  const producer = new Map<Value, Node>();
  const readers = new Map<Value, Node[]>();
  const visit = (nodes: readonly Node[]): void => {
    for (const n of nodes) {
      n.outputs.forEach((v) => producer.set(v, n));
      n.inputs.forEach((v) => v && readers.set(v, [...(readers.get(v) ?? []), n]));
      n.subgraphs().forEach((g) => {
        g.outputs.forEach((v) => readers.set(v, [...(readers.get(v) ?? []), n]));
        visit(g.nodes);
      });
    }
  };
  visit(m.graph.nodes);
  // A graph output is read by the caller too: it is never solely one node's, nor fused away.
  const isOutput = new Set<Value>(m.graph.outputs);
  const perm = (t: Node | undefined): readonly number[] | undefined => (t?.op === 'Transpose' && t.attrs['perm']?.kind === 'ints' ? t.attrs['perm'].value : undefined);
  return (n) => {
    const x = n.inputs[0]!;
    const y = n.outputs[0]!;
    const p = producer.get(x);
    const solelyMine = !isOutput.has(x) && (readers.get(x) ?? []).length === 1;
    const outReaders = isOutput.has(y) ? [] : (readers.get(y) ?? []);
    return {
      producerFusable: solelyMine && p !== undefined && isFusedKernelOp(p.op),
      ...(solelyMine && perm(p) ? { producerPerm: perm(p)! } : {}),
      producerAttention: solelyMine && p?.op === 'attention',
      consumerFusable: outReaders.length > 0 && outReaders.every((r) => isFusedKernelOp(r.op)),
      ...(outReaders.length === 1 && perm(outReaders[0]) ? { consumerPerm: perm(outReaders[0])! } : {}),
      consumerAttention: outReaders.length > 0 && outReaders.every((r) => (r.op === 'attention' || r.op === 'attention_lse') && r.inputs.indexOf(y) < 3),
    };
  };
}

function hook(n: Node, ctx: ReplayCtx, nb: (n: Node) => Neighbours): readonly Value[] | undefined {
  const ins = n.inputs.map((v) => (v ? ctx.map(v) : null)) as Value[];
  const e = new Emit(ctx.builder, n.name || n.op);
  switch (n.op) {
    case 'all_to_all':
      return allToAll(n, e, ins[0]!, nb(n));
    case 'all_gather':
      return allGather(n, e, ins[0]!);
    case 'to_token_order':
      return toTokenOrder(n, e, ins[0]!);
    case 'from_token_order':
      return fromTokenOrder(n, e, ins[0]!);
    case 'lse_merge':
      return lseMerge(n, e, ins);
    default:
      return undefined;
  }
}

const LOWERED: ReadonlySet<OpKind> = new Set<OpKind>(['all_to_all', 'all_gather', 'to_token_order', 'from_token_order', 'lse_merge']);

/** The module with its collectives in plan form (see the header); `m` itself when it has none. */
export function lowerCollectives(m: Module): Module {
  const any = (nodes: readonly Node[]): boolean => nodes.some((n) => LOWERED.has(n.op) || n.subgraphs().some((g) => any(g.nodes)));
  if (!any(m.graph.nodes)) return m;
  const nb = neighbourhood(m);
  const rebuilt = rebuildModule(m, { hook: (n, ctx) => hook(n, ctx, nb) });
  return rebuilt.withGraph(sinkCollectives(rebuilt.graph));
}

const COMMUNICATING = opsWith('communicating');
const LAYOUT = opsWith('reshape', 'alias', 'transpose');

/**
 * Moves each communicating node (with the layout changes that unpack its result) down to just
 * before the first other node that reads it (keeping their relative order), so the packing of the next collective (q, k, v of one attention) sits in the same run
 * of nodes as its producer and fuses into its kernel instead of being cut off by the collective
 * before it. The plan's schedule issues collectives early again (schedule.ts).
 */
function sinkCollectives(g: Graph): Graph {
  const pending: Node[] = [];
  const out: Node[] = [];
  const reads = (n: Node): Value[] => [...n.inputs.filter((v): v is Value => v !== null), ...n.subgraphs().flatMap((sg) => [...capturedValues(sg)])];
  for (const n0 of g.nodes) {
    const n = n0.subgraphs().length ? withSunkSubgraphs(n0) : n0;
    const needed = new Set(reads(n));
    const onPending = pending.some((p) => p.outputs.some((o) => needed.has(o)));
    // A collective, and the layout changes that unpack its result, wait with it.
    if (COMMUNICATING.has(n.op) || (onPending && LAYOUT.has(n.op))) {
      pending.push(n);
      continue;
    }
    const last = pending.reduce((k, p, i) => (p.outputs.some((o) => needed.has(o)) ? i : k), -1);
    if (last >= 0) out.push(...pending.splice(0, last + 1));
    out.push(n);
  }
  out.push(...pending);
  const outputsNeeded = out.length === g.nodes.length;
  return outputsNeeded && out.every((n, i) => n === g.nodes[i]) ? g : new Graph(g.inputs, out, g.outputs, g.name);
}

function withSunkSubgraphs(n: Node): Node {
  let changed = false;
  const attrs: Record<string, AttrValue> = {};
  for (const [k, a] of Object.entries(n.attrs)) {
    if (a.kind === 'graph') {
      const sg = sinkCollectives(a.value);
      changed ||= sg !== a.value;
      attrs[k] = { kind: 'graph', value: sg };
    } else attrs[k] = a;
  }
  return changed ? updateNode(n, { attrs }) : n;
}

export const lowerCollectivesPass: Pass = { name: 'lower-collectives', description: 'collectives in their contiguous plan forms (pack/unpack around them), token reorders as gathers, LSE merges as fp32 arithmetic', run: (m) => lowerCollectives(m) };
