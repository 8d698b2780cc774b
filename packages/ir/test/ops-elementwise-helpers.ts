/** Test helpers for the elementwise and reduction op tests: build one node, run it, compare. */
import { GraphBuilder, Module, Tensor, interpret } from '@paradit/ir';
import type { AttrValue, Attrs, DType, Dim, TensorType } from '@paradit/ir';
import { mulberry32 } from '../src/prng';
import { uniformTensor } from '../../../tests/support/harness';

export const int = (value: number): AttrValue => ({ kind: 'int', value });
export const float = (value: number): AttrValue => ({ kind: 'float', value });
export const str = (value: string): AttrValue => ({ kind: 'string', value });
export const ints = (value: number[]): AttrValue => ({ kind: 'ints', value });

export const t = (dtype: DType, shape: number[], values: number[]): Tensor => Tensor.from(dtype, shape, values);
export const f32 = (shape: number[], values: number[]): Tensor => t('f32', shape, values);

export interface OpOptions {
  readonly opset?: number;
  readonly numOutputs?: number;
  /** Indices of inputs given as constants (compile-time values such as axes or K). */
  readonly consts?: readonly number[];
}

/** Builds a one-node model `op(inputs)` (node name 'n0') and runs it in the interpreter. */
export function runOp(op: string, inputs: readonly (Tensor | null)[], attrs: Attrs = {}, opts: OpOptions = {}): Tensor[] {
  const opset = opts.opset ?? 17;
  const b = new GraphBuilder(opset);
  const feeds: Tensor[] = [];
  const vals = inputs.map((x, i) => {
    if (x === null) return null;
    if (opts.consts?.includes(i)) return b.constant(x);
    feeds.push(x);
    return b.input(`x${i}`, { dtype: x.dtype, shape: x.shape });
  });
  const outs = b.add(op, vals, attrs, { name: 'n0', numOutputs: opts.numOutputs ?? 1 });
  return interpret(new Module(b.build(outs), { '': opset }), feeds);
}

/** Infers the output types of `op` on inputs of the given types (null = omitted). */
export function inferOp(op: string, inputs: readonly (TensorType | null)[], attrs: Attrs = {}, opts: OpOptions = {}): TensorType[] {
  const b = new GraphBuilder(opts.opset ?? 17);
  const vals = inputs.map((ty, i) => (ty ? b.input(`x${i}`, ty) : null));
  return b.add(op, vals, attrs, { name: 'n0', numOutputs: opts.numOutputs ?? 1 }).map((v) => v.type);
}

export const ty = (dtype: DType, shape: Dim[]): TensorType => ({ dtype, shape });

/** Asserts dtype, shape and values; `tol` is an absolute tolerance (0 = exact, NaN matches NaN). */
export function expectTensor(got: Tensor, dtype: DType, shape: number[], values: number[], tol = 0): void {
  expect(got.dtype).toBe(dtype);
  expect([...got.shape]).toEqual(shape);
  expect(got.size).toBe(values.length);
  values.forEach((v, i) => {
    const g = got.data[i]!;
    if (Number.isNaN(v)) expect(g).toBeNaN();
    else if (tol === 0 || !Number.isFinite(v)) expect(g).toBe(v);
    else if (Math.abs(g - v) > tol) throw new Error(`element ${i}: got ${g}, expected ${v} (tolerance ${tol})`);
  });
}

/** A seeded generator of floats in [-1, 1) (mulberry32), for reference comparisons. */
export function seeded(seed: number): () => number {
  const u = mulberry32(seed);
  return () => u() * 2 - 1;
}

/** f32 values in [-1, 1) from mulberry32(seed) (the harness's uniformTensor). */
export const randomTensor = (shape: number[], seed: number): Tensor => uniformTensor(shape, seed);

/** Row-major multi-index of flat index `i` in `shape`. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    idx[d] = i % shape[d]!;
    i = Math.floor(i / shape[d]!);
  }
  return idx;
}

/** Flat index of a multi-index, with size-1 dims of `shape` broadcast (right-aligned). */
export function ravelBroadcast(idx: readonly number[], shape: readonly number[]): number {
  let flat = 0;
  const off = idx.length - shape.length;
  for (let d = 0; d < shape.length; d++) flat = flat * shape[d]! + (shape[d] === 1 ? 0 : idx[off + d]!);
  return flat;
}
