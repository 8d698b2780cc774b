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
import { IrError, Module, Node, Tensor, Value, dtypeToOnnx, naturalToOrdered, orderedToNatural } from '@paradit/ir';
import type { AttrValue, GraphBuilder } from '@paradit/ir';
import { rebuildModule } from './rebuild';
import type { ReplayCtx } from './rebuild';

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

function attrInt(n: Node, k: string, dflt?: number): number {
  const a = n.attrs[k];
  if (a?.kind === 'int') return a.value;
  if (dflt !== undefined) return dflt;
  throw new IrError('E_OP', `${n.label}: missing attribute '${k}'`, n.name);
}

function allToAll(n: Node, e: Emit, x: Value): Value[] {
  const D = dims(x);
  const r = D.length;
  const s = normAxis(attrInt(n, 'splitAxis'), r);
  const c = normAxis(attrInt(n, 'concatAxis'), r);
  const g = attrInt(n, 'groupSize');
  const out = n.outputs[0]!;
  if (s === c && outermost(D, s)) return [e.b.add('all_to_all', [x], n.attrs, { name: n.name, outputNames: [out.name] })[0]!];
  // Pack: split axis s into (g, D_s/g) and move g to the front: [g, ...D with D_s/g].
  const E = [...D];
  E[s] = D[s]! / g;
  const split = e.reshape(x, [...D.slice(0, s), g, E[s]!, ...D.slice(s + 1)]);
  const packed = e.transpose(split, [s, ...[...Array(r + 1).keys()].filter((a) => a !== s)]);
  const attrs = { ...n.attrs, splitAxis: int(0), concatAxis: int(0) };
  const exchanged = e.b.add('all_to_all', [e.reshape(packed, [g, ...E])], attrs, { name: n.name })[0]!;
  // Unpack: received chunk i (axis 0) is member i's part; concatenate along c: move axis 0 to
  // just before E's axis c and merge the two.
  const perm = [...[...Array(c).keys()].map((a) => a + 1), 0, ...[...Array(r - c).keys()].map((a) => a + c + 1)];
  const moved = e.transpose(exchanged, perm);
  const merged = [...E.slice(0, c), g * E[c]!, ...E.slice(c + 1)];
  return [e.b.add('Reshape', [moved, e.b.constant(Tensor.from('i64', [merged.length], merged))], {}, { name: `${n.name}/unpack`, outputNames: [out.name] })[0]!];
}

function allGather(n: Node, e: Emit, x: Value): Value[] {
  const D = dims(x);
  const r = D.length;
  const a = normAxis(attrInt(n, 'axis'), r);
  const g = attrInt(n, 'groupSize');
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
  const seg = n.attrs['segments'];
  if (seg?.kind !== 'ints') throw new IrError('E_OP', `${n.label}: missing attribute 'segments'`, n.name);
  return { axis: normAxis(attrInt(n, 'axis'), n.inputs[0]!.shape.length), segments: [...seg.value], chunks: attrInt(n, 'chunks') };
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
  const fillAttr = n.attrs['fill'];
  const fill = fillAttr?.kind === 'float' ? fillAttr.value : 0;
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

function hook(n: Node, ctx: ReplayCtx): readonly Value[] | undefined {
  const ins = n.inputs.map((v) => (v ? ctx.map(v) : null)) as Value[];
  const e = new Emit(ctx.builder, n.name || n.op);
  switch (n.op) {
    case 'all_to_all':
      return allToAll(n, e, ins[0]!);
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

const LOWERED = new Set(['all_to_all', 'all_gather', 'to_token_order', 'from_token_order', 'lse_merge']);

/** The module with its collectives in plan form (see the header); `m` itself when it has none. */
export function lowerCollectives(m: Module): Module {
  const any = (nodes: readonly Node[]): boolean => nodes.some((n) => LOWERED.has(n.op) || n.subgraphs().some((g) => any(g.nodes)));
  return any(m.graph.nodes) ? rebuildModule(m, { hook }) : m;
}
