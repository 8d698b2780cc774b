/**
 * The vocabulary of local rewrites (the engine is in rewriter.ts).
 *
 * A rule is a small function `(node, view) => Rewrite | undefined` with a one-line `lhs -> rhs`
 * comment above it; `undefined` means "no match". It looks at the node and its neighbourhood
 * through the GraphView (producers, users, constant values) and never mutates anything. A Rewrite
 * says what replaces each output of the matched node: existing values (`replaceWith`) or values
 * made by new nodes (`rewriteTo`, whose callback gets a RewriteBuilder). The engine checks that
 * every replacement has exactly the type of the output it replaces.
 *
 *     // Transpose(Transpose(x, p), q) -> Transpose(x, p[q[i]])
 *     const composeTransposes: RewriteRule = (n, view) => {
 *       const inner = view.producerOf(n.inputs[0], 'Transpose');
 *       if (n.op !== 'Transpose' || !inner) return undefined;
 *       return rewriteTo((b) => b.op('Transpose', [inner.inputs[0]!], { perm: intsAttr(compose(...)) }));
 *     };
 */
import { Attrs, Dim, GraphBuilder, Node, OpKind, Tensor, Value } from '@paradit/ir';
import { opsWith } from '@paradit/ir';
import type { AddOptions } from '@paradit/ir';

/** What a rule sees of the graph it rewrites (always the current state, mid-rewrite included). */
export interface GraphView {
  /** Version of the default ONNX opset the graph follows. */
  readonly opset: number;
  /** The node defining v; undefined for graph inputs, constants and omitted inputs. */
  producer(v: Value | null | undefined): Node | undefined;
  /** The node defining v when it applies `op`. */
  producerOf(v: Value | null | undefined, op: OpKind): Node | undefined;
  /** Nodes reading v (each once, in no particular order; includes nodes whose subgraphs read v). */
  users(v: Value): readonly Node[];
  /** True when exactly one node reads v and v is not a graph output (safe to fuse away). */
  hasSingleUser(v: Value): boolean;
  isGraphOutput(v: Value): boolean;
  /** The data of a constant with at most `maxElements` elements (default 65536). */
  constant(v: Value | null | undefined, maxElements?: number): Tensor | undefined;
  /** A constant's values as plain numbers (shapes, axes, pads), when small. */
  ints(v: Value | null | undefined): number[] | undefined;
  /** The value of a constant whose elements all equal one number (a scalar or a splat), else undefined. */
  splat(v: Value | null | undefined): number | undefined;
}

/** Builds the replacement nodes of one rewrite; nodes are named after the matched node by default. */
export class RewriteBuilder extends GraphBuilder {
  constructor(
    opset: number,
    /** Name of the node being replaced: the provenance of everything built here. */
    readonly provenance: string,
  ) {
    super(opset);
  }

  override add(op: OpKind | string, inputs: readonly (Value | null | undefined)[], attrs: Attrs = {}, opts: AddOptions = {}): Value[] {
    return super.add(op, inputs, attrs, { ...opts, name: opts.name ?? this.provenance });
  }

  /** Adds a one-output node and returns its output. */
  op(op: OpKind, inputs: readonly (Value | null | undefined)[], attrs: Attrs = {}): Value {
    return this.add(op, inputs, attrs)[0]!;
  }

  /** An i64 vector constant (shapes, axes). */
  i64(values: readonly number[]): Value {
    return this.constant(Tensor.from('i64', [values.length], values));
  }

  /**
   * Reshape(x, shape) as a layout-preserving view. Uses allowzero=1 when the shape has zero
   * sizes (opset 14+) so a 0 means size 0, not "copy the input dim". Undefined when not expressible.
   */
  reshape(x: Value, shape: readonly number[]): Value | undefined {
    const hasZero = shape.includes(0);
    if (hasZero && this.opset < 14) return undefined;
    return this.op('Reshape', [x, this.i64(shape)], hasZero ? { allowzero: { kind: 'int', value: 1 } } : {});
  }
}

export type Rewrite =
  /** Each output of the matched node is replaced by the value at its index (itself = keep it). */
  | { readonly kind: 'values'; readonly values: readonly Value[] }
  /** New nodes are built; the callback returns one replacement per output (or undefined: give up). */
  | { readonly kind: 'build'; readonly build: (b: RewriteBuilder) => Value | readonly Value[] | undefined };

export type RewriteRule = (node: Node, view: GraphView) => Rewrite | undefined;

/** Replaces the matched node's outputs by existing values, one per output. */
export function replaceWith(...values: Value[]): Rewrite {
  return { kind: 'values', values };
}

/** Replaces the matched node's outputs by values the callback builds. */
export function rewriteTo(build: (b: RewriteBuilder) => Value | readonly Value[] | undefined): Rewrite {
  return { kind: 'build', build };
}

// ---------------------------------------------------------------------------------------------
// Small helpers for rules.

export function intsAttr(values: readonly number[]): { readonly kind: 'ints'; readonly value: readonly number[] } {
  return { kind: 'ints', value: Object.freeze([...values]) };
}

export function intAttr(value: number): { readonly kind: 'int'; readonly value: number } {
  return { kind: 'int', value };
}

/** Dim lists equal element by element (symbols by name). */
export function sameShape(a: readonly Dim[], b: readonly Dim[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The shape when every dim is a number. */
export function staticShapeOf(v: Value): number[] | undefined {
  for (const d of v.shape) if (typeof d !== 'number') return undefined;
  return v.shape as number[];
}

/** Ops whose output holds the input's elements in the same row-major order (only the shape changes). */
export const VIEW_OPS = opsWith('reshape');

export function isView(n: Node | undefined): n is Node {
  return n !== undefined && VIEW_OPS.has(n.op);
}

/**
 * Follows input 0 upward through nodes applying `ops` in order, starting at v's producer:
 * `matchChain(view, v, 'Mul', 'Sigmoid')` matches v = Mul(Sigmoid(...), ...). Returns the nodes
 * (outermost first) or undefined. With `singleUse`, every inner link must have exactly one user.
 */
export function matchChain(view: GraphView, v: Value | null | undefined, ops: readonly OpKind[], singleUse = false): Node[] | undefined {
  const out: Node[] = [];
  let cur = v;
  for (let i = 0; i < ops.length; i++) {
    const n = view.producerOf(cur, ops[i]!);
    if (!n) return undefined;
    if (singleUse && i > 0 && !view.hasSingleUser(cur!)) return undefined;
    out.push(n);
    cur = n.inputs[0];
  }
  return out;
}
