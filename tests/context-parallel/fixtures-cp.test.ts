/**
 * Every ../shared/fixtures model with test data, compiled for each mesh the issue lists (plus
 * ring 3, a degree that divides none of the fixtures' image token counts) and run on simulated
 * ranks, against PyTorch's own output with the unsharded check's tolerances (relative L2 1e-4
 * for fp32, 5e-2 for bf16). Where a mesh cannot apply (a batch of 1 under --cfg 2, heads not
 * divisible), the error must say why.
 */
import path from 'node:path';
import { IrError, Module, loadModel, makeMesh, runSimulated } from '@paradit/ir';
import { compareTensors, defaultTolerance, listTestDataSets, readTestDataSet, withinTolerance } from '@paradit/runtime';
import type { TestDataSet } from '@paradit/runtime';
import { createPassContext, runPipeline } from '@paradit/passes';
import { defaultPipeline } from '../../packages/passes/src/default-pipeline';
import { collectiveSummary, compileForMesh, simulatedExecutor } from '../../packages/passes/src/context-parallel';
import { checkModelDir } from '../../packages/cli/src/commands/check';
import { FIXTURES, HAVE_FIXTURES, NO_FIXTURES_REASON, fixturesWithTestData } from '../fixtures';
import { skipReason } from '../skip-reason';

if (!HAVE_FIXTURES) skipReason(__filename, NO_FIXTURES_REASON);

const MESHES: readonly [number, number, number][] = [[2, 1, 1], [1, 2, 1], [2, 2, 1], [4, 1, 1], [1, 4, 1], [1, 1, 2], [2, 1, 2], [1, 3, 1]];

describe('context parallelism on ../shared/fixtures', () => {
  if (!HAVE_FIXTURES) {
    test.skip(NO_FIXTURES_REASON, () => undefined);
    return;
  }
  for (const name of fixturesWithTestData()) {
    describe(name, () => {
      let fused: Module;
      let set: TestDataSet;
      beforeAll(() => {
        const dir = path.join(FIXTURES, name);
        fused = runPipeline(loadModel(dir), defaultPipeline(), createPassContext());
        set = readTestDataSet(listTestDataSets(dir)[0]!);
      });
      test('through the check command hook (checkModelDir with simulatedExecutor), U2 R2 C1', () => {
        const r = checkModelDir(path.join(FIXTURES, name), { execute: simulatedExecutor(makeMesh({ ulysses: 2, ring: 2 })) });
        expect(r.checks.length).toBeGreaterThan(0);
        expect(r.ok).toBe(true);
      });
      for (const [u, r, c] of MESHES) {
        test(`U${u} R${r} C${c}`, () => {
          const mesh = makeMesh({ ulysses: u, ring: r, cfg: c });
          const batch = fused.graph.nodes.find((n) => n.op === 'attention')!.inputs[0]!.shape[0] as number;
          let plan: Module;
          try {
            plan = compileForMesh(fused, mesh, { prepared: true });
          } catch (e) {
            if (!(e instanceof IrError)) throw e;
            // The only acceptable refusals: a batch too small for cfg, heads not divisible by U.
            if (batch % c !== 0) expect(e.message).toMatch(/--cfg 2 splits an \[uncond; cond\] batch over 2 ranks, but attention '.*' runs on batch 1 .*use --cfg 1/);
            else expect(e.message).toMatch(/heads? (is|are) not divisible by ulysses degree \d+; use --ring or a degree that divides \d+ \(/);
            // eslint-disable-next-line no-console
            console.log(`${name} U${u} R${r} C${c}: refused: ${e.message}`);
            return;
          }
          const got = runSimulated(plan, mesh, set.inputs);
          set.outputs.forEach((ref, k) => {
            const cmp = compareTensors(got[k]!, ref);
            const tol = defaultTolerance(ref.dtype);
            // eslint-disable-next-line no-console
            console.log(`${name} U${u} R${r} C${c}: rel L2 ${cmp.relL2.toExponential(2)} (tol ${tol}); ${JSON.stringify(collectiveSummary(plan))}`);
            expect(withinTolerance(cmp, tol)).toBe(true);
          });
        });
      }
    });
  }
});
