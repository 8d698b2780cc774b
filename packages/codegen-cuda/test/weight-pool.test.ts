/**
 * The random-weight workers reproduce the IR's seeded generator bit for bit (randomTensor, then
 * the plan's byte encoding), for every dtype pair they take; and a plan written with workers has
 * the same weights.bin (sha256) as one written on the main thread.
 */
import { ConstData, Value, randomTensor, tensorType } from '@paradit/ir';
import { RandomWeightPool, convertTensor, randomJob, writePlan, compileModule } from '@paradit/codegen-cuda';
import { encodeTensor } from '@paradit/runtime';
import path from 'node:path';
import { planMeta, tempDir } from '../../../tests/plan/helpers';
import { buildTinyDit } from '../../../tests/models/tiny-dit';

describe('random weight workers', () => {
  const pool = new RandomWeightPool(2);
  afterAll(() => pool.close());

  it.each([
    ['f32', 'f32', [64, 48]],
    ['bf16', 'bf16', [3, 1000]],
    ['f32', 'bf16', [70000]],
    ['bf16', 'f32', [5]],
  ] as const)('%s source encoded as %s %j matches randomTensor', async (src, out, shape) => {
    const seed = 2 ** 40 + 12345;
    const c = new ConstData(tensorType(src, [...shape]), { kind: 'random', seed }, () => randomTensor(src, [...shape], seed));
    const job = randomJob(c, out);
    expect(job).toBeDefined();
    const got = await pool.run(job!);
    const want = encodeTensor(convertTensor(randomTensor(src, [...shape], seed), out), out);
    expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
  });

  it('loaded or non-random constants stay on the main thread', () => {
    const t = randomTensor('f32', [4], 1);
    expect(randomJob(ConstData.of(t), 'f32')).toBeUndefined();
    void Value;
  });

  it('weights.bin is the same with and without workers', async () => {
    const c = compileModule(buildTinyDit(), { dtype: 'bf16' });
    const a = await writePlan(path.join(tempDir(), 'p'), c.built, c.memory, planMeta('bf16'), { nvcc: false, workers: 0 });
    const b = await writePlan(path.join(tempDir(), 'p'), c.built, c.memory, planMeta('bf16'), { nvcc: false, workers: 2, workerMinBytes: 0 });
    expect(b.plan.weights.sha256).toBe(a.plan.weights.sha256);
  });
});
