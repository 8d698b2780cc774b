/**
 * Reading a pointwise expression as a polynomial in two leaf values x and t, so a pattern can be
 * matched whatever the operand order, association or distribution the exporter chose:
 * `x*0.5*(1+t)`, `Mul(0.5, Mul(x, Add(t, 1)))` and `0.5*x + 0.5*x*t` are all {x: 0.5, x*t: 0.5}.
 *
 * Descends through Add, Sub, Mul, Neg, Div by a constant and Pow by a small integer constant;
 * every inner node (not the root) must have a single use, so fusing the expression duplicates
 * nothing. Anything else is a leaf.
 */
import type { Value } from '@paradit/ir';
import type { GraphView } from './rewrite';
import { near, scalarConst } from './fusion-match';

/** Monomial "i,j" = x^i * t^j -> coefficient. */
type Poly = Map<string, number>;

const MAX_DEGREE = 4;
const MAX_DEPTH = 10;

function constantPoly(c: number): Poly {
  return new Map(c === 0 ? [] : [['0,0', c]]);
}

function add(a: Poly, b: Poly, sign = 1): Poly {
  const out = new Map(a);
  for (const [k, c] of b) {
    const s = (out.get(k) ?? 0) + sign * c;
    if (s === 0) out.delete(k);
    else out.set(k, s);
  }
  return out;
}

function mul(a: Poly, b: Poly): Poly | undefined {
  const out: Poly = new Map();
  for (const [ka, ca] of a) {
    const [ia, ja] = ka.split(',').map(Number) as [number, number];
    for (const [kb, cb] of b) {
      const [ib, jb] = kb.split(',').map(Number) as [number, number];
      if (ia + ib > MAX_DEGREE || ja + jb > MAX_DEGREE) return undefined;
      const k = `${ia + ib},${ja + jb}`;
      const s = (out.get(k) ?? 0) + ca * cb;
      if (s === 0) out.delete(k);
      else out.set(k, s);
    }
  }
  return out;
}

/** The non-constant leaves of the expression at v (distinct values, in first-seen order). */
export function leaves(view: GraphView, v: Value): Value[] {
  const out: Value[] = [];
  const visit = (u: Value, depth: number): void => {
    if (scalarConst(view, u) !== undefined) return;
    const p = view.producer(u);
    const inner = p && depth < MAX_DEPTH && (depth === 0 || view.hasSingleUser(u)) && expandable(view, p.op, p.inputs);
    if (!inner) {
      if (!out.includes(u)) out.push(u);
      return;
    }
    for (const i of p.inputs) if (i) visit(i, depth + 1);
  };
  visit(v, 0);
  return out;
}

function expandable(view: GraphView, op: string, inputs: readonly (Value | null)[]): boolean {
  if (op === 'Add' || op === 'Sub' || op === 'Mul' || op === 'Neg') return true;
  if (op === 'Div') return scalarConst(view, inputs[1]) !== undefined;
  if (op === 'Pow') {
    const e = scalarConst(view, inputs[1]);
    return e !== undefined && Number.isInteger(e) && e >= 1 && e <= MAX_DEGREE;
  }
  return false;
}

/** v as a polynomial in x and t; undefined when it has another leaf or a degree above 4. */
export function polynomial(view: GraphView, v: Value, x: Value, t?: Value): Poly | undefined {
  const visit = (u: Value, depth: number): Poly | undefined => {
    if (u === x) return new Map([['1,0', 1]]);
    if (t && u === t) return new Map([['0,1', 1]]);
    const c = scalarConst(view, u);
    if (c !== undefined) return constantPoly(c);
    const p = view.producer(u);
    if (!p || depth >= MAX_DEPTH || (depth > 0 && !view.hasSingleUser(u)) || !expandable(view, p.op, p.inputs)) return undefined;
    const a = visit(p.inputs[0]!, depth + 1);
    if (!a) return undefined;
    if (p.op === 'Neg') return add(new Map(), a, -1);
    if (p.op === 'Div') return mul(a, constantPoly(1 / scalarConst(view, p.inputs[1])!));
    if (p.op === 'Pow') {
      let r: Poly | undefined = constantPoly(1);
      for (let i = 0; i < scalarConst(view, p.inputs[1])! && r; i++) r = mul(r, a);
      return r;
    }
    const b = visit(p.inputs[1]!, depth + 1);
    if (!b) return undefined;
    if (p.op === 'Add') return add(a, b);
    if (p.op === 'Sub') return add(a, b, -1);
    return mul(a, b);
  };
  return visit(v, 0);
}

/** True when p has exactly the expected monomials, each near its coefficient at dtype precision. */
export function polyEquals(p: Poly, expected: Readonly<Record<string, number>>, dtype: Value['dtype']): boolean {
  const keys = Object.keys(expected);
  if (p.size !== keys.length) return false;
  return keys.every((k) => {
    const c = p.get(k);
    return c !== undefined && near(c, expected[k]!, dtype);
  });
}
