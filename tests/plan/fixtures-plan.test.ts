/**
 * Every ../shared/fixtures model with test data, compiled to a plan (fp32 and bf16) and run on
 * the CPU backend, matches PyTorch's reference output: relative L2 <= 1e-3 for fp32 plans of fp32
 * models, <= 5e-2 when the plan or the reference is bf16 (run --compare's policy). Skips with a
 * printed reason when the fixtures are absent.
 */
import path from 'node:path';
import { compileToPlan } from '@paradit/compiler';
import { CpuPlanBackend, compareTensors, listTestDataSets, loadPlan, readTestDataSet } from '@paradit/runtime';
import { FIXTURES, HAVE_FIXTURES, NO_FIXTURES_REASON, fixturesWithTestData } from '../fixtures';
import { tempDir } from './helpers';
import { skipReason } from '../skip-reason';

if (!HAVE_FIXTURES) skipReason(__filename, NO_FIXTURES_REASON);

const cases = fixturesWithTestData().flatMap((f) => (['f32', 'bf16'] as const).map((d) => [f, d] as const));

if (!HAVE_FIXTURES) {
  it.skip(NO_FIXTURES_REASON, () => undefined);
  console.log(NO_FIXTURES_REASON);
}

// jest rejects an empty it.each table: without fixtures only the skip above is registered.
(cases.length > 0 ? describe : describe.skip)('fixture plans on the CPU backend', () => {
  it.each(cases.length > 0 ? cases : [['(no fixtures)', 'f32'] as const])('%s (%s plan) matches the reference output', async (name, dtype) => {
    const model = path.join(FIXTURES, name);
    const out = path.join(tempDir(), 'plan');
    const r = await compileToPlan(model, out, { dtype, nvcc: false });
    const set = readTestDataSet(listTestDataSets(model)[0]!);
    const backend = new CpuPlanBackend(loadPlan(out, { verifyWeights: false }));
    const outs = await backend.step(new Map(r.plan.inputs.map((x, k) => [x.name, set.inputs[k]!])));
    r.plan.outputs.forEach((x, k) => {
      const ref = set.outputs[k]!;
      const tol = dtype === 'f32' && ref.dtype === 'f32' ? 1e-3 : 5e-2;
      const c = compareTensors(outs.get(x.name)!, ref);
      expect({ output: x.name, ok: c.relL2 <= tol && c.nanMismatch === 0, relL2: c.relL2 <= tol ? 'ok' : c.relL2 }).toEqual({ output: x.name, ok: true, relL2: 'ok' });
    });
  });
});
