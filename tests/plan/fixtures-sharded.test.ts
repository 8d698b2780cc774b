/**
 * Every ../shared/fixtures model with test data compiled to a sharded plan for each mesh of the
 * issue that applies to it, run through the CPU plan backend on simulated ranks (`paradit check
 * DIR --backend cpu --ulysses U --ring R --cfg C`), against PyTorch's recorded outputs with the
 * unsharded plan tolerances (relative L2 1e-3 for fp32 plans, 5e-2 for bf16). A mesh that cannot
 * apply (cfg 2 on a batch of 1) must be refused with the reason.
 */
import path from 'node:path';
import { makeMesh } from '@paradit/ir';
import { checkModelDirOnPlan } from '../../packages/cli/src/commands/check-backend';
import { FIXTURES, HAVE_FIXTURES, NO_FIXTURES_REASON, fixturesWithTestData } from '../fixtures';
import { skipReason } from '../skip-reason';

if (!HAVE_FIXTURES) skipReason(__filename, NO_FIXTURES_REASON);

const MESHES: readonly [number, number, number][] = [[2, 1, 1], [1, 2, 1], [2, 2, 1], [4, 1, 1], [1, 1, 2], [2, 1, 2]];
/** Fixtures whose test data has a batch of 2 (the CFG pair). */
const CFG_BATCH = new Set(['sd3-ts17', 'sd3-dynamo23', 'wan-dynamo18', 'cogvideox-dynamo18']);

describe('sharded plans of ../shared/fixtures on simulated ranks (CPU plan backend)', () => {
  const names = fixturesWithTestData();
  if (!HAVE_FIXTURES || names.length === 0) {
    test.skip(NO_FIXTURES_REASON, () => undefined);
    return;
  }
  for (const name of names) {
    for (const [u, r, c] of MESHES) {
      const applies = c === 1 || CFG_BATCH.has(name);
      test(`${name} ulysses ${u} ring ${r} cfg ${c}${applies ? '' : ' (refused: batch 1)'}`, async () => {
        const mesh = makeMesh({ ulysses: u, ring: r, cfg: c });
        const run = checkModelDirOnPlan(path.join(FIXTURES, name), { backend: 'cpu', mesh });
        if (!applies) {
          await expect(run).rejects.toThrow(/cfg|batch/i);
          return;
        }
        const report = await run;
        expect(report.mesh).toEqual({ cfg: c, ring: r, ulysses: u });
        expect(report.checks.length).toBeGreaterThan(0);
        for (const ch of report.checks) expect(ch.relL2).toBeLessThanOrEqual(ch.tolerance);
        expect(report.ok).toBe(true);
      });
    }
  }
});
