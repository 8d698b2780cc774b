/**
 * Matchers of fuse-rope: the pieces every rotary-embedding spelling is made of.
 *
 * - halves: x1 = x[..., :H/2], x2 = x[..., H/2:] (Slice, or Split into two equal parts);
 * - pair elements: x[..., 2p] and x[..., 2p+1], as element 0/1 of the last axis of
 *   xp = Reshape(x, [..., H/2, 2]) (Slice k:k+1, Gather k, Split [1,1], each maybe Squeezed) or
 *   as a stride-2 Slice of x itself;
 * - rotations: rotate_half(x) = Concat(-x2, x1) and the interleaved
 *   Reshape(Concat(Unsqueeze(-x_odd), Unsqueeze(x_even))) that FLUX's apply_rotary_emb exports;
 * - pair products: lo = x1*c - x2*s and hi = x1*s + x2*c (Wan, and per-pair implementations).
 */
import type { Node, Value } from '@paradit/ir';
import type { GraphView } from './rewrite';
import { flattenProduct, orders } from './fusion-match';

const INT_MAX = 2 ** 62;

/** One-axis Slice parameters, normalized against a static dim. */
export interface SliceSpec {
  readonly axis: number;
  readonly start: number;
  readonly end: number;
  readonly step: number;
}

function attrInts(n: Node, name: string): readonly number[] | undefined {
  const a = n.attrs[name];
  return a && a.kind === 'ints' ? a.value : undefined;
}

export function sliceSpec(view: GraphView, n: Node): SliceSpec | undefined {
  const x = n.inputs[0]!;
  const rank = x.shape.length;
  const old = view.opset < 10;
  const starts = old ? attrInts(n, 'starts') : view.ints(n.inputs[1]);
  const ends = old ? attrInts(n, 'ends') : view.ints(n.inputs[2]);
  const axes = old ? attrInts(n, 'axes') : n.inputs[3] ? view.ints(n.inputs[3]) : undefined;
  const steps = old ? undefined : n.inputs[4] ? view.ints(n.inputs[4]) : undefined;
  if (!starts || !ends || starts.length !== 1 || ends.length !== 1) return undefined;
  let axis = axes ? axes[0]! : 0;
  if (axes && axes.length !== 1) return undefined;
  if (axis < 0) axis += rank;
  const dim = x.shape[axis];
  const step = steps ? steps[0]! : 1;
  if (typeof dim !== 'number' || step <= 0) return undefined;
  const norm = (i: number): number => Math.min(Math.max(i < 0 ? i + dim : i, 0), dim);
  return { axis, start: norm(starts[0]!), end: norm(Math.min(ends[0]!, INT_MAX)), step };
}

/** The last axis's static size. */
function lastDim(v: Value): number | undefined {
  const d = v.shape[v.shape.length - 1];
  return typeof d === 'number' ? d : undefined;
}

/** Element `index` (0 or 1) of a size-2 axis of `src`, squeezed away or kept as size 1. */
interface AxisElement {
  readonly src: Value;
  readonly axis: number;
  readonly index: 0 | 1;
}

function axisAttr(n: Node, rank: number): number {
  const a = n.attrs['axis'];
  const axis = a && a.kind === 'int' ? a.value : 0;
  return axis < 0 ? axis + rank : axis;
}

/**
 * v = src[..., index, ...] along a size-2 axis: Gather(src, index), Slice(index:index+1) or one
 * of Split's two outputs, optionally followed by a Squeeze of that axis (torch's unbind).
 */
function axisElement(view: GraphView, v: Value): AxisElement | undefined {
  let elem = v;
  let p = view.producer(v);
  let squeezed: number | undefined;
  if (p && p.op === 'Squeeze') {
    const axes = view.opset < 13 ? attrInts(p, 'axes') : view.ints(p.inputs[1]);
    const rank = p.inputs[0]!.shape.length;
    if (!axes || axes.length !== 1) return undefined;
    squeezed = axes[0]! < 0 ? axes[0]! + rank : axes[0]!;
    elem = p.inputs[0]!;
    p = view.producer(elem);
  }
  if (!p) return undefined;
  const src = p.inputs[0]!;
  const rank = src.shape.length;
  let out: AxisElement | undefined;
  if (p.op === 'Gather' && squeezed === undefined) {
    const idx = view.ints(p.inputs[1]);
    const axis = axisAttr(p, rank);
    if (!idx || idx.length !== 1 || p.inputs[1]!.shape.length !== 0 || src.shape[axis] !== 2) return undefined;
    const k = idx[0]! < 0 ? idx[0]! + 2 : idx[0]!;
    out = k === 0 || k === 1 ? { src, axis, index: k } : undefined;
  } else if (p.op === 'Slice') {
    const sp = sliceSpec(view, p);
    if (sp && src.shape[sp.axis] === 2 && sp.step === 1 && sp.end - sp.start === 1) out = { src, axis: sp.axis, index: sp.start as 0 | 1 };
  } else if (p.op === 'Split' && p.outputs.length === 2) {
    const axis = axisAttr(p, rank);
    if (src.shape[axis] === 2) out = { src, axis, index: p.outputs[0] === elem ? 0 : 1 };
  }
  if (!out || (squeezed !== undefined && squeezed !== out.axis)) return undefined;
  return out;
}

/** The input of a Reshape that only splits the last axis of x [..., H] into `tail`. */
function unsplitLast(view: GraphView, src: Value, tail: readonly number[]): Value | undefined {
  const x = view.producerOf(src, 'Reshape')?.inputs[0];
  if (!x || x.shape.length !== src.shape.length - 1) return undefined;
  const H = tail.reduce((a, b) => a * b, 1);
  const lead = src.shape.slice(0, -2);
  const same = lead.every((d, i) => d === x.shape[i]) && x.shape[x.shape.length - 1] === H;
  return same && src.shape[src.shape.length - 2] === tail[0] && src.shape[src.shape.length - 1] === tail[1] ? x : undefined;
}

/**
 * Which half of x's last axis v is (0: first, 1: second): Slice or Split of the last axis, or
 * element k of axis -2 of Reshape(x, [..., 2, H/2]) (diffusers' use_real_unbind_dim=-2).
 */
export function halfOf(view: GraphView, v: Value): { readonly x: Value; readonly half: 0 | 1 } | undefined {
  const p = view.producer(v);
  if (!p) return undefined;
  const x = p.inputs[0]!;
  const H = lastDim(x);
  const rank = x.shape.length;
  if (p.op === 'Slice' && H !== undefined && H % 2 === 0) {
    const s = sliceSpec(view, p);
    if (!s || s.axis !== rank - 1 || s.step !== 1 || s.end - s.start !== H / 2) return undefined;
    return s.start === 0 ? { x, half: 0 } : s.start === H / 2 ? { x, half: 1 } : undefined;
  }
  if (p.op === 'Split' && p.outputs.length === 2 && H !== undefined && H % 2 === 0) {
    if (axisAttr(p, rank) === rank - 1 && lastDim(p.outputs[0]!) === H / 2 && lastDim(p.outputs[1]!) === H / 2) return { x, half: p.outputs[0] === v ? 0 : 1 };
  }
  const e = axisElement(view, v);
  const half = lastDim(v);
  if (!e || half === undefined || e.axis !== e.src.shape.length - 2 || v.shape.length !== e.src.shape.length - 1) return undefined;
  const orig = unsplitLast(view, e.src, [2, half]);
  return orig ? { x: orig, half: e.index } : undefined;
}

/** Where an element of a rotation pair comes from. */
interface PairElement {
  /** 'pairs': base is xp [..., H/2, 2]; 'strided': base is x [..., H] read with stride 2. */
  readonly kind: 'pairs' | 'strided';
  readonly base: Value;
  readonly index: 0 | 1;
}

/** True when `axes` names only the last axis of a rank-`rank` tensor. */
function isLastAxisList(axes: readonly number[] | undefined, rank: number): boolean {
  return axes !== undefined && axes.length === 1 && (axes[0] === -1 || axes[0] === rank - 1);
}

/** Element 0 or 1 of each rotation pair, squeezed ([..., H/2]) or kept ([..., H/2, 1]). */
export function pairElement(view: GraphView, v: Value): PairElement | undefined {
  const e = axisElement(view, v);
  if (e) return e.axis === e.src.shape.length - 1 ? { kind: 'pairs', base: e.src, index: e.index } : undefined;
  const p = view.producerOf(v, 'Slice');
  if (!p) return undefined;
  const src = p.inputs[0]!;
  const s = sliceSpec(view, p);
  const H = lastDim(src);
  if (!s || s.axis !== src.shape.length - 1 || H === undefined || H % 2 !== 0) return undefined;
  if (s.step === 2 && (s.start === 0 || s.start === 1) && s.end >= H - 1) return { kind: 'strided', base: src, index: s.start };
  return undefined;
}

/** Strips Neg / Mul(-1) and Unsqueeze(last axis) wrappers: the inner value and its sign. */
function unwrapSigned(view: GraphView, v: Value): { readonly inner: Value; readonly sign: number } {
  let cur = v;
  let sign = 1;
  for (let i = 0; i < 4; i++) {
    const p = view.producer(cur);
    if (p && p.op === 'Unsqueeze') {
      const axes = view.opset < 13 ? attrInts(p, 'axes') : view.ints(p.inputs[1]);
      if (!isLastAxisList(axes, cur.shape.length)) break;
      cur = p.inputs[0]!;
      continue;
    }
    if (p && (p.op === 'Neg' || p.op === 'Mul')) {
      const prod = flattenProduct(view, cur, 1);
      if (prod.terms.length !== 1 || Math.abs(prod.factor) !== 1) break;
      sign *= prod.factor;
      cur = prod.terms[0]!;
      continue;
    }
    break;
  }
  return { inner: cur, sign };
}

/** x and the rotation style when r = rotate_half(x) or the interleaved rotation of x. */
export function rotationOf(view: GraphView, r: Value): { readonly x: Value; readonly style: 'rotate_half' | 'interleaved' } | undefined {
  let p = view.producer(r);
  const interleaved = p && (p.op === 'Reshape' || p.op === 'Flatten');
  if (interleaved) p = view.producer(p!.inputs[0]);
  if (!p || p.op !== 'Concat' || p.inputs.length !== 2) return undefined;
  const a = p.attrs['axis'];
  const rank = p.outputs[0]!.shape.length;
  if (!a || a.kind !== 'int' || (a.value < 0 ? a.value + rank : a.value) !== rank - 1) return undefined;
  const first = unwrapSigned(view, p.inputs[0]!);
  const second = unwrapSigned(view, p.inputs[1]!);
  if (first.sign !== -1 || second.sign !== 1) return undefined;
  if (!interleaved) {
    const h2 = halfOf(view, first.inner);
    const h1 = halfOf(view, second.inner);
    if (!h1 || !h2 || h2.half !== 1 || h1.half !== 0 || h1.x !== h2.x || !sameShape(h1.x, r)) return undefined;
    return { x: h1.x, style: 'rotate_half' };
  }
  const odd = pairElement(view, first.inner);
  const even = pairElement(view, second.inner);
  if (!odd || !even || odd.kind !== 'pairs' || even.kind !== 'pairs' || odd.base !== even.base || odd.index !== 1 || even.index !== 0) return undefined;
  const unpaired = view.producerOf(odd.base, 'Reshape')?.inputs[0];
  if (!unpaired || !sameShape(unpaired, r)) return undefined;
  return { x: unpaired, style: 'interleaved' };
}

function sameShape(a: Value, b: Value): boolean {
  return a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
}

/** lo = x1*c - x2*s and hi = x1*s + x2*c, with x1/x2 and the tables read off the products. */
export interface PairRotation {
  readonly x1: Value;
  readonly x2: Value;
  readonly cos: Value;
  readonly sin: Value;
}

function mulOperands(view: GraphView, v: Value): [Value, Value][] {
  const p = view.producerOf(v, 'Mul');
  return p && view.hasSingleUser(v) ? orders(p) : [];
}

export function pairRotation(view: GraphView, lo: Value, hi: Value, isFirst: (v: Value) => boolean): PairRotation | undefined {
  const sub = view.producerOf(lo, 'Sub');
  const add = view.producerOf(hi, 'Add');
  if (!sub || !add) return undefined;
  for (const [x1, cos] of mulOperands(view, sub.inputs[0]!)) {
    if (!isFirst(x1)) continue;
    for (const [x2, sin] of mulOperands(view, sub.inputs[1]!)) {
      if (isFirst(x2)) continue;
      // hi must be x1*sin + x2*cos in any order.
      const ok = orders(add).some(([a, b]) =>
        mulOperands(view, a).some(([u, w]) => u === x1 && w === sin) && mulOperands(view, b).some(([u, w]) => u === x2 && w === cos),
      );
      if (ok) return { x1, x2, cos, sin };
    }
  }
  return undefined;
}
