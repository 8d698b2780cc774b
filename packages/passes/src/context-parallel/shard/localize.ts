/**
 * Per-rank versions of nodes whose operands or attributes hold sizes or token positions: shape
 * operands (Reshape, Expand) become the local output shape; a Slice or Split that cuts a token
 * axis at segment boundaries gets the boundaries of the local chunk; Shape/Size of a placed value
 * become constants of the global shape; attention over keys with padding tokens gets a mask that
 * excludes them. Everything else keeps its operands and attributes.
 */
import { GraphBuilder, Node, Tensor, Value, chunkLength, hasPadding } from '@paradit/ir';
import type { AttrValue, Attrs, Dist, OpKind, TokenOrder } from '@paradit/ir';
import { addTokenAxis, localShape, mapAxes, tokensAt } from '@paradit/ir';
import { i64 } from './convert';
import { lowerReduce } from './lower-reduce';
import type { SizeOf } from './view';

export interface LocalizeCtx {
  readonly b: GraphBuilder;
  readonly node: Node;
  readonly opset: number;
  /** Per-rank inputs (already resharded to `need`). */
  readonly inputs: readonly (Value | null)[];
  /** Global input shapes and the dists the inputs now have. */
  readonly inShapes: readonly (readonly number[] | undefined)[];
  readonly need: readonly Dist[];
  readonly outShapes: readonly (readonly number[])[];
  readonly outs: readonly Dist[];
  readonly sizeOf: SizeOf;
  /** Records the dist of a value the localizer creates (for its placement). */
  record(v: Value, d: Dist): void;
  /** The plan's rewrite of this node, if any. */
  readonly lower?: 'all-reduce';
}

export interface Localized {
  readonly inputs: readonly (Value | null)[];
  readonly attrs: Attrs;
  /** Replaces the node by these values (one per output). */
  readonly replace?: readonly Value[];
}

type Localizer = (c: LocalizeCtx) => Localized;

function local(c: LocalizeCtx, shape: readonly number[], d: Dist): number[] {
  const s = localShape(shape, d, c.sizeOf);
  if (typeof s === 'string') throw new Error(`${c.node.label}: ${s}`);
  return s;
}

const keep: Localizer = (c) => ({ inputs: c.inputs, attrs: c.node.attrs });

/** Shape operand (input 1) = the local output shape. */
const shapeOperand: Localizer = (c) => {
  const ins = [...c.inputs];
  ins[1] = i64(c.b, local(c, c.outShapes[0]!, c.outs[0]!), `${c.node.name || c.node.op}.local_shape`);
  const attrs: Record<string, AttrValue> = { ...c.node.attrs };
  delete attrs.allowzero;
  return { inputs: ins, attrs };
};

/** Cumulative boundaries of a token order in natural and in local-chunk coordinates. */
function bounds(t: TokenOrder): { natural: number[]; chunk: number[] } {
  const natural = [0];
  const chunk = [0];
  for (const s of t.segments) {
    natural.push(natural[natural.length - 1]! + s);
    chunk.push(chunk[chunk.length - 1]! + chunkLength([s], t.chunks));
  }
  return { natural, chunk };
}

function toChunk(t: TokenOrder, x: number, n: number): number {
  const { natural, chunk } = bounds(t);
  const clamped = Math.min(Math.max(x < 0 ? x + n : x, 0), n);
  const i = natural.indexOf(clamped);
  return i >= 0 ? chunk[i]! : x;
}

/** The token order of a split axis of `need[0]` (stored, or one segment when trivial). */
function splitTokens(c: LocalizeCtx, axis: number): TokenOrder | undefined {
  const d = c.need[0]!;
  const s = d.shards.find((x) => x.axis === axis);
  if (!s) return undefined;
  const own = tokensAt(d, axis);
  if (own) return own;
  return { axis, segments: [c.inShapes[0]![axis]!], chunks: c.sizeOf(s.meshAxis) };
}

const slice: Localizer = (c) => {
  const rank = c.inShapes[0]!.length;
  const norm = (a: number): number => (a < 0 ? a + rank : a);
  const axesOf = (count: number, axes: readonly number[] | undefined): number[] => Array.from({ length: count }, (_, k) => norm(axes?.[k] ?? k));
  const mapper = (axes: number[]) => (xs: readonly number[]): number[] =>
    xs.map((x, k) => {
      const t = splitTokens(c, axes[k]!);
      return t ? toChunk(t, x, c.inShapes[0]![axes[k]!]!) : x;
    });
  if (c.opset < 10) {
    const starts = (c.node.attrs.starts as { value: readonly number[] }).value;
    const ends = (c.node.attrs.ends as { value: readonly number[] }).value;
    const axes = axesOf(starts.length, c.node.attrs.axes?.kind === 'ints' ? c.node.attrs.axes.value : undefined);
    if (!axes.some((a) => splitTokens(c, a))) return keep(c);
    const map = mapper(axes);
    return { inputs: c.inputs, attrs: { ...c.node.attrs, starts: { kind: 'ints', value: map(starts) }, ends: { kind: 'ints', value: map(ends) } } };
  }
  const val = (i: number): number[] | undefined => c.inputs[i]?.constant?.tensor().toArray();
  const starts = val(1)!;
  const axes = axesOf(starts.length, val(3));
  if (!axes.some((a) => splitTokens(c, a))) return keep(c);
  const map = mapper(axes);
  const ins = [...c.inputs];
  ins[1] = i64(c.b, map(starts), `${c.node.name || c.node.op}.local_starts`);
  ins[2] = i64(c.b, map(val(2)!), `${c.node.name || c.node.op}.local_ends`);
  return { inputs: ins, attrs: c.node.attrs };
};

const split: Localizer = (c) => {
  const a = c.node.attrs.axis?.kind === 'int' ? c.node.attrs.axis.value : 0;
  const axis = a < 0 ? a + c.inShapes[0]!.length : a;
  if (!splitTokens(c, axis)) return keep(c);
  const sizes = c.outs.map((d, k) => {
    const t = tokensAt(d, axis) ?? { segments: [c.outShapes[k]![axis]!], chunks: splitTokens(c, axis)!.chunks };
    return chunkLength(t.segments, t.chunks);
  });
  const attrs: Record<string, AttrValue> = { ...c.node.attrs };
  delete attrs.num_outputs;
  if (c.opset < 13) return { inputs: [c.inputs[0]!], attrs: { ...attrs, split: { kind: 'ints', value: sizes } } };
  delete attrs.split;
  return { inputs: [c.inputs[0]!, i64(c.b, sizes, `${c.node.name || c.node.op}.local_split`)], attrs };
};

/** Shape/Size of a placed value: its global shape is static, so the answer is a constant. */
const shapeOf: Localizer = (c) => {
  const placed = c.need[0]!.shards.length > 0 || c.need[0]!.tokens !== undefined;
  if (!placed) return keep(c);
  const s = c.inShapes[0]!;
  if (c.node.op === 'Size') return { inputs: c.inputs, attrs: c.node.attrs, replace: [c.b.constant(Tensor.from('i64', [], [s.reduce((x, y) => x * y, 1)]))] };
  const r = s.length;
  const at = (name: string, def: number): number => {
    const v = c.node.attrs[name];
    const x = v?.kind === 'int' ? v.value : def;
    return Math.min(Math.max(x < 0 ? x + r : x, 0), r);
  };
  const dims = s.slice(at('start', 0), at('end', r));
  return { inputs: c.inputs, attrs: c.node.attrs, replace: [i64(c.b, dims, `${c.node.name || c.node.op}.global_shape`)] };
};

/** attention / attention_lse: keys in a token order with padding get a mask excluding the padding. */
const attentionMask: Localizer = (c) => {
  const t = c.need[1]!.tokens;
  if (!t || !hasPadding(t) || c.need[1]!.shards.some((s) => s.axis === 2)) return keep(c);
  const ins = [...c.inputs];
  const m = ins[3];
  const maskDist: Dist = c.need[3] && m ? c.need[3] : { shards: [] };
  ins[3] = withKeyPadding(c.b, m ?? undefined, maskDist, { ...t, axis: 3 }, c.node.name || c.node.op, c.record);
  return { inputs: ins, attrs: c.node.attrs };
};

/**
 * `mask` (placed `d`, key axis 3 in token order `t` or broadcast) combined with a constant that
 * masks out t's padding positions; without a mask, the constant itself.
 */
function withKeyPadding(b: GraphBuilder, mask: Value | undefined, d: Dist, t: TokenOrder, name: string, record: (v: Value, d: Dist) => void): Value {
  const tokens = { ...t, axis: 3 };
  const pad = validTokens(b, [1, 1, 1], tokens, name, record);
  if (!mask) return pad;
  const out = mask.dtype === 'bool'
    ? b.add('And', [mask, pad], {}, { name: `${name}/mask_padding` })[0]!
    : b.add('Where', [pad, mask, b.constant(Tensor.from(mask.dtype, [], [-Infinity]), `${name}.neg_inf`)], {}, { name: `${name}/mask_padding` })[0]!;
  // The result has the mask's placement (a 2-D mask keeps its rows' order), with the key axis in
  // t's order (the padding's is).
  const off = out.shape.length - mask.shape.length;
  record(out, addTokenAxis(mapAxes(d, (a) => a + off), 3, tokens));
  return out;
}

/**
 * A bool tensor true at real tokens and false at padding, with the token axis at `t.axis` in t's
 * order: `to_token_order` of all-true (its fill, false, lands exactly on the padding). `lead`
 * gives the sizes of the axes before the token axis (all 1), so it broadcasts.
 */
export function validTokens(b: GraphBuilder, lead: readonly number[], t: TokenOrder, name: string, record: (v: Value, d: Dist) => void, trail: readonly number[] = []): Value {
  const n = t.segments.reduce((x, y) => x + y, 0);
  const shape = [...lead, n, ...trail];
  const ones = b.constant(Tensor.from('bool', shape, new Array<number>(shape.reduce((x, y) => x * y, 1)).fill(1)), `${name}.all_tokens`);
  const attrs: Record<string, AttrValue> = {
    axis: { kind: 'int', value: t.axis },
    segments: { kind: 'ints', value: t.segments },
    chunks: { kind: 'int', value: t.chunks },
    fill: { kind: 'float', value: 0 },
  };
  const v = b.add('to_token_order', [ones], attrs, { name: `${name}/valid_tokens` })[0]!;
  record(v, { shards: [], tokens: t });
  return v;
}

const reduce: Localizer = (c) => lowerReduce(c) ?? keep(c);

const LOCALIZE: Partial<Record<OpKind, Localizer>> = {
  ReduceSum: reduce,
  ReduceMax: reduce,
  ReduceMean: reduce,
  Reshape: shapeOperand,
  Expand: shapeOperand,
  Slice: slice,
  Split: split,
  Shape: shapeOf,
  Size: shapeOf,
  attention: attentionMask,
  attention_lse: attentionMask,
};

export function localizeNode(c: LocalizeCtx): Localized {
  return (LOCALIZE[c.node.op] ?? keep)(c);
}
