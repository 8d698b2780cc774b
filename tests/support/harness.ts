/**
 * The one test harness of the repository (issue 14, item 12): IR from text, IR comparison with a
 * readable diff, seeded tensors and inputs, and output comparison (rel. L2, max-abs). Every
 * package's tests and tests/ import it; it is test-only (not an entry of any package) and imports
 * nothing but @paradit/ir and the runtime's pure comparison module, so a runtime test using it
 * gains no dependency on passes or codegen.
 *
 * Helpers that need a package above ir (running a pass, compiling a plan) live beside that
 * package's tests (packages/passes/test/helpers.ts, tests/plan/helpers.ts) and build on this file.
 */
import { Module, Tensor, interpret, isFloat, mulberry32, parseModule, printModule, structurallyEqual } from '@paradit/ir';
import type { DType, Value } from '@paradit/ir';
// Only the comparison module (pure, imports types of ir): the same rel. L2 that `check` and
// `run --compare` use, without loading the rest of the runtime into ir's tests.
import { compareTensors } from '../../packages/runtime/src/compare';

// ---------------------------------------------------------------------------------------------
// IR text

/** IR from text (a bare `graph ... { }` is opset `opset`, 18 unless told). */
export function ir(text: string, opset = 18): Module {
  return parseModule(text, { opset });
}

/**
 * Fails with both modules printed (without value names) unless `got` is structurally equal to
 * `expected` (a Module, or IR text read at `got`'s opset). Value names and hints are ignored.
 */
export function expectIr(got: Module, expected: Module | string): void {
  const exp = typeof expected === 'string' ? ir(expected, got.opset) : expected;
  if (structurallyEqual(got, exp)) return;
  const show = (m: Module): string => printModule(m, { names: false });
  throw new Error(`IR differs from the expected one.\n--- got:\n${show(got)}\n--- expected:\n${show(exp)}`);
}

// ---------------------------------------------------------------------------------------------
// Seeded tensors

/** mulberry32: the seeded PRNG of every test (uniform in [0, 1)). */
export const rng = mulberry32;

/** A seed or an already running generator (to draw several tensors from one stream). */
export type SeedOrRng = number | (() => number);

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * A tensor of `shape` with values uniform in [-scale, scale) from mulberry32 (`u * 2 - 1`, scaled;
 * f32 unless `dtype` says otherwise: other float dtypes are rounded to the dtype).
 */
export function uniformTensor(shape: readonly number[], seed: SeedOrRng, opts: { scale?: number; dtype?: DType } = {}): Tensor {
  const u = typeof seed === 'number' ? rng(seed) : seed;
  const scale = opts.scale ?? 1;
  const dtype = opts.dtype ?? 'f32';
  const n = numel(shape);
  if (dtype === 'f32') {
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = (u() * 2 - 1) * scale;
    return new Tensor('f32', [...shape], v);
  }
  const v = new Array<number>(n);
  for (let i = 0; i < n; i++) v[i] = (u() * 2 - 1) * scale;
  return Tensor.from(dtype, [...shape], v);
}

export interface RandomInputOptions {
  /** Integer inputs are drawn from [intMin, intMin + intCount) (default [0, 4)). */
  readonly intMin?: number;
  readonly intCount?: number;
  /** Size given to symbolic dims (2). */
  readonly symbolicDim?: number;
}

/** One seeded value of dtype `d`: floats uniform in [-1, 1), integers as `opts` says, bools 0/1. */
function sample(d: DType, r: () => number, opts: RandomInputOptions): number {
  if (isFloat(d)) return r() * 2 - 1;
  if (d === 'bool') return r() < 0.5 ? 0 : 1;
  return (opts.intMin ?? 0) + Math.floor(r() * (opts.intCount ?? 4));
}

/**
 * Seeded inputs for every value of `inputs` (a Module's graph inputs, or a Graph's) from one
 * mulberry32 stream: floats uniform in [-1, 1), integers in [0, 4) unless told, random bools.
 */
export function randomInputs(inputs: Module | readonly Value[], seed: number, opts: RandomInputOptions = {}): Tensor[] {
  const vals = inputs instanceof Module ? inputs.graph.inputs : inputs;
  const r = rng(seed);
  return vals.map((v) => {
    const shape = v.shape.map((d) => (typeof d === 'number' ? d : (opts.symbolicDim ?? 2)));
    const n = numel(shape);
    const xs = new Array<number>(n);
    for (let i = 0; i < n; i++) xs[i] = sample(v.dtype, r, opts);
    return Tensor.from(v.dtype, shape, xs);
  });
}

// ---------------------------------------------------------------------------------------------
// Comparison

export { compareTensors };

function sameShape(got: Tensor, ref: Tensor): void {
  const a = got.shape.join(',');
  const b = ref.shape.join(',');
  if (a !== b) throw new Error(`cannot compare a [${a}] tensor with a [${b}] reference`);
}

/**
 * Relative L2 error ||got - ref|| / ||ref|| (the runtime's compareTensors: 0 when both are 0,
 * Infinity when ref is 0 and got is not, or when a NaN of one tensor is not a NaN of the other).
 * Shapes must be equal.
 */
export function relL2(got: Tensor, ref: Tensor): number {
  sameShape(got, ref);
  return compareTensors(got, ref).relL2;
}

/** Largest |got - ref| over elements (NaNs in the same place are skipped; Infinity for a NaN mismatch). Shapes must be equal. */
export function maxAbs(got: Tensor, ref: Tensor): number {
  sameShape(got, ref);
  const c = compareTensors(got, ref);
  return c.nanMismatch > 0 ? Infinity : c.maxAbs;
}

/**
 * interpret(after) equals interpret(before) on seeded random inputs. `tolerance: 'exact'` asks for
 * equal values element by element (NaN equal to NaN, -0 equal to +0); a number is an elementwise
 * relative tolerance |a - b| <= tol * |b| (+1e-30).
 */
export function expectSameResults(before: Module, after: Module, opts: { seed?: number; inputs?: Tensor[]; tolerance: 'exact' | number }): void {
  const inputs = opts.inputs ?? randomInputs(before, opts.seed ?? 1);
  const want = interpret(before, inputs);
  const got = interpret(after, inputs);
  expect(got.length).toBe(want.length);
  want.forEach((w, k) => {
    const g = got[k]!;
    expect(g.dtype).toBe(w.dtype);
    expect([...g.shape]).toEqual([...w.shape]);
    for (let i = 0; i < w.size; i++) {
      const a = g.data[i]!;
      const b = w.data[i]!;
      const ok = Number.isNaN(b) ? Number.isNaN(a) : opts.tolerance === 'exact' ? a === b : Math.abs(a - b) <= opts.tolerance * Math.abs(b) + 1e-30;
      if (!ok) throw new Error(`output ${k} element ${i}: got ${a}, expected ${b} (tolerance ${opts.tolerance})`);
    }
  });
}

/** Op counts of a module's main graph. */
export function opCounts(m: Module): Record<string, number> {
  const c: Record<string, number> = {};
  for (const n of m.graph.nodes) c[n.op] = (c[n.op] ?? 0) + 1;
  return c;
}
