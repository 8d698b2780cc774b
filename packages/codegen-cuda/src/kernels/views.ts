/**
 * View algebra over lazy expressions: an affine index map (old index = coef * new index + off)
 * covers Transpose, Slice, Expand/broadcast, Unsqueeze/Squeeze and Gather by a constant index;
 * Reshape rewrites leaf strides when the buffer layout allows (torch's view rule). Views are
 * pushed down to the leaves; `undefined` means "cannot express this lazily": the caller then
 * materializes the view's input into a buffer and retries on a contiguous leaf.
 */
import type { Expr } from './expr';
import { freshId } from './expr';

export interface Affine {
  readonly shape: readonly number[];
  /** coef[d][e]: how old dim d moves with new dim e. */
  readonly coef: readonly (readonly number[])[];
  readonly off: readonly number[];
}

export function applyAffine(e: Expr, a: Affine): Expr | undefined {
  if (isIdentity(e.shape, a)) return e;
  switch (e.kind) {
    case 'leaf': {
      const strides = a.shape.map((_, j) => e.strides.reduce((s, st, d) => s + st * a.coef[d]![j]!, 0));
      const offset = e.offset + e.strides.reduce((s, st, d) => s + st * a.off[d]!, 0);
      return { ...e, id: freshId(), shape: a.shape, strides, offset };
    }
    case 'const':
      return { ...e, id: freshId(), shape: a.shape };
    case 'map': {
      const args: Expr[] = [];
      for (const x of e.args) {
        const y = applyAffine(x, a);
        if (!y) return undefined;
        args.push(y);
      }
      return { ...e, id: freshId(), shape: a.shape, args };
    }
    case 'select':
      return affineSelect(e, a);
    case 'rope': {
      const last = e.shape.length - 1;
      const nl = a.shape.length - 1;
      if (nl < 0 || !onlyLink(a, last, nl) || a.off[last] !== 0 || a.shape[nl] !== e.shape[last]) return undefined;
      const x = applyAffine(e.x, a);
      const C = e.cos.shape[last]!;
      const ta: Affine = { ...a, shape: [...a.shape.slice(0, -1), C] };
      const cos = applyAffine(e.cos, ta);
      const sin = applyAffine(e.sin, ta);
      if (!x || !cos || !sin) return undefined;
      return { ...e, id: freshId(), shape: a.shape, x, cos, sin };
    }
    case 'gather':
    case 'row':
    case 'indexed':
      return undefined;
  }
}

/** Same shape and every old index equals the new one (coefficients of unit dims do not matter). */
function isIdentity(shape: readonly number[], a: Affine): boolean {
  if (a.shape.length !== shape.length) return false;
  return shape.every(
    (d, i) => d === a.shape[i] && a.off[i] === 0 && a.coef[i]!.every((c, j) => c === (i === j ? 1 : 0) || d === 1 || a.shape[j] === 1),
  );
}

/** Old dim d follows exactly new dim j (coefficient 1) and nothing else uses j. */
function onlyLink(a: Affine, d: number, j: number): boolean {
  if (a.coef[d]![j] !== 1) return false;
  if (a.coef[d]!.some((c, k) => k !== j && c !== 0)) return false;
  return a.coef.every((row, k) => k === d || row[j] === 0);
}

function affineSelect(e: Extract<Expr, { kind: 'select' }>, a: Affine): Expr | undefined {
  const ax = e.axis;
  const j = a.coef[ax]!.findIndex((c) => c !== 0);
  if (j < 0) {
    // The concat axis is fixed by the view (e.g. a Gather of one position): one piece remains.
    const x = a.off[ax]!;
    const p = pieceAt(e, x);
    const off = [...a.off];
    off[ax] = x - e.starts[p]!;
    return applyAffine(e.pieces[p]!, { ...a, off });
  }
  if (!onlyLink(a, ax, j)) return undefined;
  const n = a.shape[j]!;
  const base = a.off[ax]!;
  const pieces: Expr[] = [];
  const starts: number[] = [];
  e.pieces.forEach((p, i) => {
    const s = e.starts[i]! - base;
    const lo = Math.max(0, s);
    const hi = Math.min(n, s + p.shape[ax]!);
    if (hi <= lo) return;
    const shape = [...a.shape];
    shape[j] = hi - lo;
    const off = [...a.off];
    off[ax] = lo - s;
    const q = applyAffine(p, { shape, coef: a.coef, off });
    if (!q) return;
    pieces.push(q);
    starts.push(lo);
  });
  if (pieces.length !== e.pieces.filter((p, i) => {
    const s = e.starts[i]! - base;
    return Math.min(n, s + p.shape[ax]!) > Math.max(0, s);
  }).length) return undefined;
  if (pieces.length === 1) return pieces[0];
  return { ...e, id: freshId(), shape: a.shape, axis: j, starts, pieces };
}

function pieceAt(e: Extract<Expr, { kind: 'select' }>, x: number): number {
  for (let i = e.pieces.length - 1; i >= 0; i--) if (x >= e.starts[i]!) return i;
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Constructors of common affine maps.

const zeros = (n: number): number[] => new Array<number>(n).fill(0);

export function permuteMap(shape: readonly number[], perm: readonly number[]): Affine {
  const coef = shape.map(() => zeros(perm.length));
  perm.forEach((p, j) => (coef[p]![j] = 1));
  return { shape: perm.map((p) => shape[p]!), coef, off: zeros(shape.length) };
}

/** Numpy broadcast of `shape` to `to` (right-aligned). */
export function broadcastMap(shape: readonly number[], to: readonly number[]): Affine {
  const lead = to.length - shape.length;
  const coef = shape.map((d, i) => {
    const row = zeros(to.length);
    row[i + lead] = d === 1 && to[i + lead] !== 1 ? 0 : 1;
    return row;
  });
  return { shape: to, coef, off: zeros(shape.length) };
}

/** Per-axis slice: new index i on axis a reads start + step * i. */
export function sliceMap(shape: readonly number[], newShape: readonly number[], starts: readonly number[], steps: readonly number[]): Affine {
  const coef = shape.map((_, d) => {
    const row = zeros(shape.length);
    row[d] = steps[d]!;
    return row;
  });
  return { shape: newShape, coef, off: [...starts] };
}

/** Removes axis `axis` by fixing it at `index` (Gather with a scalar constant index). */
export function pickMap(shape: readonly number[], axis: number, index: number): Affine {
  const newShape = shape.filter((_, i) => i !== axis);
  const coef = shape.map((_, d) => {
    const row = zeros(newShape.length);
    if (d !== axis) row[d < axis ? d : d - 1] = 1;
    return row;
  });
  const off = zeros(shape.length);
  off[axis] = index;
  return { shape: newShape, coef, off };
}

// ---------------------------------------------------------------------------------------------
// Reshape

/** Expresses a reshape as insertion/removal of size-1 dims when that is all it does. */
function unitReshapeMap(shape: readonly number[], to: readonly number[]): Affine | undefined {
  const a = shape.map((d, i) => [d, i] as const).filter(([d]) => d !== 1);
  const b = to.map((d, i) => [d, i] as const).filter(([d]) => d !== 1);
  if (a.length !== b.length || a.some(([d], k) => d !== b[k]![0])) return undefined;
  const coef = shape.map(() => zeros(to.length));
  a.forEach(([, i], k) => (coef[i]![b[k]![1]] = 1));
  return { shape: to, coef, off: zeros(shape.length) };
}

/**
 * A Reshape that only splits axes (and adds or drops size-1 axes) as an affine map: old index
 * d = sum_j coef[d][j] * new_j over the new axes d was split into (row-major within the group).
 * Undefined when the reshape merges axes (that needs the buffer's layout: reshapeStrides).
 */
function splitReshapeMap(shape: readonly number[], to: readonly number[]): Affine | undefined {
  const a = shape.map((d, i) => [d, i] as const).filter(([d]) => d !== 1);
  const b = to.map((d, i) => [d, i] as const).filter(([d]) => d !== 1);
  const coef = shape.map(() => zeros(to.length));
  let k = 0;
  for (const [size, d] of a) {
    const group: number[] = [];
    let prod = 1;
    while (prod < size && k < b.length) {
      prod *= b[k]![0];
      group.push(b[k]![1]);
      k++;
    }
    if (prod !== size) return undefined;
    let stride = 1;
    for (let g = group.length - 1; g >= 0; g--) {
      coef[d]![group[g]!] = stride;
      stride *= to[group[g]!]!;
    }
  }
  if (k !== b.length) return undefined;
  return { shape: to, coef, off: zeros(shape.length) };
}

/** New strides for viewing (shape, strides) as `to`, or undefined (torch's computeStride). */
export function reshapeStrides(shape: readonly number[], strides: readonly number[], to: readonly number[]): number[] | undefined {
  if (shape.length === 0) return to.map(() => 0);
  const out = new Array<number>(to.length).fill(0);
  let viewD = to.length - 1;
  let base = strides[strides.length - 1]!;
  let tNumel = 1;
  let vNumel = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    tNumel *= shape[d]!;
    if (d === 0 || (shape[d - 1] !== 1 && strides[d - 1] !== tNumel * base)) {
      while (viewD >= 0 && (vNumel < tNumel || to[viewD] === 1)) {
        out[viewD] = vNumel * base;
        vNumel *= to[viewD]!;
        viewD--;
      }
      if (vNumel !== tNumel) return undefined;
      if (d > 0) {
        base = strides[d - 1]!;
        tNumel = 1;
        vNumel = 1;
      }
    }
  }
  return viewD === -1 ? out : undefined;
}

export function reshapeExpr(e: Expr, to: readonly number[]): Expr | undefined {
  if (e.shape.length === to.length && e.shape.every((d, i) => d === to[i])) return e;
  const unit = unitReshapeMap(e.shape, to);
  if (unit) return applyAffine(e, unit);
  switch (e.kind) {
    case 'leaf': {
      const strides = reshapeStrides(e.shape, e.strides, to);
      return strides ? { ...e, id: freshId(), shape: to, strides } : undefined;
    }
    case 'const':
      return { ...e, id: freshId(), shape: to };
    case 'map': {
      const args: Expr[] = [];
      for (const x of e.args) {
        const y = reshapeExpr(x, to);
        if (!y) return undefined;
        args.push(y);
      }
      return { ...e, id: freshId(), shape: to, args };
    }
    default: {
      // Splitting axes is an affine map, which expressions such as rope or a transposed view take.
      const split = splitReshapeMap(e.shape, to);
      return split ? applyAffine(e, split) : undefined;
    }
  }
}
