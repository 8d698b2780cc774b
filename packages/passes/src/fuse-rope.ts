/**
 * fuse-rope: rotary position embeddings become `rope(x, cos, sin) {style, layout}`.
 *
 * Requires: constants folded (slice bounds, scatter indices and axes are constants).
 * Ensures: each matched rotary embedding of a rank-4 x is one op; cos/sin (computed in the graph
 *   or given as inputs) are used as they are, brought to rank 4 when lower (numpy alignment).
 *
 * Spellings (any operand order, Casts to fp32 around x allowed):
 *   x*cos + rotate_half(x)*sin                 rotate_half = Concat(-x[H/2:], x[:H/2])
 *   x*cos + interleaved(x)*sin                 FLUX: Reshape(Concat(Unsqueeze(-x_odd), Unsqueeze(x_even)))
 *   Concat(x1*c - x2*s, x1*s + x2*c)           per-pair tables, halves
 *   Reshape(Concat(Unsqueeze(lo), Unsqueeze(hi)))   per-pair tables, interleaved pairs
 *   ScatterND(ScatterND(_, 2p, T(lo)), 2p+1, T(hi))  Wan's out[..., 0::2] = lo; out[..., 1::2] = hi
 *
 *   Before:  %r = Reshape(Concat(Unsqueeze(Neg(%x_odd), -1), Unsqueeze(%x_even, -1)), [1,76,4,32])
 *            %y = Add(Mul(%x, %cos), Mul(%r, %sin))            # cos/sin [1,76,1,32]
 *   After:   %y = rope(%x, %cos, %sin) {style='interleaved', layout='BSNH'}
 */
import type { Node, Value } from '@paradit/ir';
import { isFloat } from '@paradit/ir';
import type { GraphView, RewriteBuilder, RewriteRule } from './rewrite';
import { intsAttr, sameShape } from './rewrite';
import { rewritePass } from './rewriter';
import { fuseTo, orders } from './fusion-match';
import { unsqueeze } from './attention-operands';
import { PairRotation, halfOf, pairElement, pairRotation, rotationOf } from './rope-match';

type Style = 'rotate_half' | 'interleaved';

function stripCasts(view: GraphView, v: Value): Value {
  let cur = v;
  for (let p = view.producerOf(cur, 'Cast'); p && isFloat(p.inputs[0]!.dtype); p = view.producerOf(cur, 'Cast')) cur = p.inputs[0]!;
  return cur;
}

function mulOperands(view: GraphView, v: Value): [Value, Value][] {
  const p = view.producerOf(v, 'Mul');
  return p && view.hasSingleUser(v) ? orders(p) : [];
}

/** The layout a rank-4 table implies: sequence on axis 1 (BSNH) or axis 2 (BNSH). */
function tableLayout(shape: readonly (number | string)[]): 'BSNH' | 'BNSH' {
  const r = shape.length;
  const a1 = r === 4 ? shape[1] : 1;
  const a2 = r >= 3 ? shape[r - 2] : r === 2 ? shape[0] : 1;
  return a1 !== 1 && a2 === 1 ? 'BSNH' : 'BNSH';
}

/** Checks x ([B,N,S,H]/[B,S,N,H], or [B,S,D] with rope over all of D) and the tables' width. */
function ropeOperandsOk(x: Value, tables: readonly Value[], width: 'full' | 'half'): boolean {
  const r = x.shape.length;
  const H = x.shape[r - 1];
  if ((r !== 3 && r !== 4) || typeof H !== 'number' || H % 2 !== 0 || !isFloat(x.dtype)) return false;
  return tables.every((t) => t.shape.length >= 1 && t.shape.length <= r && isFloat(t.dtype) && t.shape[t.shape.length - 1] === (width === 'full' ? H : H / 2));
}

/** t with leading unit axes up to rank r (numpy alignment made explicit). */
function toRank(b: RewriteBuilder, t: Value, r: number): Value {
  return t.shape.length === r ? t : unsqueeze(b, t, Array.from({ length: r - t.shape.length }, (_, i) => i));
}

/**
 * rope(x, cos, sin) with the tables brought to rank 4. A rank-3 x [B,S,D] (rope applied before
 * the head split, as LTX-Video does) runs as [B,S,1,D]: one "head" of width D, which is exactly
 * the pairing the graph computes.
 */
function buildRope(b: RewriteBuilder, x: Value, cos: Value, sin: Value, style: Style): Value {
  const attrs = (layout: string) => ({ style: { kind: 'string' as const, value: style }, layout: { kind: 'string' as const, value: layout } });
  if (x.shape.length === 4) {
    const c = toRank(b, cos, 4);
    return b.op('rope', [x, c, toRank(b, sin, 4)], attrs(tableLayout(c.shape)));
  }
  const x4 = unsqueeze(b, x, [2]);
  const y = b.op('rope', [x4, unsqueeze(b, toRank(b, cos, 3), [2]), unsqueeze(b, toRank(b, sin, 3), [2])], attrs('BSNH'));
  return b.opset < 13 ? b.op('Squeeze', [y], { axes: intsAttr([2]) }) : b.op('Squeeze', [y, b.i64([2])]);
}

// Add(Mul(x, cos), Mul(rot(x), sin)) -> rope(x, cos, sin) {style of rot}
const ropeFromRotation: RewriteRule = (n, view) => {
  if (n.op !== 'Add') return undefined;
  const out = n.outputs[0]!;
  for (const [m1, m2] of orders(n)) {
    for (const [xt, cos] of mulOperands(view, m1)) {
      if (!sameShape(xt.shape, out.shape)) continue;
      for (const [rt, sin] of mulOperands(view, m2)) {
        const rot = rotationOf(view, stripCasts(view, rt));
        if (!rot || rot.x !== stripCasts(view, xt) || !sameShape(rt.shape, out.shape) || !ropeOperandsOk(xt, [cos, sin], 'full')) continue;
        return fuseTo(n, (b) => buildRope(b, xt, cos, sin, rot.style));
      }
    }
  }
  return undefined;
};

/** x for per-pair products whose x1/x2 are pair elements (interleaved) of one tensor. */
function interleavedInput(view: GraphView, b: RewriteBuilder | undefined, pr: PairRotation, outShape: readonly (number | string)[]): Value | undefined {
  const e1 = pairElement(view, pr.x1);
  const e2 = pairElement(view, pr.x2);
  if (!e1 || !e2 || e1.base !== e2.base || e1.kind !== e2.kind || e1.index !== 0 || e2.index !== 1) return undefined;
  if (e1.kind === 'strided') return sameShape(e1.base.shape, outShape) ? e1.base : undefined;
  const src = view.producerOf(e1.base, 'Reshape')?.inputs[0];
  if (src && sameShape(src.shape, outShape)) return src;
  if (!outShape.every((d) => typeof d === 'number')) return undefined;
  return b ? b.reshape(e1.base, outShape as number[]) : e1.base;
}

const isPairFirst = (view: GraphView) => (v: Value): boolean => pairElement(view, v)?.index === 0;

// Concat(x1*c - x2*s, x1*s + x2*c) {axis=-1} -> rope(x, c, s) {rotate_half}, x1/x2 the halves of x
const ropeFromHalfPairs: RewriteRule = (n, view) => {
  if (n.op !== 'Concat' || n.inputs.length !== 2) return undefined;
  const [lo, hi] = n.inputs as [Value, Value];
  const rank = n.outputs[0]!.shape.length;
  const a = n.attrs['axis'];
  if (!a || a.kind !== 'int' || (a.value < 0 ? a.value + rank : a.value) !== rank - 1) return undefined;
  if (!view.hasSingleUser(lo) || !view.hasSingleUser(hi)) return undefined;
  const pr = pairRotation(view, lo, hi, (v) => halfOf(view, v)?.half === 0);
  if (!pr) return undefined;
  const h1 = halfOf(view, pr.x1);
  const h2 = halfOf(view, pr.x2);
  if (!h1 || !h2 || h1.x !== h2.x || h2.half !== 1 || !sameShape(h1.x.shape, n.outputs[0]!.shape) || !ropeOperandsOk(h1.x, [pr.cos, pr.sin], 'half')) return undefined;
  return fuseTo(n, (b) => buildRope(b, h1.x, pr.cos, pr.sin, 'rotate_half'));
};

/** lo/hi under Unsqueeze(last axis) (the stack), when each has a single use. */
function unstacked(view: GraphView, v: Value): Value | undefined {
  const u = view.producerOf(v, 'Unsqueeze');
  const inner = u?.inputs[0];
  if (!inner || !view.hasSingleUser(inner) || inner.shape.length !== v.shape.length - 1) return undefined;
  return inner;
}

// Reshape(Concat(Unsqueeze(x1*c - x2*s), Unsqueeze(x1*s + x2*c)) {axis=-1}) -> rope(x, c, s) {interleaved}
const ropeFromInterleavedPairs: RewriteRule = (n, view) => {
  if (n.op !== 'Reshape' && n.op !== 'Flatten') return undefined;
  const cat = view.producerOf(n.inputs[0], 'Concat');
  if (!cat || cat.inputs.length !== 2 || !view.hasSingleUser(n.inputs[0]!)) return undefined;
  const lo = unstacked(view, cat.inputs[0]!);
  const hi = unstacked(view, cat.inputs[1]!);
  if (!lo || !hi) return undefined;
  const pr = pairRotation(view, lo, hi, isPairFirst(view));
  const out = n.outputs[0]!;
  if (!pr || !interleavedInput(view, undefined, pr, out.shape)) return undefined;
  return fuseTo(n, (b) => {
    const x = interleavedInput(view, b, pr, out.shape);
    return x && ropeOperandsOk(x, [pr.cos, pr.sin], 'half') ? buildRope(b, x, pr.cos, pr.sin, 'interleaved') : undefined;
  });
};

/** One half of an interleaving scatter: which parity it writes, what, and through which Transpose. */
interface ScatterPart {
  readonly parity: 0 | 1;
  readonly value: Value;
  /** The Transpose that moved the last axis first (Wan's dynamo export); undefined for full indices. */
  readonly perm: readonly number[] | undefined;
}

/**
 * ScatterND(data, idx, upd) writing one parity of the last axis of the result:
 * - idx [H/2, 1] = [[p], [p+2], ...] and upd = Transpose(v, perm) with perm[0] = last axis, or
 * - idx [...v.shape, r] listing every coordinate, last one 2*j + p (TorchScript's index_put).
 */
function scatterPart(view: GraphView, n: Node): ScatterPart | undefined {
  const [data, idx, upd] = n.inputs as [Value, Value, Value];
  const red = n.attrs['reduction'];
  if (red && red.kind === 'string' && red.value !== 'none') return undefined;
  const t = view.constant(idx);
  if (!t) return undefined;
  const r = data.shape.length;
  if (t.shape.length === 2 && t.shape[1] === 1) {
    const first = t.data[0]!;
    if ((first !== 0 && first !== 1) || t.shape[0]! * 2 !== data.shape[0]) return undefined;
    for (let j = 0; j < t.size; j++) if (t.data[j] !== 2 * j + first) return undefined;
    const tr = view.producerOf(upd, 'Transpose');
    const perm = tr?.attrs['perm'];
    if (!tr || !perm || perm.kind !== 'ints' || perm.value[0] !== r - 1) return undefined;
    return { parity: first as 0 | 1, value: tr.inputs[0]!, perm: perm.value };
  }
  const us = upd.shape;
  if (t.shape.length !== us.length + 1 || t.shape[us.length] !== r || us.some((d, i) => t.shape[i] !== d) || us.length !== r) return undefined;
  if (data.shape.some((d, i) => d !== (i === r - 1 ? 2 * (us[i] as number) : us[i]))) return undefined;
  const parity = t.data[r - 1]!;
  if (parity !== 0 && parity !== 1) return undefined;
  const coord = new Array<number>(r).fill(0);
  for (let e = 0; e < t.size / r; e++) {
    for (let a = 0; a < r; a++) if (t.data[e * r + a] !== (a === r - 1 ? 2 * coord[a]! + parity : coord[a])) return undefined;
    for (let a = r - 1; a >= 0; a--) {
      if (++coord[a]! < (us[a] as number)) break;
      coord[a] = 0;
    }
  }
  return { parity, value: upd, perm: undefined };
}

// ScatterND(ScatterND(_, even, [Transpose](lo)), odd, [Transpose](hi)) -> [Transpose](rope(x, c, s) {interleaved})
const ropeFromScatter: RewriteRule = (n, view) => {
  const inner = view.producerOf(n.inputs[0], 'ScatterND');
  if (n.op !== 'ScatterND' || !inner || !view.hasSingleUser(n.inputs[0]!)) return undefined;
  const a = scatterPart(view, inner);
  const b = scatterPart(view, n);
  if (!a || !b || a.parity === b.parity || (a.perm ?? []).join() !== (b.perm ?? []).join()) return undefined;
  const [lo, hi] = a.parity === 0 ? [a.value, b.value] : [b.value, a.value];
  const pr = pairRotation(view, lo, hi, isPairFirst(view));
  if (!pr) return undefined;
  const out = n.outputs[0]!;
  const perm = a.perm;
  const xShape = perm ? perm.map((_, i) => out.shape[perm.indexOf(i)]!) : out.shape;
  if (!interleavedInput(view, undefined, pr, xShape)) return undefined;
  return fuseTo(n, (bld) => {
    const x = interleavedInput(view, bld, pr, xShape);
    if (!x || !ropeOperandsOk(x, [pr.cos, pr.sin], 'half')) return undefined;
    const y = buildRope(bld, x, pr.cos, pr.sin, 'interleaved');
    return perm ? bld.op('Transpose', [y], { perm: intsAttr(perm) }) : y;
  });
};

const WIDTH: Readonly<Record<string, number>> = { f16: 2, bf16: 2, f32: 4, f64: 8 };

// Cast(rope(Cast(x -> wider), cos, sin) -> dtype(x)) -> rope(x, cos, sin)
const narrowCastRope: RewriteRule = (n, view) => {
  if (n.op !== 'Cast') return undefined;
  const rope = view.producerOf(n.inputs[0], 'rope');
  if (!rope || !view.hasSingleUser(n.inputs[0]!)) return undefined;
  const up = view.producerOf(rope.inputs[0], 'Cast');
  const x = up?.inputs[0];
  if (!x || x.dtype !== n.outputs[0]!.dtype || (WIDTH[x.dtype] ?? 9) >= (WIDTH[up.outputs[0]!.dtype] ?? 0)) return undefined;
  return fuseTo(n, (b) => b.op('rope', [x, ...rope.inputs.slice(1)], rope.attrs));
};

const fuseRopeRules: readonly RewriteRule[] = [ropeFromRotation, ropeFromHalfPairs, ropeFromInterleavedPairs, ropeFromScatter, narrowCastRope];

export const fuseRope = rewritePass('fuse-rope', 'Fuses rotary position embeddings (rotate-half and interleaved spellings) into rope ops', fuseRopeRules);
