/**
 * Matching helpers shared by the fuse-* passes: the guarded rewrite every fusion returns,
 * constants compared at the precision of their dtype, commutative operand orders, products
 * flattened into factor/term lists, reduction and softmax axes across opsets, and view chains
 * re-applied to another value.
 *
 * Every helper answers "no match" with undefined (or false) and never throws: a rule that cannot
 * prove its pattern leaves the graph alone.
 */
import { IrError, Value, isFloat } from '@paradit/ir';
import type { DType, Node } from '@paradit/ir';
import type { GraphView, Rewrite, RewriteBuilder } from './rewrite';
import { VIEW_OPS, rewriteTo, sameShape } from './rewrite';

/**
 * rewriteTo for fusions: when the replacement cannot be built (an op rule rejects the operands
 * the matcher assembled) or does not have exactly the types of the matched node's outputs (e.g.
 * symbolic dims that inference named differently), the rule gives up instead of failing the
 * pipeline: an unfused subgraph is still correct.
 */
export function fuseTo(n: Node, build: (b: RewriteBuilder) => Value | readonly Value[] | undefined): Rewrite {
  return rewriteTo((b) => {
    let r: Value | readonly Value[] | undefined;
    try {
      r = build(b);
    } catch (e) {
      if (e instanceof IrError && e.code === 'E_OP') return undefined;
      throw e;
    }
    if (r === undefined) return undefined;
    const vals = r instanceof Value ? [r] : r;
    const same = vals.length === n.outputs.length && vals.every((v, i) => v.dtype === n.outputs[i]!.dtype && sameShape(v.shape, n.outputs[i]!.shape));
    return same ? r : undefined;
  });
}

/** Relative tolerance for comparing a constant of dtype `d` with an exact target (2 ulps). */
function dtypeTolerance(d: DType): number {
  switch (d) {
    case 'f64':
      return 1e-12;
    case 'f32':
      return 2.5e-7;
    case 'f16':
      return 1e-3;
    case 'bf16':
      return 8e-3;
    default:
      return 0.07; // fp8: 3 mantissa bits at best
  }
}

/** True when x equals target up to the rounding of dtype d. */
export function near(x: number, target: number, d: DType): boolean {
  if (x === target) return true;
  return Math.abs(x - target) <= dtypeTolerance(d) * Math.max(Math.abs(target), 1e-30);
}

/** A splat constant's value (scalars and [1]-shaped constants included). */
export function scalarConst(view: GraphView, v: Value | null | undefined): number | undefined {
  if (!v || !v.constant) return undefined;
  return view.splat(v);
}

/** True when v is a splat constant near `target` at its dtype's precision. */
export function isConst(view: GraphView, v: Value | null | undefined, target: number): boolean {
  const x = scalarConst(view, v);
  return x !== undefined && near(x, target, v!.dtype);
}

/**
 * True when every element of v is provably 0: a zero splat constant, ConstantOfShape with value
 * 0, their Expand or float Cast, or a product by zero whose other factor is provably finite
 * (x * 0 is NaN for an infinite x).
 */
export function isZeroTensor(view: GraphView, v: Value, depth = 0): boolean {
  return constantFill(view, v, depth) === 0;
}

/** The one value every element of v provably has (splats, ConstantOfShape, Expand, Cast, Mul of those). */
function constantFill(view: GraphView, v: Value, depth: number): number | undefined {
  const c = scalarConst(view, v);
  if (c !== undefined || depth > 4) return c;
  const p = view.producer(v);
  if (!p) return undefined;
  if (p.op === 'ConstantOfShape') {
    const a = p.attrs['value'];
    return a === undefined ? 0 : a.kind === 'tensor' && a.value.size === 1 ? a.value.data[0] : undefined;
  }
  if (p.op === 'Expand' || (p.op === 'Cast' && isFloat(p.outputs[0]!.dtype))) return constantFill(view, p.inputs[0]!, depth + 1);
  if (p.op === 'Mul') {
    const a = constantFill(view, p.inputs[0]!, depth + 1);
    const b = constantFill(view, p.inputs[1]!, depth + 1);
    return a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) ? a * b : undefined;
  }
  return undefined;
}

/**
 * An Einsum that is a batched matmul of its two operands: `...ik,...kj->...ij` (transB false) or
 * `...ik,...jk->...ij` (transB true: the second operand is used transposed, k^T), with the same
 * batch letters in the same order on both operands and the output. Undefined for anything else.
 */
export function einsumMatMul(n: Node): { readonly transB: boolean } | undefined {
  const eq = n.attrs['equation'];
  if (n.op !== 'Einsum' || n.inputs.length !== 2 || !eq || eq.kind !== 'string') return undefined;
  const m = /^([a-zA-Z]*),([a-zA-Z]*)->([a-zA-Z]*)$/.exec(eq.value.replace(/\s+/g, ''));
  if (!m) return undefined;
  const [a, b, out] = [m[1]!, m[2]!, m[3]!];
  const r = a.length;
  if (r < 2 || b.length !== r || out.length !== r || new Set(a + b).size !== r + 1) return undefined;
  const batch = a.slice(0, r - 2);
  if (b.slice(0, r - 2) !== batch || out.slice(0, r - 2) !== batch) return undefined;
  const [i, k] = [a[r - 2]!, a[r - 1]!];
  const j = out[r - 1]!;
  if (out[r - 2] !== i || j === k || j === i) return undefined;
  if (b.slice(r - 2) === k + j) return { transB: false };
  if (b.slice(r - 2) === j + k) return { transB: true };
  return undefined;
}

/** The two input orders of a commutative binary node. */
export function orders(n: Node): [Value, Value][] {
  const a = n.inputs[0];
  const b = n.inputs[1];
  if (!a || !b) return [];
  return [
    [a, b],
    [b, a],
  ];
}

/** True when the binary node's output keeps the shape of operand `v` (the other one broadcasts into it). */
export function keepsShape(n: Node, v: Value): boolean {
  return sameShape(n.outputs[0]!.shape, v.shape);
}

/** A product flattened into a constant factor and non-constant factors (in a stable order). */
export interface Product {
  readonly factor: number;
  readonly terms: readonly Value[];
}

/**
 * Flattens v into factor * product(terms) through Mul, Div by a constant, and Neg, descending
 * only into single-use inner nodes (so fusing them duplicates nothing). Broadcasting is allowed:
 * callers compare the terms they expect.
 */
export function flattenProduct(view: GraphView, v: Value, maxDepth = 6): Product {
  let factor = 1;
  const terms: Value[] = [];
  const visit = (x: Value, depth: number, root: boolean): void => {
    const c = scalarConst(view, x);
    if (c !== undefined) {
      factor *= c;
      return;
    }
    const p = view.producer(x);
    const inner = p && depth < maxDepth && (root || view.hasSingleUser(x));
    if (inner && p.op === 'Mul') {
      visit(p.inputs[0]!, depth + 1, false);
      visit(p.inputs[1]!, depth + 1, false);
      return;
    }
    if (inner && p.op === 'Div') {
      const d = scalarConst(view, p.inputs[1]);
      if (d !== undefined && d !== 0) {
        factor /= d;
        visit(p.inputs[0]!, depth + 1, false);
        return;
      }
    }
    if (inner && p.op === 'Neg') {
      factor = -factor;
      visit(p.inputs[0]!, depth + 1, false);
      return;
    }
    terms.push(x);
  };
  visit(v, 0, true);
  return { factor, terms };
}

/** The axes a Reduce* node reduces (attribute before opset 18, input 1 from 18), normalized; undefined when unknown. */
export function reduceAxes(view: GraphView, n: Node): number[] | undefined {
  const rank = n.inputs[0]!.shape.length;
  let axes: readonly number[] | undefined;
  const attr = n.attrs['axes'];
  if (attr && attr.kind === 'ints') axes = attr.value;
  else if (n.inputs[1]) axes = view.ints(n.inputs[1]);
  else {
    const noop = n.attrs['noop_with_empty_axes'];
    if (noop && noop.kind === 'int' && noop.value === 1) return undefined;
    axes = Array.from({ length: rank }, (_, i) => i);
  }
  if (!axes) return undefined;
  return axes.map((a) => (a < 0 ? a + rank : a));
}

/** True when n is a ReduceMean over exactly the last axis with keepdims=1. */
export function isMeanOverLastAxis(view: GraphView, n: Node | undefined): n is Node {
  if (!n || n.op !== 'ReduceMean') return false;
  const keep = n.attrs['keepdims'];
  if (keep && keep.kind === 'int' && keep.value === 0) return false;
  const axes = reduceAxes(view, n);
  const rank = n.inputs[0]!.shape.length;
  return axes !== undefined && axes.length === 1 && axes[0] === rank - 1;
}

/** The input of `x^2` when sq is Pow(x, 2) or Mul(x, x). */
export function squaredValue(view: GraphView, sq: Value): Value | undefined {
  const p = view.producer(sq);
  if (p && p.op === 'Pow' && isConst(view, p.inputs[1], 2)) return p.inputs[0]!;
  if (p && p.op === 'Mul' && p.inputs[0] === p.inputs[1]) return p.inputs[0]!;
  return undefined;
}

/** The normalized axis of a Softmax/LogSoftmax node (default -1 from opset 13, 1 before). */
export function softmaxAxis(view: GraphView, n: Node): number {
  const rank = n.inputs[0]!.shape.length;
  const a = n.attrs['axis'];
  const axis = a && a.kind === 'int' ? a.value : view.opset >= 13 ? -1 : 1;
  return axis < 0 ? axis + rank : axis;
}

/** The view nodes (Reshape/Squeeze/Unsqueeze/Flatten) from v up to the first non-view value, outermost first. */
export function viewChain(view: GraphView, v: Value, max = 4): { readonly base: Value; readonly chain: readonly Node[] } {
  const chain: Node[] = [];
  let cur = v;
  for (let i = 0; i < max; i++) {
    const p = view.producer(cur);
    if (!p || !VIEW_OPS.has(p.op)) break;
    chain.push(p);
    cur = p.inputs[0]!;
  }
  return { base: cur, chain };
}

/** Re-applies a view chain (outermost first, as viewChain returns it) to another value of the base's shape. */
export function applyViewChain(b: RewriteBuilder, x: Value, chain: readonly Node[]): Value {
  let cur = x;
  for (let i = chain.length - 1; i >= 0; i--) {
    const n = chain[i]!;
    cur = b.add(n.op, [cur, ...n.inputs.slice(1)], n.attrs)[0]!;
  }
  return cur;
}
