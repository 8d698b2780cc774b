/**
 * Layout tracing for fuse-attention: which elements of an ancestor tensor a value holds, in which
 * order, when it is reached through data-movement ops only (Reshape, Transpose, Squeeze,
 * Unsqueeze, Flatten) and multiplications by a scalar constant.
 *
 * The ancestor's axes are cut into atoms (an axis, or a factor of it after a Reshape splits it);
 * each dim of the traced value holds a run of atoms, outermost first. From that, fuse-attention
 * rebuilds the canonical [B,N,S,H] operand from the ancestor with at most one Transpose (often
 * none: the operand already exists), instead of stacking Transposes on the exporter's chain:
 *
 *   k [1,76,4,32] -Transpose(0,2,1,3)-> [1,4,76,32] -Reshape-> [4,76,32] -Transpose(0,2,1)-> [4,32,76]
 *     -Reshape-> [1,4,32,76]      traced: dims [] [n] [h] [s] over k's atoms s(76) n(4) h(32)
 *
 * An Expand/Tile that repeats a size-1 axis (repeat_kv) adds a repeat atom, so grouped-query
 * attention can be read off the heads axis. Size-1 axes carry no data and get no atoms.
 *
 * Sizes may be symbolic (dynamic-shape exports): an atom's size is a Dim, and a Reshape may
 * split or merge a symbolic dim with static factors when the names say exactly how
 * (fold-symbolic-dims.ts names products: [batch*4,S,8] -> [batch,4,S,8] splits atom batch*4 into
 * batch and 4). Anything that does not divide exactly for every value of the symbols (a static
 * dim out of a symbol, an unresolved fresh symbol) gives no trace.
 */
import { GraphBuilder, Node, Value } from '@paradit/ir';
import { opsWith } from '@paradit/ir';
import type { Dim } from '@paradit/ir';
import type { GraphView, RewriteBuilder } from './rewrite';
import { intsAttr, sameShape } from './rewrite';
import { derivedDim, divDims, productOfDims } from './fold-symbolic-dims';
import { scalarConst } from './fusion-match';

/**
 * A run of one source axis's elements, or (repeat) a new axis along which an Expand/Tile repeats
 * the data (repeat_kv). Identity matters: each atom appears once.
 */
export class Atom {
  constructor(
    readonly axis: number,
    readonly size: Dim,
    readonly repeat = false,
  ) {}
}

export interface LayoutTrace {
  /** The ancestor the traced value is a rearrangement of. */
  readonly src: Value;
  /** Atoms of each src axis, outermost first (none for size-1 axes). */
  readonly parts: readonly (readonly Atom[])[];
  /** Atoms held by each dim of the traced value, outermost first. */
  readonly dims: readonly (readonly Atom[])[];
  /** Product of the scalar constants multiplied in between src and the traced value. */
  readonly factor: number;
  /** Number of scale nodes (scalar Mul/Div) between src and the traced value. */
  readonly scaleOps: number;
}

const LAYOUT_OPS = opsWith('reshape', 'transpose');
/** Ops that may repeat data along size-1 axes (traced as repeat atoms). */
const REPEAT_OPS = opsWith('repeat');

/** The scalar factor a node multiplies its data operand by, when it is Mul/Div by a splat constant. */
export function scaleOf(view: GraphView, n: Node): { readonly data: Value; readonly factor: number } | undefined {
  if (n.op !== 'Mul' && n.op !== 'Div') return undefined;
  const [a, b] = n.inputs;
  if (!a || !b) return undefined;
  const out = n.outputs[0]!;
  const cb = scalarConst(view, b);
  if (cb !== undefined && sameShape(a.shape, out.shape)) return n.op === 'Mul' ? { data: a, factor: cb } : cb !== 0 ? { data: a, factor: 1 / cb } : undefined;
  const ca = n.op === 'Mul' ? scalarConst(view, a) : undefined;
  if (ca !== undefined && sameShape(b.shape, out.shape)) return { data: b, factor: ca };
  return undefined;
}

/** The chain of transparent nodes above v (outermost first) and the ancestors they read. */
function chainAbove(view: GraphView, v: Value, maxDepth: number): { nodes: Node[]; ancestors: Value[] } {
  const nodes: Node[] = [];
  const ancestors: Value[] = [v];
  let cur = v;
  for (let i = 0; i < maxDepth; i++) {
    const p = view.producer(cur);
    if (!p) break;
    let next: Value | undefined;
    if (LAYOUT_OPS.has(p.op) || REPEAT_OPS.has(p.op)) next = p.inputs[0]!;
    else next = scaleOf(view, p)?.data;
    if (!next) break;
    nodes.push(p);
    ancestors.push(next);
    cur = next;
  }
  return { nodes, ancestors };
}

/**
 * Regroups atoms (in order) into dims of the given sizes, splitting atoms where needed. Symbolic
 * sizes divide only exactly (divDims): "batch*4" takes atoms batch and 4, or splits an atom.
 */
function regroup(dims: readonly (readonly Atom[])[], shape: readonly Dim[], parts: Atom[][]): Atom[][] | undefined {
  const flat = dims.flat();
  const out: Atom[][] = [];
  let idx = 0;
  for (const d of shape) {
    if (d === 0) return undefined;
    const group: Atom[] = [];
    let need: Dim = d;
    while (need !== 1) {
      const a = flat[idx];
      if (!a) return undefined;
      const rest = divDims(need, a.size);
      const innerSize = rest === undefined ? divDims(a.size, need) : undefined;
      if (rest !== undefined) {
        group.push(a);
        need = rest;
        idx++;
      } else if (innerSize !== undefined) {
        const outer = new Atom(a.axis, need, a.repeat);
        const inner = new Atom(a.axis, innerSize, a.repeat);
        if (!a.repeat) {
          const list = parts[a.axis]!;
          list.splice(list.indexOf(a), 1, outer, inner);
        }
        group.push(outer);
        flat[idx] = inner;
        need = 1;
      } else return undefined;
    }
    out.push(group);
  }
  return idx === flat.length ? out : undefined;
}

/** Expand/Tile that only repeat size-1 axes (same rank): those dims get a repeat atom. */
function repeatAxes(view: GraphView, n: Node, dims: readonly (readonly Atom[])[]): Atom[][] | undefined {
  const inShape = n.inputs[0]!.shape;
  const out = n.outputs[0]!.shape;
  if (out.length !== inShape.length) return undefined;
  if (n.op === 'Tile' && !view.ints(n.inputs[1])) return undefined;
  const next: Atom[][] = [];
  for (let i = 0; i < out.length; i++) {
    if (out[i] === inShape[i]) next.push([...dims[i]!]);
    else if (inShape[i] === 1) next.push([new Atom(-1, out[i]!, true)]);
    else return undefined;
  }
  return next;
}

/** Simulates nodes (applied in order) on src's atoms. */
function simulate(view: GraphView, src: Value, nodes: readonly Node[]): LayoutTrace | undefined {
  const parts: Atom[][] = src.shape.map((s, axis) => (s === 1 ? [] : [new Atom(axis, s)]));
  let dims: Atom[][] = parts.map((p) => [...p]);
  let factor = 1;
  let scaleOps = 0;
  for (const n of nodes) {
    if (n.op === 'Transpose') {
      const p = n.attrs['perm'];
      const perm = p && p.kind === 'ints' ? p.value : dims.map((_, i) => dims.length - 1 - i);
      if (perm.length !== dims.length) return undefined;
      dims = perm.map((i) => dims[i]!);
    } else if (REPEAT_OPS.has(n.op)) {
      const next = repeatAxes(view, n, dims);
      if (!next) return undefined;
      dims = next;
    } else if (LAYOUT_OPS.has(n.op)) {
      const next = regroup(dims, n.outputs[0]!.shape, parts);
      if (!next) return undefined;
      dims = next;
    } else {
      const s = scaleOf(view, n);
      if (!s) return undefined;
      factor *= s.factor;
      scaleOps++;
    }
  }
  return { src, parts, dims, factor, scaleOps };
}

/**
 * Traces v through the transparent chain above it (layout ops, repeats, scalar scales): one trace
 * per ancestor that the chain can be simulated from, nearest first. The caller picks one
 * (attention-operands.ts prefers pulled scales, then grouped kv heads, then the cheapest rebuild).
 */
export function traceLayouts(view: GraphView, v: Value, maxDepth = 8): LayoutTrace[] {
  const { nodes, ancestors } = chainAbove(view, v, maxDepth);
  const out: LayoutTrace[] = [];
  for (let i = 0; i < ancestors.length; i++) {
    const t = simulate(view, ancestors[i]!, nodes.slice(0, i).reverse());
    if (t) out.push(t);
  }
  return out;
}

/**
 * Cost of building a value of `shape` whose dims hold `groups` of t's atoms: 0 when src already
 * is it, 1 for one Transpose or Reshape, 3 for Reshape-Transpose-Reshape; undefined when the
 * groups do not use exactly t's atoms or a Reshape on the way cannot be expressed (reshapePlan).
 */
export function rebuildCost(t: LayoutTrace, groups: readonly (readonly Atom[])[], shape: readonly Dim[]): number | undefined {
  const order = t.parts.flat();
  const want = groups.flat();
  if (order.length !== want.length || want.some((a) => !order.includes(a))) return undefined;
  const simple = simplePerm(t, groups, shape);
  if (simple) return simple.every((p, i) => p === i) ? 0 : 1;
  const splitShape = order.map((a) => a.size);
  const permuted = want.map((a) => a.size);
  if (!sameShape(t.src.shape, splitShape) && !reshapePlan(t.src.shape, splitShape)) return undefined;
  if (!sameShape(permuted, shape) && !reshapePlan(permuted, shape)) return undefined;
  return 3;
}

/** A perm p with Transpose(src, p) holding `groups`, when no src axis is split and ranks match. */
function simplePerm(t: LayoutTrace, groups: readonly (readonly Atom[])[], shape: readonly Dim[]): number[] | undefined {
  const srcShape = t.src.shape;
  if (srcShape.length !== shape.length || t.parts.some((p) => p.length > 1)) return undefined;
  const used = new Set<number>();
  const perm: number[] = [];
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i]!;
    if (g.length > 1 || productOfDims(g.map((a) => a.size)) !== shape[i]) return undefined;
    if (g.length === 1) {
      perm.push(g[0]!.axis);
      used.add(g[0]!.axis);
    } else {
      if (shape[i] !== 1) return undefined;
      perm.push(-1);
    }
  }
  for (let i = 0; i < perm.length; i++) {
    if (perm[i] !== -1) continue;
    const free = srcShape.findIndex((s, ax) => s === 1 && !used.has(ax));
    if (free < 0) return undefined;
    perm[i] = free;
    used.add(free);
  }
  return perm;
}

/** Builds the value of `shape` whose dims hold `groups` of t's atoms (see rebuildCost). */
export function rebuild(b: RewriteBuilder, t: LayoutTrace, groups: readonly (readonly Atom[])[], shape: readonly Dim[]): Value | undefined {
  const simple = simplePerm(t, groups, shape);
  if (simple) return simple.every((p, i) => p === i) ? t.src : b.op('Transpose', [t.src], { perm: intsAttr(simple) });
  const order = t.parts.flat();
  const splitShape = order.map((a) => a.size);
  let cur = reshapeDims(b, t.src, splitShape);
  if (!cur) return undefined;
  const perm = groups.flat().map((a) => order.indexOf(a));
  if (perm.some((p, i) => p !== i)) cur = b.op('Transpose', [cur], { perm: intsAttr(perm) });
  return reshapeDims(b, cur, shape);
}

/** One element of a Reshape target: a constant (0 copies the input dim, -1 is inferred) or dim `axis` of the input, times mul, over div. */
type TargetPart = { readonly kind: 'const'; readonly value: number } | { readonly kind: 'dim'; readonly axis: number; readonly mul: number; readonly div: number };

/**
 * How to spell a Reshape from `input` to `out` with symbolic dims: numbers as they are, a symbol
 * at the same index as 0 (copy), a symbol derived from one input dim (equal, or times/over a size)
 * read at run time from Shape(x), and at most one other dim as -1. Undefined when two dims are
 * neither (or `out` has a 0 size, which would need allowzero).
 */
export function reshapePlan(input: readonly Dim[], out: readonly Dim[]): TargetPart[] | undefined {
  if (out.includes(0)) return undefined;
  const parts: (TargetPart | undefined)[] = out.map((d, i) => {
    if (typeof d === 'number') return { kind: 'const', value: d };
    if (input[i] === d) return { kind: 'const', value: 0 };
    const from = derivedDim(input, d);
    return from && { kind: 'dim', ...from };
  });
  const free = parts.filter((p) => p === undefined).length;
  if (free > 1) return undefined;
  // The -1 goes to the one dim no input dim gives, else to the first dim read at run time.
  const at = free === 1 ? parts.indexOf(undefined) : parts.findIndex((p) => p?.kind === 'dim');
  if (at >= 0) parts[at] = { kind: 'const', value: -1 };
  return parts as TargetPart[];
}

/**
 * Reshape(x) to `out` (a view: row-major order kept), symbolic dims allowed. When inference
 * cannot name a dim the way `out` does (a -1 solved to "batch*4", run-time parts), the node gets
 * the type `out`: the caller's trace proved it (and the verifier maps invented symbols to it).
 */
export function reshapeDims(b: RewriteBuilder, x: Value, out: readonly Dim[]): Value | undefined {
  if (sameShape(x.shape, out)) return x;
  const shape = out.every((d): d is number => typeof d === 'number') ? out : undefined;
  if (shape) return b.reshape(x, shape);
  const plan = reshapePlan(x.shape, out);
  if (!plan) return undefined;
  let target: Value;
  if (plan.every((p) => p.kind === 'const')) target = b.i64(plan.map((p) => (p.kind === 'const' ? p.value : 0)));
  else {
    const dims = b.op('Shape', [x]);
    const pieces = plan.map((p) => {
      if (p.kind === 'const') return b.i64([p.value]);
      let v = b.op('Gather', [dims, b.i64([p.axis])], { axis: { kind: 'int', value: 0 } });
      if (p.mul !== 1) v = b.op('Mul', [v, b.i64([p.mul])]);
      if (p.div !== 1) v = b.op('Div', [v, b.i64([p.div])]);
      return v;
    });
    target = b.op('Concat', pieces, { axis: { kind: 'int', value: 0 } });
  }
  // Inference (on a scratch builder) may invent a symbol where the trace knows the name.
  const inferred = new GraphBuilder(b.opset).add('Reshape', [x, target])[0]!;
  if (sameShape(inferred.shape, out)) return b.op('Reshape', [x, target]);
  // The one bare Node outside packages/ir (dev/builders.md): GraphBuilder's `declared` refines
  // invented symbols to static sizes only, not to the symbol name the trace knows.
  const typed = new Value({ dtype: x.dtype, shape: [...out] }, '');
  b.addNode(new Node('Reshape', [x, target], [typed], {}, typedViewName(b)));
  return typed;
}

const typedViews = new WeakMap<RewriteBuilder, number>();

/**
 * A name of its own for each typed Reshape of one rewrite: the verifier names the symbols it
 * invents after the node (`<name>_<axis>`) and binds each to one recorded dim, so two such
 * Reshapes named alike (the rewrite's provenance) could not type axis 0 differently.
 */
function typedViewName(b: RewriteBuilder): string {
  const k = (typedViews.get(b) ?? 0) + 1;
  typedViews.set(b, k);
  return `${b.provenance}.view${k}`;
}
