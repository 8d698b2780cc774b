/**
 * Lazy element expressions: the fused-kernel IR of the non-GEMM emitter.
 *
 * Every IR value of a fragment is described by an Expr over its own shape: evaluating it at a
 * multi-index gives the element. Leaves read a device buffer through an affine view (strides and
 * an offset in elements, stride 0 = broadcast), so Transpose/Slice/Expand/Unsqueeze/Reshape and
 * numpy broadcasting cost nothing: they only rewrite leaf strides. A kernel evaluates a few sink
 * expressions and stores them; everything below a sink is computed in registers (one pass over
 * memory). Row nodes stand for a row-wise op (norm, softmax) computed by a row kernel.
 */
import type { DType, Node, Value } from '@paradit/ir';
import { stridesOf } from '@paradit/ir';
import type { ScalarOp } from './scalar-ops';
import type { RowPlan } from './row-plan';
import type { IndexRule } from './indexed';

let nextId = 1;
export const freshId = (): number => nextId++;

interface Base {
  readonly id: number;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** IR nodes this expression node computes (provenance for `covers`). */
  readonly nodes: readonly Node[];
}

export interface LeafExpr extends Base {
  readonly kind: 'leaf';
  readonly value: Value;
  readonly strides: readonly number[];
  readonly offset: number;
}
interface ConstExpr extends Base {
  readonly kind: 'const';
  readonly v: number;
}
interface MapExpr extends Base {
  readonly kind: 'map';
  readonly op: ScalarOp;
  readonly args: readonly Expr[];
}
/** Concat: piece i covers [starts[i], starts[i] + pieces[i].shape[axis]) of `axis`. */
interface SelectExpr extends Base {
  readonly kind: 'select';
  readonly axis: number;
  readonly starts: readonly number[];
  readonly pieces: readonly Expr[];
}
/** rope over the last axis (H); cos/sin have x's shape with last dim C = H or H/2. */
interface RopeExpr extends Base {
  readonly kind: 'rope';
  readonly style: 'rotate_half' | 'interleaved';
  readonly x: Expr;
  readonly cos: Expr;
  readonly sin: Expr;
}
/** Gather along `axis` by an index expression of shape idxShape (dims axis..axis+q of this shape). */
interface GatherExpr extends Base {
  readonly kind: 'gather';
  readonly x: Expr;
  readonly idx: Expr;
  readonly axis: number;
}
/** The output of a row kernel, read at the kernel's own positions only. */
interface RowExpr extends Base {
  readonly kind: 'row';
  readonly plan: RowPlan;
}

/**
 * An element computed by index math over its operands (indexed.ts): Tile, Pad, GatherElements,
 * DepthToSpace, ArgMax, ... One lane at a time; the rule reads `args` at the positions it computes.
 */
export interface IndexedExpr extends Base {
  readonly kind: 'indexed';
  readonly rule: IndexRule;
  readonly args: readonly Expr[];
}

export type Expr = LeafExpr | ConstExpr | MapExpr | SelectExpr | RopeExpr | GatherExpr | RowExpr | IndexedExpr;

/** Row-major strides of a contiguous tensor (the IR's own definition). */
export const contiguousStrides = stridesOf;

export const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export function leaf(value: Value, shape: readonly number[], nodes: readonly Node[] = []): LeafExpr {
  return { kind: 'leaf', id: freshId(), dtype: value.dtype, shape, nodes, value, strides: contiguousStrides(shape), offset: 0 };
}

/** True when the leaf reads its buffer contiguously from `offset` (size-1 dims ignored). */
export function isContiguousLeaf(e: LeafExpr): boolean {
  const c = contiguousStrides(e.shape);
  return e.shape.every((d, i) => d === 1 || e.strides[i] === c[i]);
}

export function withNodes<E extends Expr>(e: E, nodes: readonly Node[]): E {
  if (nodes.length === 0) return e;
  return { ...e, id: freshId(), nodes: [...e.nodes, ...nodes] };
}

/** Visits every node of an expression DAG once. */
export function visitExpr(e: Expr, f: (e: Expr) => void, seen = new Set<number>()): void {
  if (seen.has(e.id)) return;
  seen.add(e.id);
  f(e);
  switch (e.kind) {
    case 'leaf':
    case 'const':
    case 'row':
      return;
    case 'map':
    case 'indexed':
      e.args.forEach((a) => visitExpr(a, f, seen));
      return;
    case 'select':
      e.pieces.forEach((a) => visitExpr(a, f, seen));
      return;
    case 'rope':
      [e.x, e.cos, e.sin].forEach((a) => visitExpr(a, f, seen));
      return;
    case 'gather':
      visitExpr(e.x, f, seen);
      visitExpr(e.idx, f, seen);
      return;
  }
}

/** Row plans whose outputs an expression reads. */
export function rowPlansIn(e: Expr): Set<RowPlan> {
  const s = new Set<RowPlan>();
  visitExpr(e, (x) => {
    if (x.kind === 'row') s.add(x.plan);
  });
  return s;
}

/** Rebuilds `e` with some subexpressions replaced (f returns undefined to keep and recurse). */
export function substitute(e: Expr, f: (e: Expr) => Expr | undefined, memo = new Map<number, Expr>()): Expr {
  const hit = memo.get(e.id);
  if (hit) return hit;
  let out = f(e);
  if (!out) {
    const sub = (x: Expr): Expr => substitute(x, f, memo);
    switch (e.kind) {
      case 'leaf':
      case 'const':
      case 'row':
        out = e;
        break;
      case 'map':
      case 'indexed': {
        const args = e.args.map(sub);
        out = args.every((a, i) => a === e.args[i]) ? e : { ...e, id: freshId(), args };
        break;
      }
      case 'select': {
        const pieces = e.pieces.map(sub);
        out = pieces.every((a, i) => a === e.pieces[i]) ? e : { ...e, id: freshId(), pieces };
        break;
      }
      case 'rope': {
        const [x, cos, sin] = [sub(e.x), sub(e.cos), sub(e.sin)];
        out = x === e.x && cos === e.cos && sin === e.sin ? e : { ...e, id: freshId(), x, cos, sin };
        break;
      }
      case 'gather': {
        const [x, idx] = [sub(e.x), sub(e.idx)];
        out = x === e.x && idx === e.idx ? e : { ...e, id: freshId(), x, idx };
        break;
      }
    }
  }
  memo.set(e.id, out);
  return out;
}

/** Index type for a kernel: 64-bit when the domain or any buffer read reaches 2^31 elements. */
export function indexType(domainNumel: number, exprs: readonly (Expr | undefined)[]): 'int' | 'long long' {
  let big = domainNumel >= 2 ** 31 - 1;
  const seen = new Set<number>();
  for (const e of exprs) {
    if (!e) continue;
    visitExpr(e, (x) => {
      if (x.kind === 'leaf' && numelOf(x.value.shape as number[]) >= 2 ** 31 - 1) big = true;
    }, seen);
  }
  return big ? 'long long' : 'int';
}
