/**
 * Helpers for the shape-op tests: build a one-node graph through GraphBuilder (so `infer` runs
 * and compile-time folding happens exactly as in real graphs), run it with the interpreter (which
 * checks every output against the inferred type), and make attributes tersely.
 */
import { GraphBuilder, Module, Tensor, interpret } from '@paradit/ir';
import type { AttrValue, Attrs, DType, Dim, TensorType, Value } from '@paradit/ir';

export const ints = (value: readonly number[]): AttrValue => ({ kind: 'ints', value });
export const int = (value: number): AttrValue => ({ kind: 'int', value });
export const float = (value: number): AttrValue => ({ kind: 'float', value });
export const floats = (value: readonly number[]): AttrValue => ({ kind: 'floats', value });
export const str = (value: string): AttrValue => ({ kind: 'string', value });
export const tensorAttr = (value: Tensor): AttrValue => ({ kind: 'tensor', value });

export const f32 = (shape: readonly number[], values: readonly number[]): Tensor => Tensor.from('f32', shape, values);
export const i64 = (shape: readonly number[], values: readonly number[]): Tensor => Tensor.from('i64', shape, values);
export const i64v = (values: readonly number[]): Tensor => Tensor.from('i64', [values.length], values);
/** 0, 1, 2, ... in the given shape. */
export const iota = (shape: readonly number[], dtype: DType = 'f32'): Tensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(dtype, shape, Array.from({ length: n }, (_, i) => i));
};

/** An operand: a runtime input (its value unknown when inferring) or a compile-time constant. */
export type Operand = Tensor | { readonly konst: Tensor } | null;
export const konst = (t: Tensor): Operand => ({ konst: t });

export interface OpOptions {
  readonly opset?: number;
  readonly numOutputs?: number;
  readonly name?: string;
}

export interface OpResult {
  /** Output types as inferred by the builder. */
  readonly types: TensorType[];
  /** Outputs as computed by the interpreter. */
  readonly outputs: Tensor[];
  /** Values folded at build time, when all inputs were constants. */
  readonly folded: (Tensor | undefined)[];
}

/** Builds `op` over the operands and runs it. Runtime inputs keep their static shapes. */
export function runOp(op: string, operands: readonly Operand[], attrs: Attrs = {}, opts: OpOptions = {}): OpResult {
  const b = new GraphBuilder(opts.opset ?? 18);
  const feeds: Tensor[] = [];
  const vals = operands.map((o, i): Value | null => {
    if (o === null) return null;
    if (o instanceof Tensor) {
      feeds.push(o);
      return b.input(`in${i}`, { dtype: o.dtype, shape: o.shape });
    }
    return b.constant(o.konst, `c${i}`);
  });
  const outs = b.add(op, vals, attrs, { name: opts.name ?? 'n0', numOutputs: opts.numOutputs ?? 1 });
  const m = new Module(b.build(outs), { '': opts.opset ?? 18 });
  return {
    types: outs.map((v) => v.type),
    outputs: interpret(m, feeds),
    folded: outs.map((v) => b.valueOf(v)),
  };
}

/** Infers the output types of `op` over inputs of the given types (some with known values). */
export function inferOp(
  op: string,
  inputs: readonly (TensorType | Tensor | null)[],
  attrs: Attrs = {},
  opts: OpOptions = {},
): TensorType[] {
  const b = new GraphBuilder(opts.opset ?? 18);
  const vals = inputs.map((t, i) => {
    if (t === null) return null;
    if (t instanceof Tensor) return b.constant(t, `c${i}`);
    return b.input(`in${i}`, t);
  });
  return b.add(op, vals, attrs, { name: opts.name ?? 'n0', numOutputs: opts.numOutputs ?? 1 }).map((v) => v.type);
}

export const ty = (dtype: DType, shape: readonly Dim[]): TensorType => ({ dtype, shape });

/** Plain numbers of a tensor, for toEqual. */
export const vals = (t: Tensor | undefined): number[] => (t ? Array.from(t.data) : []);
