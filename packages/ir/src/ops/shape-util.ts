/**
 * Helpers shared by the shape-op rule files (shape-*.ts): fresh symbolic dims, products of
 * possibly symbolic dims, shape-like operands that moved from attributes to inputs across
 * opsets, and index-dtype checks.
 *
 * A shape-like operand (Reshape's shape, Slice's starts, ...) is in one of three states at
 * compile time: absent, known (a constant or folded value), or present but unknown. Unknown
 * operands are legal (ONNX's node tests feed them as graph inputs): rules then keep what they can
 * (the rank, usually) and give the affected dims fresh symbols.
 */
import type { Dim, TensorType } from '../graph';
import type { Tensor } from '../tensor';
import type { InferCtx, RuleCtx, RunCtx } from './rule';

export type IntsOperand =
  | { readonly kind: 'absent' }
  | { readonly kind: 'known'; readonly values: readonly number[] }
  | { readonly kind: 'unknown'; readonly length: number | undefined };

const ABSENT: IntsOperand = { kind: 'absent' };

export function fmtShape(shape: readonly (Dim | number)[]): string {
  return `[${shape.join(',')}]`;
}

let anonCounter = 0;
const anonBases = new WeakMap<object, string>();

/**
 * A fresh symbolic dim for output dim `tag` of this node: "<node name>_<tag>". Names are derived
 * from the node name so re-inferring the same node gives the same symbols; unnamed nodes get a
 * per-node counter.
 */
export function freshDim(ctx: RuleCtx, tag: string | number): string {
  let base = ctx.node.name.replace(/[^A-Za-z0-9_]/g, '_');
  if (!base) {
    base = anonBases.get(ctx.node) ?? `${ctx.node.op.toLowerCase()}${++anonCounter}`;
    anonBases.set(ctx.node, base);
  }
  return `${base}_${tag}`;
}

/** Product of dims as a static factor times a list of symbols. */
interface DimProduct {
  readonly factor: number;
  readonly symbols: readonly string[];
}

export function dimProduct(dims: readonly Dim[]): DimProduct {
  let factor = 1;
  const symbols: string[] = [];
  for (const d of dims) {
    if (typeof d === 'number') factor *= d;
    else symbols.push(d);
  }
  return { factor, symbols: factor === 0 ? [] : symbols };
}

/** The product of `dims` as one dim: static, the lone symbol, or a fresh symbol. */
export function productDim(ctx: RuleCtx, dims: readonly Dim[], tag: string | number): Dim {
  const p = dimProduct(dims);
  if (p.symbols.length === 0) return p.factor;
  if (p.symbols.length === 1 && p.factor === 1) return p.symbols[0]!;
  return freshDim(ctx, tag);
}

/** Removes one occurrence of each of `sub` from `from`; undefined when `sub` is not contained. */
export function subtractSymbols(from: readonly string[], sub: readonly string[]): string[] | undefined {
  const rest = [...from];
  for (const s of sub) {
    const k = rest.indexOf(s);
    if (k < 0) return undefined;
    rest.splice(k, 1);
  }
  return rest;
}

export function needIndexDtype(ctx: RuleCtx, t: TensorType, what: string): void {
  if (t.dtype !== 'i32' && t.dtype !== 'i64') ctx.fail(`${what} must be i32 or i64, got ${t.dtype}`);
}

/** Length of a 1-D (or scalar, length 1) shape-like operand, undefined when symbolic. */
function operandLength(ctx: RuleCtx, t: TensorType, what: string): number | undefined {
  if (t.shape.length === 0) return 1;
  if (t.shape.length !== 1) ctx.fail(`${what} must be 1-D, got rank ${t.shape.length} ${fmtShape(t.shape)}`);
  const n = t.shape[0]!;
  return typeof n === 'number' ? n : undefined;
}

/** Reads shape-like input `i` at compile time. */
export function inputInts(ctx: InferCtx, i: number, what: string): IntsOperand {
  const t = ctx.inputs[i];
  if (t === undefined) return ABSENT;
  const length = operandLength(ctx, t, what);
  const v = ctx.values[i];
  if (v !== undefined) return { kind: 'known', values: v.toArray() };
  return { kind: 'unknown', length };
}

/**
 * A list of ints that opsets before `since` give as attribute `attr` and later opsets as input
 * `i` (Squeeze's axes, Split's split, Pad's pads...).
 */
export function attrOrInputInts(ctx: InferCtx, since: number, attr: string, i: number): IntsOperand {
  if (ctx.opset < since) {
    const a = ctx.attr.optInts(attr);
    return a ? { kind: 'known', values: a } : ABSENT;
  }
  return inputInts(ctx, i, `input ${i} (${attr})`);
}

/** Run-time counterpart of attrOrInputInts. */
export function runAttrOrInputInts(ctx: RunCtx, since: number, attr: string, i: number): readonly number[] | undefined {
  if (ctx.opset < since) return ctx.attr.optInts(attr);
  const t = ctx.inputs[i];
  return t ? t.toArray() : undefined;
}

/** Scalar value of a one-element tensor (Range's start, Trilu's k, OneHot's depth...). */
export function scalarOf(ctx: RuleCtx, t: Tensor, what: string): number {
  if (t.size !== 1) ctx.fail(`${what} must have exactly one element, got shape ${fmtShape(t.shape)}`);
  return t.data[0]!;
}

/** Normalizes a list of axes, failing on out-of-range and repeated ones. */
export function normAxes(ctx: RuleCtx, axes: readonly number[], rank: number, what = 'axes'): number[] {
  const out: number[] = [];
  for (const a of axes) {
    const n = a < 0 ? a + rank : a;
    if (n < 0 || n >= rank) ctx.fail(`${what} value ${a} is out of range for rank ${rank}`);
    if (out.includes(n)) ctx.fail(`${what} ${fmtShape(axes)} repeat axis ${n}`);
    out.push(n);
  }
  return out;
}

/** Reads an index (i32/i64 stored as numbers), wrapping negatives, and fails when out of range. */
export function wrapIndex(ctx: RuleCtx, idx: number, size: number, what: string): number {
  const k = idx < 0 ? idx + size : idx;
  if (!(k >= 0 && k < size)) ctx.fail(`${what} index ${idx} is out of range for a dim of size ${size}`);
  return k;
}
