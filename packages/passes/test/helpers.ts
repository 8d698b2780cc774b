/**
 * Shared test helpers for the pass tests: IR from text, running one pass with the verifier on,
 * structural comparison with a readable diff, seeded random inputs and output comparison.
 */
import { Module, Tensor, interpret, isFloat, mulberry32, parseModule, printModule, structurallyEqual } from '@paradit/ir';
import type { DType } from '@paradit/ir';
import { Pass, PassContext, PassContextInit, createPassContext, runPipeline } from '@paradit/passes';

/** IR from text (a bare `graph ... { }` is opset 18). */
export function ir(text: string, opset = 18): Module {
  return parseModule(text, { opset });
}

/** A context with the verifier on (tests always verify around every pass). */
export function testContext(init: PassContextInit = {}): PassContext {
  return createPassContext({ verify: true, ...init });
}

/** Runs one pass through runPipeline (so the verifier checks its input and output). */
export function runOne(pass: Pass, m: Module, init: PassContextInit = {}): Module {
  return runPipeline(m, [pass], testContext(init));
}

/** Fails with both modules printed (without names) when they are not structurally equal. */
export function expectIr(got: Module, expected: Module | string): void {
  const exp = typeof expected === 'string' ? ir(expected, got.opset) : expected;
  if (structurallyEqual(got, exp)) return;
  const show = (m: Module): string => printModule(m, { names: false });
  throw new Error(`IR differs from the expected one.\n--- got:\n${show(got)}\n--- expected:\n${show(exp)}`);
}

/** mulberry32: a tiny seeded PRNG. */
export const rng = mulberry32;

/** Seeded inputs for every graph input: floats uniform in [-1, 1), integers in [0, 4), random bools. */
export function randomInputs(m: Module, seed: number): Tensor[] {
  const r = rng(seed);
  return m.graph.inputs.map((v) => {
    const shape = v.shape.map((d) => (typeof d === 'number' ? d : 2));
    const n = shape.reduce((a, b) => a * b, 1);
    const vals = new Array<number>(n);
    for (let i = 0; i < n; i++) vals[i] = sample(v.dtype, r);
    return Tensor.from(v.dtype, shape, vals);
  });
}

function sample(d: DType, r: () => number): number {
  if (isFloat(d)) return r() * 2 - 1;
  if (d === 'bool') return r() < 0.5 ? 0 : 1;
  return Math.floor(r() * 4);
}

/** Relative L2 error of `got` against `ref`: |got - ref| / |ref| (0 when both are 0). */
export function relL2(got: Tensor, ref: Tensor): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.size; i++) {
    const d = got.data[i]! - ref.data[i]!;
    num += d * d;
    den += ref.data[i]! * ref.data[i]!;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
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
