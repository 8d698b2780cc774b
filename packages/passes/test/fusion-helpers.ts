/**
 * Helpers shared by the fuse-* pass tests: numeric equivalence of a module before and after a
 * fusion, measured as the relative L2 error of every output (fused ops compute in fp32 and round
 * once, so results differ from the decomposed graph by rounding only).
 */
import { Module, Tensor, interpret } from '@paradit/ir';
import { randomInputs, relL2 } from './helpers';

/** Max relative L2 error over the outputs of interpret(after) against interpret(before). */
export function fusionError(before: Module, after: Module, inputs?: readonly Tensor[], seed = 1): number {
  const ins = inputs ? [...inputs] : randomInputs(before, seed);
  const want = interpret(before, ins);
  const got = interpret(after, ins);
  expect(got.length).toBe(want.length);
  let worst = 0;
  want.forEach((w, k) => {
    const g = got[k]!;
    expect(g.dtype).toBe(w.dtype);
    expect([...g.shape]).toEqual([...w.shape]);
    const e = relL2(g, w);
    worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
  });
  return worst;
}

/** Asserts interpret(after) ~ interpret(before) within `tol` relative L2 (fp32 default 1e-6). */
export function expectFusedClose(before: Module, after: Module, tol = 1e-6, inputs?: readonly Tensor[]): void {
  expect(fusionError(before, after, inputs)).toBeLessThanOrEqual(tol);
}

/** Number of nodes applying `op` in the main graph. */
export function countOp(m: Module, op: string): number {
  return m.graph.nodes.filter((n) => n.op === op).length;
}
