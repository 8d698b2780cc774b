/** Shared helpers of the context-parallel tests: run a pass on IR text, compare IR, compare numbers. */
import { Mesh, Module, Tensor, parseModule, printModule, structurallyEqual, verifySharded, verifyModule } from '@paradit/ir';
import { createPassContext, runPass } from '@paradit/passes';
import type { Pass } from '@paradit/passes';
import { withMesh } from '../../packages/passes/src/shard/mesh-options';

/** Runs one pass for `mesh` with the SPMD verifier before and after. */
export function runFor(pass: Pass, m: Module, mesh: Mesh): Module {
  verifyModule(m);
  const out = runPass(pass, m, withMesh(createPassContext(), mesh));
  verifySharded(out);
  return out;
}

/** Structural equality with IR text (value names and hints ignored); prints both on mismatch. */
export function expectIr(got: Module, expected: string): void {
  const want = parseModule(expected);
  if (!structurallyEqual(got, want)) {
    throw new Error(`IR differs.\n--- got\n${printModule(got)}\n--- expected\n${printModule(want)}`);
  }
}

/** Relative L2 error ||a - b|| / ||b||. */
export function relL2(a: Tensor, b: Tensor): number {
  expect(a.shape).toEqual(b.shape);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.size; i++) {
    num += (a.data[i]! - b.data[i]!) ** 2;
    den += b.data[i]! ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}
