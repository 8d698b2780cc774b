/**
 * Helpers for the NnOp tests: build a one-node module with GraphBuilder (so `infer` runs exactly
 * as in an imported model), interpret it, and compare against independently computed numbers.
 */
import { GraphBuilder, Module, Tensor, interpret } from '../src';
import type { AttrValue, Attrs, DType, Dim, TensorType } from '../src';
import { uniformTensor } from '../../../tests/support/harness';

export const int = (value: number): AttrValue => ({ kind: 'int', value });
export const float = (value: number): AttrValue => ({ kind: 'float', value });
export const ints = (value: readonly number[]): AttrValue => ({ kind: 'ints', value });
export const str = (value: string): AttrValue => ({ kind: 'string', value });

export interface OpOptions {
  readonly opset?: number;
  readonly numOutputs?: number;
  readonly name?: string;
}

/** Runs one op on the given tensors (undefined = omitted optional input). */
export function runOp(op: string, inputs: readonly (Tensor | undefined)[], attrs: Attrs = {}, opts: OpOptions = {}): Tensor[] {
  const b = new GraphBuilder(opts.opset ?? 23);
  const vals = inputs.map((t, i) => (t ? b.input(`x${i}`, { dtype: t.dtype, shape: t.shape }) : null));
  const outs = b.add(op, vals, attrs, { name: opts.name ?? 'n0', numOutputs: opts.numOutputs ?? 1 });
  const m = new Module(b.build(outs), { '': opts.opset ?? 23 });
  return interpret(m, inputs.filter((t): t is Tensor => t !== undefined));
}

/** Runs only shape inference for one op on the given input types; returns the output types. */
export function inferOp(op: string, inputs: readonly (TensorType | undefined)[], attrs: Attrs = {}, opts: OpOptions = {}): TensorType[] {
  const b = new GraphBuilder(opts.opset ?? 23);
  const vals = inputs.map((t, i) => (t ? b.input(`x${i}`, t) : null));
  return b.add(op, vals, attrs, { name: opts.name ?? 'n0', numOutputs: opts.numOutputs ?? 1 }).map((v) => v.type);
}

export const tt = (dtype: DType, shape: readonly Dim[]): TensorType => ({ dtype, shape });

/** Deterministic pseudo-random values in [-1, 1) (mulberry32). */
export const rand = (shape: readonly number[], seed = 1, dtype: DType = 'f32'): Tensor => uniformTensor(shape, seed, { dtype });

/** Row-major flat index of `idx` in `shape`. */
export function at(shape: readonly number[], idx: readonly number[]): number {
  let o = 0;
  for (let i = 0; i < shape.length; i++) o = o * shape[i]! + idx[i]!;
  return o;
}

/** Expects |got - want| <= atol + rtol|want| elementwise, with the same shape. */
export function expectClose(got: Tensor, want: ArrayLike<number>, shape: readonly number[], atol = 1e-5, rtol = 1e-5): void {
  expect([...got.shape]).toEqual([...shape]);
  expect(got.data.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const a = got.data[i]!;
    const b = want[i]!;
    if (Number.isNaN(b) && Number.isNaN(a)) continue;
    if (!(Math.abs(a - b) <= atol + rtol * Math.abs(b))) {
      throw new Error(`element ${i}: got ${a}, want ${b} (shape [${shape}])`);
    }
  }
}
