/**
 * Plans with generated weights (plan version 3, `weights.generated`): a model compiled with
 * --random-weights records each seeded tensor as a recipe and leaves it out of weights.bin, and the
 * CPU backend regenerates it. Checked against a plan of the same model whose random weights are
 * materialized (generateRandomWeights: false, the format before version 3): every weight buffer
 * holds the same bytes and one step gives exactly the same outputs, for fp32, bf16 and fp16
 * plans. Also: the loader refuses broken recipes, and `paradit compile` writes a near-empty
 * weights.bin. Guards against a recipe that drifts from the bytes the writer would have written
 * (a lost conversion, a wrong fan-in, a buffer laid out inside the file) and against generated
 * weights silently read as zeros.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Module, loadModel, saveModel } from '@paradit/ir';
import { streamConstant, writePlan } from '@paradit/codegen-cuda';
import { compileModule } from '@paradit/compiler';
import type { PlanPrecision } from '@paradit/codegen-cuda';
import { CpuPlanBackend, encodeTensor, generatedWeightBytes, loadPlan, readWeightsSpace } from '@paradit/runtime';
import type { Plan } from '@paradit/runtime';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { planMeta, tempDir } from './helpers';

/** The tiny DiT saved with its weights as external data that does not exist, loaded with seeded random weights. */
function randomWeightsModel(seed: number): { dir: string; model: Module } {
  const dir = tempDir('paradit-genw-model-');
  saveModel(buildTinyDit({ ...TINY_DIT, blocks: 2 }), path.join(dir, 'model.onnx'), { externalData: true, externalMinBytes: 64 });
  fs.rmSync(path.join(dir, 'model.onnx.data'));
  return { dir, model: loadModel(dir, { randomWeights: { seed } }) };
}

async function writeBoth(m: Module, dtype: PlanPrecision): Promise<{ gen: { dir: string; plan: Plan }; mat: { dir: string; plan: Plan } }> {
  const out = async (generate: boolean) => {
    const c = compileModule(m, { dtype, verify: true, generateRandomWeights: generate });
    const dir = path.join(tempDir(), 'plan');
    const w = await writePlan(dir, c.built, c.memory, planMeta(dtype), { nvcc: false });
    return { dir, plan: w.plan };
  };
  return { gen: await out(true), mat: await out(false) };
}

/** Each weights buffer's bytes by name. */
function weightBytes(dir: string): Map<string, Buffer> {
  const loaded = loadPlan(dir);
  const space = readWeightsSpace(loaded);
  const ws = loaded.plan.buffers.filter((b) => b.space === 'weights');
  const m = new Map(ws.map((b) => [b.name, Buffer.from(space.subarray(b.offset, b.offset + b.bytes))]));
  expect(m.size).toBe(ws.length); // names identify weights across the two plans
  return m;
}

describe('generated weights (plan weights.generated)', () => {
  const { dir: modelDir, model } = randomWeightsModel(11);
  const inputs = tinyDitInputs({ ...TINY_DIT, blocks: 2 }, 3);

  it.each(['f32', 'bf16', 'f16'] as const)('%s: recipes instead of bytes; same weights and exactly the same outputs as the materialized plan', async (dtype) => {
    const { gen, mat } = await writeBoth(model, dtype);
    const g = gen.plan.weights;
    expect(g.generated.length).toBeGreaterThan(10);
    // Only the small inline constants stay in the file; the materialized plan has all of it.
    expect(mat.plan.weights.generated).toEqual([]);
    expect(mat.plan.weights.bytes).toBe(mat.plan.spaces.weights);
    expect(g.bytes).toBeLessThan(mat.plan.weights.bytes / 4);
    expect(fs.statSync(path.join(gen.dir, 'weights.bin')).size).toBe(g.bytes);
    expect(gen.plan.spaces.weights).toBe(mat.plan.spaces.weights);
    expect(gen.plan.stats['generatedWeights']).toBe(g.generated.length);
    for (const r of g.generated) {
      expect(r.dtype).toBe(dtype);
      expect(r.from).toBe('f32'); // the tiny DiT's initializers are f32
    }
    // Same bytes per weight, although the two plans lay the weights out in a different order.
    const a = weightBytes(gen.dir);
    const b = weightBytes(mat.dir);
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    const differ = [...a].filter(([k, v]) => !v.equals(b.get(k)!)).map(([k]) => k);
    expect(differ).toEqual([]);
    // Some weight is really random data (not zeros read from a hole).
    expect([...a.values()].some((v) => v.length > 256 && v.some((x) => x !== 0))).toBe(true);
    const named = new Map(model.graph.inputs.map((v, i) => [v.name, inputs[i]!]));
    const ya = await new CpuPlanBackend(loadPlan(gen.dir)).step(named);
    const yb = await new CpuPlanBackend(loadPlan(mat.dir)).step(named);
    for (const [k, t] of yb) {
      const u = ya.get(k)!;
      expect(u.shape).toEqual(t.shape);
      expect(Array.from(u.data)).toEqual(Array.from(t.data));
      expect(Array.from(t.data).some((x) => x !== 0)).toBe(true);
    }
  });

  it('real external weights stored as is are copied from their file range, bit-equal to decoding and encoding them', async () => {
    const dir = tempDir('paradit-genw-real-');
    saveModel(buildTinyDit(TINY_DIT), path.join(dir, 'model.onnx'), { externalData: true, externalMinBytes: 64 });
    const m = loadModel(dir);
    const c = compileModule(m, { dtype: 'f32' });
    const out = path.join(tempDir(), 'plan');
    await writePlan(out, c.built, c.memory, planMeta('f32'), { nvcc: false });
    const space = readWeightsSpace(loadPlan(out));
    let external = 0;
    for (const v of c.memory.weights) {
      const b = c.memory.buffers.get(v)!;
      if (v.constant!.source.kind === 'external') external++;
      const want = encodeTensor(streamConstant(v.constant!), 'f32');
      expect(Buffer.from(space.subarray(b.offset, b.offset + b.bytes)).equals(Buffer.from(want))).toBe(true);
    }
    expect(external).toBeGreaterThan(10);
  });

  it('a model with real weights has no recipes (weights.bin is the whole space)', async () => {
    const { gen } = await writeBoth(buildTinyDit(TINY_DIT), 'bf16');
    expect(gen.plan.weights.generated).toEqual([]);
    expect(gen.plan.weights.bytes).toBe(gen.plan.spaces.weights);
  });

  describe('loadPlan refuses broken recipes', () => {
    let good: { dir: string; plan: Plan };
    beforeAll(async () => {
      good = (await writeBoth(model, 'bf16')).gen;
    });
    const variant = (edit: (p: Plan) => void): string => {
      const dir = path.join(tempDir(), 'plan');
      fs.cpSync(good.dir, dir, { recursive: true });
      const p = JSON.parse(fs.readFileSync(path.join(dir, 'plan.json'), 'utf8')) as Plan;
      edit(p);
      fs.writeFileSync(path.join(dir, 'plan.json'), JSON.stringify(p));
      return dir;
    };
    const first = (p: Plan) => p.weights.generated[0]!;
    it.each([
      ['a count that does not fill the buffer', (p: Plan) => void (first(p).count += first(p).fanIn), /generated weight of buffer \d+: '.*' has \d+ bytes, \d+ elements of bf16 need \d+; recompile/],
      ['a dtype other than the buffer\'s', (p: Plan) => void (first(p).dtype = 'f32'), /'.*' is bf16, the recipe says f32/],
      ['a buffer inside weights.bin', (p: Plan) => void (first(p).buf = p.buffers.find((b) => b.space === 'weights' && b.offset === 0)!.id), /starts at byte 0, inside weights.bin|has \d+ bytes|is f32, the recipe says bf16/],
      ['a buffer outside the weights space', (p: Plan) => void (first(p).buf = p.inputs[0]!.buf), /is in the io space, not weights/],
      ['two recipes for one buffer', (p: Plan) => void p.weights.generated.push({ ...first(p) }), /generated weights of buffers \d+ and \d+ overlap/],
      ['an unknown generator', (p: Plan) => void ((first(p) as { generator: string }).generator = 'philox'), /does not match the version 3 schema \(weights\.generated\.0\.generator/],
    ])('%s', (_, edit, msg) => {
      expect(() => loadPlan(variant(edit))).toThrow(msg);
    });
    it('a generated plan loads untouched, and its weights.bin is all the file it needs', () => {
      expect(loadPlan(good.dir).plan.weights.generated.length).toBeGreaterThan(0);
    });
  });

  it('`paradit compile --random-weights` writes only the non-random constants; --materialize-random-weights all of them', () => {
    const cli = path.resolve(__dirname, '../../packages/cli/dist/paradit.cjs');
    if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: run node scripts/build.mjs`);
    const out = (extra: string[]) => {
      const dir = path.join(tempDir(), 'plan');
      const json = execFileSync('node', [cli, 'compile', modelDir, '-o', dir, '--random-weights', '11', '--no-nvcc', '--json', ...extra], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      return { dir, stats: JSON.parse(json).stats as Record<string, number> };
    };
    const gen = out([]);
    const mat = out(['--materialize-random-weights']);
    expect(gen.stats['generatedWeights']).toBeGreaterThan(10);
    expect(mat.stats['generatedWeights']).toBe(0);
    expect(fs.statSync(path.join(gen.dir, 'weights.bin')).size).toBe(gen.stats['weightsFileBytes']);
    expect(gen.stats['weightsFileBytes']).toBeLessThan(mat.stats['weightsFileBytes']! / 4);
    expect(fs.statSync(path.join(mat.dir, 'weights.bin')).size).toBe(mat.stats['weightsBytes']);
    const a = weightBytes(gen.dir);
    const b = weightBytes(mat.dir);
    expect([...a].every(([k, v]) => v.equals(b.get(k)!))).toBe(true);
  }, 60_000);
});

describe('full FLUX.1-dev (bench/models/flux-dev-full, bf16 initializers): every random weight is a recipe', () => {
  const DIR = path.join(__dirname, '..', '..', 'bench', 'models', 'flux-dev-full');
  const raw = loadModel(DIR, { randomWeights: { seed: 4 } });

  it.each(['bf16', 'f32'] as const)('%s plan: 1160 recipes from bf16, weights.bin 1 KiB; sampled recipes give the bytes the writer would write', (dtype) => {
    const c = compileModule(raw, { dtype });
    const plan = c.built.plan({ ...planMeta(dtype), weightsSha256: '', cubin: null, sourceOptions: [], files: {} });
    const gen = plan.weights.generated;
    expect(gen).toHaveLength(1160);
    expect(gen.every((g) => g.from === 'bf16' && g.dtype === dtype)).toBe(true);
    expect(plan.weights.bytes).toBeLessThanOrEqual(4096);
    expect(plan.spaces.weights - plan.weights.bytes).toBeGreaterThan(22 * 2 ** 30 * (dtype === 'f32' ? 2 : 1));
    // A few small ones end to end (the big ones are the same code path, checked on the GPU by
    // bench/flux/full-run.sh): the recipe's bytes against the writer's materialized bytes.
    const byBuf = new Map([...c.memory.buffers.values()].map((b) => [b.id, b.value]));
    const small = gen.filter((g) => g.count <= 3072 * 64).slice(0, 6);
    expect(small.length).toBeGreaterThan(3);
    for (const g of small) {
      const v = byBuf.get(g.buf)!;
      const want = encodeTensor(streamConstant(v.constant!), dtype);
      expect(Buffer.from(generatedWeightBytes(g)).equals(Buffer.from(want))).toBe(true);
    }
  }, 120_000);
});
