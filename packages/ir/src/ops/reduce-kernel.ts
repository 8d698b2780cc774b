/**
 * Block layout shared by the reductions, scans and softmax-like ops: a tensor seen as
 * (outer, len, inner) blocks, where `len` runs over the reduced axes and output element
 * (o, i) collects x[o, 0..len, i]. Reduced axes that are adjacent (ignoring size-1 dims) use
 * the data in place; scattered ones are first transposed to the end (one strided copy), which
 * makes inner = 1. Kernels then stream whole rows: with inner > 1 they keep a row of `inner`
 * accumulators and walk the input once in memory order, never recomputing indices per element.
 */
import type { DType } from '../dtype';
import type { TensorData } from '../tensor';
import { Tensor, allocData } from '../tensor';
import { permuteInto } from './broadcast';

export interface Blocks {
  readonly data: TensorData;
  readonly outer: number;
  readonly len: number;
  readonly inner: number;
}

const prod = (xs: readonly number[]): number => xs.reduce((p, d) => p * d, 1);

/** Lays `x` out as blocks whose middle runs over `axes` (normalized, sorted, unique). */
export function blocksOf(x: Tensor, axes: readonly number[]): Blocks {
  const shape = x.shape;
  const reduced = new Set(axes);
  const big = axes.filter((a) => shape[a] !== 1);
  if (big.length === 0) return { data: x.data, outer: x.size, len: 1, inner: 1 };
  const first = big[0]!;
  const last = big[big.length - 1]!;
  let adjacent = true;
  for (let d = first; d <= last; d++) if (!reduced.has(d) && shape[d] !== 1) adjacent = false;
  if (adjacent) {
    return {
      data: x.data,
      outer: prod(shape.slice(0, first)),
      len: prod(shape.slice(first, last + 1)),
      inner: prod(shape.slice(last + 1)),
    };
  }
  const kept = shape.map((_, d) => d).filter((d) => !reduced.has(d));
  const perm = [...kept, ...axes];
  const data = x.data instanceof Float32Array ? new Float32Array(x.size) : new Float64Array(x.size);
  permuteInto(x.data, shape, perm, data);
  return { data, outer: prod(kept.map((d) => shape[d]!)), len: prod(axes.map((d) => shape[d]!)), inner: 1 };
}

/** Blocks around a single axis: (prod before, shape[axis], prod after). */
export function axisBlocks(x: Tensor, axis: number): Blocks {
  const s = x.shape;
  return { data: x.data, outer: prod(s.slice(0, axis)), len: s[axis]!, inner: prod(s.slice(axis + 1)) };
}

/** Blocks of Softmax-1/11's 2-D view: (prod before axis, prod from axis on). */
export function flattenBlocks(x: Tensor, axis: number): Blocks {
  const s = x.shape;
  return { data: x.data, outer: prod(s.slice(0, axis)), len: prod(s.slice(axis)), inner: 1 };
}

/**
 * out[o*inner + i] = fold of step over x[o, r, i] for r in 0..len, starting from init.
 * `out` must hold outer*inner elements.
 */
export function foldBlocks(b: Blocks, init: number, step: (acc: number, x: number) => number, out: Float64Array): void {
  const { data, outer, len, inner } = b;
  if (inner === 1) {
    for (let o = 0, base = 0; o < outer; o++, base += len) {
      let acc = init;
      for (let r = 0; r < len; r++) acc = step(acc, data[base + r]!);
      out[o] = acc;
    }
    return;
  }
  out.fill(init);
  for (let o = 0; o < outer; o++) {
    const ob = o * inner;
    for (let r = 0; r < len; r++) {
      const row = (o * len + r) * inner;
      for (let i = 0; i < inner; i++) out[ob + i] = step(out[ob + i]!, data[row + i]!);
    }
  }
}

/** Like foldBlocks, with x shifted by the per-output value shift[o*inner + i] before step. */
export function foldBlocksShifted(
  b: Blocks,
  shift: Float64Array,
  init: number,
  step: (acc: number, x: number) => number,
  out: Float64Array,
): void {
  const { data, outer, len, inner } = b;
  out.fill(init);
  for (let o = 0; o < outer; o++) {
    const ob = o * inner;
    for (let r = 0; r < len; r++) {
      const row = (o * len + r) * inner;
      for (let i = 0; i < inner; i++) out[ob + i] = step(out[ob + i]!, data[row + i]! - shift[ob + i]!);
    }
  }
}

/**
 * Index of the selected element of each block: the first (or, with `last`, the last) position
 * where `better(x, best)` cannot improve. `better(a, b)` is a strict preference (a > b for max).
 */
export function argBlocks(b: Blocks, better: (a: number, b: number) => boolean, last: boolean, out: Float64Array): void {
  const { data, outer, len, inner } = b;
  const best = new Float64Array(inner);
  for (let o = 0; o < outer; o++) {
    const ob = o * inner;
    for (let i = 0; i < inner; i++) {
      best[i] = data[o * len * inner + i]!;
      out[ob + i] = 0;
    }
    for (let r = 1; r < len; r++) {
      const row = (o * len + r) * inner;
      for (let i = 0; i < inner; i++) {
        const v = data[row + i]!;
        const cur = best[i]!;
        if (better(v, cur) || (last && !better(cur, v))) {
          best[i] = v;
          out[ob + i] = r;
        }
      }
    }
  }
}

/** Rounds double results into a fresh tensor of dtype `d`. */
export function toDtype(d: DType, shape: readonly number[], values: Float64Array): Tensor {
  const out = allocData(d, values.length);
  if (out instanceof Float64Array) return Tensor.normalized(d, shape, values);
  out.set(values);
  return Tensor.normalized(d, shape, out);
}
