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
 * attention can be read off the heads axis. Size-1 axes carry no data and get no atoms. All
 * shapes on the chain must be static.
 */
import type { Node, Value } from '@paradit/ir';
import type { GraphView, RewriteBuilder } from './rewrite';
import { intsAttr, sameShape, staticShapeOf } from './rewrite';
import { scalarConst } from './fusion-match';

/**
 * A run of one source axis's elements, or (repeat) a new axis along which an Expand/Tile repeats
 * the data (repeat_kv). Identity matters: each atom appears once.
 */
export class Atom {
  constructor(
    readonly axis: number,
    readonly size: number,
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

const LAYOUT_OPS = new Set(['Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Flatten']);
/** Ops that may repeat data along size-1 axes (traced as repeat atoms). */
const REPEAT_OPS = new Set(['Expand', 'Tile']);

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

/** Regroups atoms (in order) into dims of the given sizes, splitting atoms where needed. */
function regroup(dims: readonly (readonly Atom[])[], shape: readonly number[], parts: Atom[][]): Atom[][] | undefined {
  const flat = dims.flat();
  const out: Atom[][] = [];
  let idx = 0;
  for (const d of shape) {
    const group: Atom[] = [];
    let need = d;
    while (need > 1) {
      const a = flat[idx];
      if (!a) return undefined;
      if (need % a.size === 0) {
        group.push(a);
        need /= a.size;
        idx++;
      } else if (a.size % need === 0) {
        const outer = new Atom(a.axis, need, a.repeat);
        const inner = new Atom(a.axis, a.size / need, a.repeat);
        if (!a.repeat) {
          const list = parts[a.axis]!;
          list.splice(list.indexOf(a), 1, outer, inner);
        }
        group.push(outer);
        flat[idx] = inner;
        need = 1;
      } else return undefined;
    }
    if (d === 0) return undefined;
    out.push(group);
  }
  return idx === flat.length ? out : undefined;
}

/** Expand/Tile that only repeat size-1 axes (same rank): those dims get a repeat atom. */
function repeatAxes(view: GraphView, n: Node, dims: readonly (readonly Atom[])[]): Atom[][] | undefined {
  const inShape = staticShapeOf(n.inputs[0]!);
  const out = staticShapeOf(n.outputs[0]!);
  if (!inShape || !out || out.length !== inShape.length) return undefined;
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
  const shape = staticShapeOf(src);
  if (!shape) return undefined;
  const parts: Atom[][] = shape.map((s, axis) => (s === 1 ? [] : [new Atom(axis, s)]));
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
      const out = staticShapeOf(n.outputs[0]!);
      if (!out) return undefined;
      const next = regroup(dims, out, parts);
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
 * groups do not use exactly t's atoms.
 */
export function rebuildCost(t: LayoutTrace, groups: readonly (readonly Atom[])[], shape: readonly number[]): number | undefined {
  const order = t.parts.flat();
  const want = groups.flat();
  if (order.length !== want.length || want.some((a) => !order.includes(a))) return undefined;
  const simple = simplePerm(t, groups, shape);
  if (simple) return simple.every((p, i) => p === i) ? 0 : 1;
  return 3;
}

/** A perm p with Transpose(src, p) holding `groups`, when no src axis is split and ranks match. */
function simplePerm(t: LayoutTrace, groups: readonly (readonly Atom[])[], shape: readonly number[]): number[] | undefined {
  const srcShape = t.src.shape as readonly number[];
  if (srcShape.length !== shape.length || t.parts.some((p) => p.length > 1)) return undefined;
  const used = new Set<number>();
  const perm: number[] = [];
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i]!;
    if (g.length > 1 || g.reduce((n, a) => n * a.size, 1) !== shape[i]) return undefined;
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
export function rebuild(b: RewriteBuilder, t: LayoutTrace, groups: readonly (readonly Atom[])[], shape: readonly number[]): Value | undefined {
  const simple = simplePerm(t, groups, shape);
  if (simple) return simple.every((p, i) => p === i) ? t.src : b.op('Transpose', [t.src], { perm: intsAttr(simple) });
  const order = t.parts.flat();
  const splitShape = order.map((a) => a.size);
  let cur = sameShape(t.src.shape, splitShape) ? t.src : b.reshape(t.src, splitShape);
  if (!cur) return undefined;
  const perm = groups.flat().map((a) => order.indexOf(a));
  if (perm.some((p, i) => p !== i)) cur = b.op('Transpose', [cur], { perm: intsAttr(perm) });
  return sameShape(cur.shape, shape) ? cur : b.reshape(cur, shape);
}
