/**
 * Building blocks of the elementwise rule tables: dtype classes with readable checks, arity
 * checks, and factories for the common rule shapes (unary map, broadcasting binary map) so each
 * op's entry reduces to its doc line, accepted dtypes and scalar function.
 *
 * A factory's `make(ctx, dtype)` reads and validates the node's attributes once and returns the
 * scalar function; `infer` calls it too, so a bad attribute fails when the node is built.
 */
import type { Dim, TensorType } from '../graph';
import { DType, DTYPES, isFloat, isInteger } from '../dtype';
import type { TensorData } from '../tensor';
import { Tensor, allocData, numel } from '../tensor';
import type { InferCtx, OpRule, RuleCtx, RunCtx } from './rule';
import { broadcastShapes, need, tensorType } from './rule';
import { Binary, BinaryRow, Unary, mapBinaryRows, mapUnary, rowOf } from './broadcast';

/** Which dtypes an operand accepts. */
export type DtypeClass = 'float' | 'numeric' | 'signed' | 'integer' | 'unsigned' | 'bool' | 'any';

const CLASS_TEXT: { readonly [K in DtypeClass]: string } = {
  float: 'a float type (f32, f16, bf16, f64, fp8)',
  numeric: 'a numeric type (float or integer)',
  signed: 'a signed numeric type (float or signed integer)',
  integer: 'an integer type (i8..i64, u8..u64)',
  unsigned: 'an unsigned integer type (u8, u16, u32, u64)',
  bool: 'bool',
  any: 'any type',
};

function inClass(d: DType, cls: DtypeClass): boolean {
  switch (cls) {
    case 'float':
      return isFloat(d);
    case 'numeric':
      return d !== 'bool';
    case 'signed':
      return isFloat(d) || DTYPES[d].kind === 'int';
    case 'integer':
      return isInteger(d);
    case 'unsigned':
      return DTYPES[d].kind === 'uint';
    case 'bool':
      return d === 'bool';
    case 'any':
      return true;
  }
}

/** Fails unless dtype `d` of operand `what` belongs to `cls`. */
export function checkClass(ctx: RuleCtx, d: DType, cls: DtypeClass, what: string): void {
  if (!inClass(d, cls)) ctx.fail(`${what} must be ${CLASS_TEXT[cls]}, got ${d}`);
}

/** Fails unless the node has between `min` and `max` inputs (omitted optional ones count). */
export function checkArity(ctx: InferCtx, min: number, max: number): void {
  const n = ctx.inputs.length;
  if (n < min || n > max) {
    const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
    ctx.fail(`expected ${want} input${max === 1 ? '' : 's'}, got ${n}`);
  }
}

/** Fails unless operand `what` has dtype `want`: "input 1 (B): expected f32, got f16". */
export function checkDtype(ctx: RuleCtx, got: DType, want: DType, what: string): void {
  if (got !== want) ctx.fail(`${what}: expected ${want} (the dtype of input 0), got ${got}`);
}

/** Broadcast output shape of concrete tensors at run time (static dims only). */
export function runShape(ctx: RuleCtx, shapes: readonly (readonly number[])[]): number[] {
  return broadcastShapes(ctx, shapes) as number[];
}

/** Output type of a broadcast of `types` with the given dtype. */
export function broadcastType(ctx: RuleCtx, types: readonly TensorType[], dtype: DType): TensorType {
  const shape: Dim[] = broadcastShapes(ctx, types.map((t) => t.shape));
  return tensorType(dtype, shape);
}

/** A whole-array loop out[i] = f(x[i]), written out per hot op so that f is inlined. */
export type UnaryLoop = (x: TensorData, out: TensorData) => void;

interface UnaryOptions {
  /** Output dtype: the input's (default) or bool (predicates). */
  readonly out?: 'same' | 'bool';
  /** A hand-written loop (hot ops), used instead of mapping the scalar function. */
  readonly loop?: (ctx: RuleCtx) => UnaryLoop;
}

/** A rule for `Y = f(X)` elementwise. */
export function unaryRule(doc: string, cls: DtypeClass, make: (ctx: RuleCtx, d: DType) => Unary, opts: UnaryOptions = {}): OpRule {
  const outDtype = (d: DType): DType => (opts.out === 'bool' ? 'bool' : d);
  return {
    doc,
    infer(ctx) {
      checkArity(ctx, 1, 1);
      const x = need(ctx, ctx.inputs, 0);
      checkClass(ctx, x.dtype, cls, 'input 0 (X)');
      make(ctx, x.dtype);
      return [tensorType(outDtype(x.dtype), x.shape, x.placement)];
    },
    run(ctx) {
      const x = need(ctx, ctx.inputs, 0);
      const d = outDtype(x.dtype);
      const out = allocData(d, x.size);
      if (opts.loop) opts.loop(ctx)(x.data, out);
      else mapUnary(x.data, out, make(ctx, x.dtype));
      return [Tensor.normalized(d, x.shape, out)];
    },
  };
}

interface BinaryOptions {
  /** Output dtype: input 0's (default) or bool (comparisons). */
  readonly out?: 'same' | 'bool';
  /** Accepted dtypes of input 1 when they may differ from input 0's (Pow's exponent). */
  readonly second?: (opset: number) => DtypeClass | 'same';
  /** A hand-written row loop for dtype d (hot ops), used instead of the scalar function. */
  readonly row?: (d: DType) => BinaryRow | undefined;
}

/** A rule for `C = f(A, B)` elementwise with numpy broadcasting. */
export function binaryRule(doc: string, cls: DtypeClass, make: (ctx: RuleCtx, d: DType) => Binary, opts: BinaryOptions = {}): OpRule {
  const outDtype = (d: DType): DType => (opts.out === 'bool' ? 'bool' : d);
  return {
    doc,
    infer(ctx) {
      checkArity(ctx, 2, 2);
      const a = need(ctx, ctx.inputs, 0);
      const b = need(ctx, ctx.inputs, 1);
      checkClass(ctx, a.dtype, cls, 'input 0 (A)');
      const second = opts.second?.(ctx.opset) ?? 'same';
      if (second === 'same') checkDtype(ctx, b.dtype, a.dtype, 'input 1 (B)');
      else checkClass(ctx, b.dtype, second, 'input 1 (B)');
      make(ctx, a.dtype);
      return [broadcastType(ctx, [a, b], outDtype(a.dtype))];
    },
    run(ctx) {
      const d = need(ctx, ctx.inputs, 0).dtype;
      return [runBinary(ctx, opts.row?.(d) ?? rowOf(make(ctx, d)), outDtype(d))];
    },
  };
}

/** Runs a row loop over inputs 0 and 1 with broadcasting into a fresh tensor of dtype `d`. */
export function runBinary(ctx: RunCtx, row: BinaryRow, d: DType): Tensor {
  const a = need(ctx, ctx.inputs, 0);
  const b = need(ctx, ctx.inputs, 1);
  const shape = runShape(ctx, [a.shape, b.shape]);
  const out = allocData(d, numel(shape));
  mapBinaryRows(a, b, shape, out, row);
  return Tensor.normalized(d, shape, out);
}

/** Reads a float attribute, failing unless it is finite. */
export function finiteAttr(ctx: RuleCtx, name: string, def: number): number {
  const v = ctx.attr.float(name, def);
  if (!Number.isFinite(v)) ctx.fail(`attribute '${name}' must be finite, got ${v}`);
  return v;
}

/** Reads a 0/1 int attribute. */
export function flagAttr(ctx: RuleCtx, name: string, def: 0 | 1): boolean {
  const v = ctx.attr.int(name, def);
  if (v !== 0 && v !== 1) ctx.fail(`attribute '${name}' must be 0 or 1, got ${v}`);
  return v === 1;
}
