/**
 * Shared helpers of the context-parallel tests: run a pass for a mesh with the verifier (ir's verify: the SPMD
 * rule for the placed output).
 * IR comparison and rel. L2 come from the repository's one harness (tests/support/harness.ts).
 */
import { Mesh, Module, verify } from '@paradit/ir';
import { createPassContext, runPass } from '@paradit/passes';
import type { Pass } from '@paradit/passes';
import { withMesh } from '../../src/context-parallel/shard/mesh-options';

/** Runs one pass for `mesh` with the SPMD verifier before and after. */
export function runFor(pass: Pass, m: Module, mesh: Mesh): Module {
  verify(m);
  const out = runPass(pass, m, withMesh(createPassContext(), mesh));
  verify(out); // placements declared: the SPMD rule
  return out;
}

export { expectIr, relL2 } from '../../../../tests/support/harness';
