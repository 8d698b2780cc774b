/**
 * The strided broadcast kernels shared by the elementwise ops (and the reductions' transposes).
 *
 * A broadcast is planned once per call, never per element: the output shape is stripped of its
 * size-1 dims and adjacent dims are merged wherever every operand is laid out alike (both
 * contiguous, or both broadcast), so `[B,S,D] + [D]` runs as a 2-D loop `[B*S, D]` with strides
 * `[D,1]` and `[0,1]`. The loops then walk rows of the innermost merged dim with an odometer over
 * the outer dims (RowCursor). Same-shape and scalar operands skip planning entirely: they are a
 * single row with stride 1 or 0.
 *
 * Binary ops run as row loops (BinaryRow). The hot ones (Add, Sub, Mul, Div, Max, Min) have
 * their own loop with the arithmetic written inline; a shared loop that calls a different scalar
 * function for every op cannot be inlined by the JIT and runs about 3x slower.
 *
 * Kernels write into a caller-allocated output array (see `allocData`); elements are computed in
 * doubles and the caller rounds them into the output dtype with `Tensor.normalized`.
 */
import type { TensorData } from '../tensor';
import { numel } from '../tensor';

/** A concrete operand: its data and the shape that data has (broadcast to the output's). */
export interface Operand {
  readonly data: TensorData;
  readonly shape: readonly number[];
}

export type Unary = (x: number) => number;
export type Binary = (x: number, y: number) => number;
export type Ternary = (x: number, y: number, z: number) => number;

/** Merged output dims and, per operand, the element stride of each merged dim (0 = broadcast). */
interface StridePlan {
  readonly dims: readonly number[];
  readonly strides: readonly (readonly number[])[];
}

/** Row-major strides of `shape` aligned to an output of rank `rank`; 0 on broadcast dims. */
function alignedStrides(shape: readonly number[], rank: number): number[] {
  const out = new Array<number>(rank).fill(0);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const n = shape[i]!;
    out[rank - shape.length + i] = n === 1 ? 0 : acc;
    acc *= n;
  }
  return out;
}

/**
 * Merges the dims of an iteration over `dims` where operand k reads element stride
 * `strides[k][d]` along dim d. Size-1 dims are dropped; dim d folds into the previous kept dim p
 * when `stride[p] == stride[d] * dims[d]` holds for every operand.
 */
function mergeDims(dims: readonly number[], strides: readonly (readonly number[])[]): StridePlan {
  const outDims: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (let d = 0; d < dims.length; d++) {
    const n = dims[d]!;
    if (n === 1) continue;
    const p = outDims.length - 1;
    if (p >= 0 && strides.every((s, k) => outStrides[k]![p] === s[d]! * n)) {
      outDims[p] = outDims[p]! * n;
      strides.forEach((s, k) => (outStrides[k]![p] = s[d]!));
    } else {
      outDims.push(n);
      strides.forEach((s, k) => outStrides[k]!.push(s[d]!));
    }
  }
  if (outDims.length === 0) {
    outDims.push(1);
    outStrides.forEach((s) => s.push(0));
  }
  return { dims: outDims, strides: outStrides };
}

/** Plans the broadcast of operands of the given shapes to `outShape`. */
function planBroadcast(outShape: readonly number[], shapes: readonly (readonly number[])[]): StridePlan {
  return mergeDims(outShape, shapes.map((s) => alignedStrides(s, outShape.length)));
}

/**
 * Walks `plan` row by row (rows of its innermost merged dim, in output order). `offs[k]` is
 * operand k's element offset at the start of the current row; `advance()` moves to the next row
 * with an odometer over the outer dims. A class rather than a callback, so that the hot loops
 * stay in their own (monomorphic) functions and read only locals.
 */
class RowCursor {
  readonly offs: Float64Array;
  /** Elements per row. */
  readonly len: number;
  /** Number of rows. */
  readonly rows: number;
  private readonly idx: Int32Array;

  constructor(private readonly plan: StridePlan) {
    const r = plan.dims.length;
    this.len = plan.dims[r - 1]!;
    const total = numel(plan.dims);
    this.rows = total === 0 ? 0 : total / this.len;
    this.idx = new Int32Array(r);
    this.offs = new Float64Array(plan.strides.length);
  }

  /** Inner (last merged dim) stride of operand k. */
  step(k: number): number {
    const s = this.plan.strides[k]!;
    return s[s.length - 1]!;
  }

  advance(): void {
    const { dims, strides } = this.plan;
    const { idx, offs } = this;
    const k = offs.length;
    for (let d = dims.length - 2; d >= 0; d--) {
      idx[d]!++;
      const n = dims[d]!;
      if (idx[d]! < n) {
        for (let m = 0; m < k; m++) offs[m]! += strides[m]![d]!;
        return;
      }
      idx[d] = 0;
      for (let m = 0; m < k; m++) offs[m]! -= strides[m]![d]! * (n - 1);
    }
  }
}

/** out[i] = f(x[i]). */
export function mapUnary(x: TensorData, out: TensorData, f: Unary): void {
  const n = out.length;
  for (let i = 0; i < n; i++) out[i] = f(x[i]!);
}

/**
 * A row loop: out[o + j] = op(a[ia + j*sa], b[ib + j*sb]) for j < len. Hot ops have their own
 * row loop so the arithmetic is inlined; `rowOf` makes one from any scalar function (its call
 * is not inlined once many ops share it, which costs a few ns per element).
 */
export type BinaryRow = (out: TensorData, o: number, a: TensorData, ia: number, sa: number, b: TensorData, ib: number, sb: number, len: number) => void;

export function rowOf(f: Binary): BinaryRow {
  return (out, o, a, ia, sa, b, ib, sb, len) => {
    for (let j = 0; j < len; j++, ia += sa, ib += sb) out[o + j] = f(a[ia]!, b[ib]!);
  };
}

export const ADD_ROW: BinaryRow = (out, o, a, ia, sa, b, ib, sb, len) => {
  for (let j = 0; j < len; j++, ia += sa, ib += sb) out[o + j] = a[ia]! + b[ib]!;
};
export const SUB_ROW: BinaryRow = (out, o, a, ia, sa, b, ib, sb, len) => {
  for (let j = 0; j < len; j++, ia += sa, ib += sb) out[o + j] = a[ia]! - b[ib]!;
};
export const MUL_ROW: BinaryRow = (out, o, a, ia, sa, b, ib, sb, len) => {
  for (let j = 0; j < len; j++, ia += sa, ib += sb) out[o + j] = a[ia]! * b[ib]!;
};
export const DIV_ROW: BinaryRow = (out, o, a, ia, sa, b, ib, sb, len) => {
  for (let j = 0; j < len; j++, ia += sa, ib += sb) out[o + j] = a[ia]! / b[ib]!;
};
/** Maximum with NaN propagation (numpy.maximum). */
export const MAX_ROW: BinaryRow = (out, o, a, ia, sa, b, ib, sb, len) => {
  for (let j = 0; j < len; j++, ia += sa, ib += sb) {
    const x = a[ia]!;
    const y = b[ib]!;
    out[o + j] = x > y || x !== x ? x : y;
  }
};
export const MIN_ROW: BinaryRow = (out, o, a, ia, sa, b, ib, sb, len) => {
  for (let j = 0; j < len; j++, ia += sa, ib += sb) {
    const x = a[ia]!;
    const y = b[ib]!;
    out[o + j] = x < y || x !== x ? x : y;
  }
};

/** out = row-op(a, b) with numpy broadcasting, one `row` call per contiguous output run. */
export function mapBinaryRows(a: Operand, b: Operand, outShape: readonly number[], out: TensorData, row: BinaryRow): void {
  const n = out.length;
  const ad = a.data;
  const bd = b.data;
  if (n === 0) return;
  // An operand with as many elements as the output is laid out exactly like it.
  if (ad.length === n && bd.length === n) return row(out, 0, ad, 0, 1, bd, 0, 1, n);
  if (ad.length === n && bd.length === 1) return row(out, 0, ad, 0, 1, bd, 0, 0, n);
  if (ad.length === 1 && bd.length === n) return row(out, 0, ad, 0, 0, bd, 0, 1, n);
  const cur = new RowCursor(planBroadcast(outShape, [a.shape, b.shape]));
  const { len, rows, offs } = cur;
  const sa = cur.step(0);
  const sb = cur.step(1);
  for (let q = 0, o = 0; q < rows; q++, o += len) {
    row(out, o, ad, offs[0]!, sa, bd, offs[1]!, sb, len);
    cur.advance();
  }
}

/** out = f(a, b, c) with numpy broadcasting of all three. */
export function mapTernary(a: Operand, b: Operand, c: Operand, outShape: readonly number[], out: TensorData, f: Ternary): void {
  const n = out.length;
  const ad = a.data;
  const bd = b.data;
  const cd = c.data;
  if (n === 0) return;
  if (ad.length === n && bd.length === n && cd.length === n) {
    for (let i = 0; i < n; i++) out[i] = f(ad[i]!, bd[i]!, cd[i]!);
    return;
  }
  const cur = new RowCursor(planBroadcast(outShape, [a.shape, b.shape, c.shape]));
  const { len, rows, offs } = cur;
  const sa = cur.step(0);
  const sb = cur.step(1);
  const sc = cur.step(2);
  for (let q = 0, o = 0; q < rows; q++, o += len) {
    let ia = offs[0]!;
    let ib = offs[1]!;
    let ic = offs[2]!;
    for (let j = 0; j < len; j++, ia += sa, ib += sb, ic += sc) out[o + j] = f(ad[ia]!, bd[ib]!, cd[ic]!);
    cur.advance();
  }
}

/** Copies `a` broadcast to `outShape` into `out`. */
export function broadcastInto(a: Operand, outShape: readonly number[], out: TensorData): void {
  const n = out.length;
  const ad = a.data;
  if (n === 0) return;
  if (ad.length === n) {
    out.set(ad);
    return;
  }
  if (ad.length === 1) {
    out.fill(ad[0]!);
    return;
  }
  copyRows(new RowCursor(planBroadcast(outShape, [a.shape])), ad, out);
}

/** out (contiguous) = the rows `cur` walks over `data`. */
function copyRows(cur: RowCursor, data: TensorData, out: TensorData): void {
  const { len, rows, offs } = cur;
  const s = cur.step(0);
  for (let q = 0, o = 0; q < rows; q++, o += len) {
    let i = offs[0]!;
    if (s === 1) out.set(data.subarray(i, i + len), o);
    else for (let j = 0; j < len; j++, i += s) out[o + j] = data[i]!;
    cur.advance();
  }
}

/**
 * Writes the transpose of `data` (row-major of `shape`) by `perm` into `out`:
 * out has shape perm.map(p => shape[p]).
 */
export function permuteInto(data: TensorData, shape: readonly number[], perm: readonly number[], out: TensorData): void {
  const inStrides = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    inStrides[i] = acc;
    acc *= shape[i]!;
  }
  copyRows(new RowCursor(mergeDims(perm.map((p) => shape[p]!), [perm.map((p) => inStrides[p]!)])), data, out);
}
