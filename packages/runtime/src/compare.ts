/**
 * Output comparison used by `check`, `run --compare` and the tests: max absolute error and the
 * relative L2 error ||got - ref|| / ||ref||, with the tolerance policy of the CLI.
 */
import type { DType, Tensor } from '@paradit/ir';

interface Comparison {
  readonly maxAbs: number;
  /** Infinity when any element is NaN in one tensor but not the other (so no test can pass a NaN output). */
  readonly relL2: number;
  /** Elements that are NaN in one tensor but not in the other. */
  readonly nanMismatch: number;
}

export function compareTensors(got: Tensor, ref: Tensor): Comparison {
  if (got.data.length !== ref.data.length) {
    throw new Error(`cannot compare [${got.shape.join(',')}] with [${ref.shape.join(',')}]`);
  }
  let maxAbs = 0;
  let num = 0;
  let den = 0;
  let nanMismatch = 0;
  const g = got.data;
  const r = ref.data;
  for (let i = 0; i < g.length; i++) {
    const a = g[i]!;
    const b = r[i]!;
    if (Number.isNaN(a) || Number.isNaN(b)) {
      if (Number.isNaN(a) !== Number.isNaN(b)) nanMismatch++;
      continue;
    }
    if (a === b) {
      den += b * b;
      continue; // also covers equal infinities
    }
    const d = Math.abs(a - b);
    if (d > maxAbs) maxAbs = d;
    num += d * d;
    den += b * b;
  }
  const relL2 = den === 0 ? (num === 0 ? 0 : Infinity) : Math.sqrt(num / den);
  return { maxAbs, relL2: Number.isNaN(relL2) || nanMismatch > 0 ? Infinity : relL2, nanMismatch };
}

/** Relative-L2 tolerance for a reference output of this dtype (issue 2's policy). */
export function defaultTolerance(dtype: DType): number {
  return dtype === 'bf16' || dtype === 'f16' || dtype.startsWith('f8') ? 5e-2 : 1e-4;
}

export function withinTolerance(c: Comparison, tol: number): boolean {
  return c.nanMismatch === 0 && c.relL2 <= tol;
}
