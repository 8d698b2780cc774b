/**
 * The random-weight workers reproduce the IR's seeded generator bit for bit (randomTensor, then
 * the plan's byte encoding), for every dtype pair they take; and a plan written with workers has
 * the same weights.bin (sha256) as one written on the main thread.
 */
import { ConstData, GraphBuilder, Module, Value, randomTensor, tensorType } from '@paradit/ir';
import { RandomWeightPool, convertTensor, randomJob, writePlan } from '@paradit/codegen-cuda';
import { compileModule } from '@paradit/compiler';
import { encodeTensor } from '@paradit/runtime';
import path from 'node:path';
import { planMeta, tempDir } from '../../../tests/plan/helpers';

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
  });

  it('weights.bin is the same with and without workers (random f32 weights converted to bf16)', async () => {
    const b = new GraphBuilder(18);
    const rand = (shape: number[], seed: number): Value => b.lazyConstant(new ConstData(tensorType('f32', shape), { kind: 'random', seed }, () => randomTensor('f32', shape, seed)), `w${seed}`);
    // Larger than the passes' 65536-element limit for reading constant data, so never loaded.
    const x = b.input('x', { dtype: 'f32', shape: [2, 256] });
    const [h] = b.add('linear', [x, rand([256, 512], 1), rand([512], 2)], { transB: { kind: 'int', value: 0 } });
    const [y] = b.add('linear', [h!, rand([512, 160], 3)], { transB: { kind: 'int', value: 0 } }, { outputNames: ['y'] });
    const c = compileModule(new Module(b.build([y!]), { '': 18 }), { dtype: 'bf16' });
    expect(c.memory.weights.filter((v) => randomJob(v.constant!, 'bf16') !== undefined)).toHaveLength(2);
    const main = await writePlan(path.join(tempDir(), 'p'), c.built, c.memory, planMeta('bf16'), { nvcc: false, workers: 0 });
    const pooled = await writePlan(path.join(tempDir(), 'p'), c.built, c.memory, planMeta('bf16'), { nvcc: false, workers: 2, workerMinBytes: 0 });
    expect(pooled.plan.weights.sha256).toBe(main.plan.weights.sha256);
  });
});
