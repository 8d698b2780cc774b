/**
 * Sharded plans (plan format 2) on simulated ranks: a tiny DiT compiled for each mesh the issue
 * lists runs through SimulatedPlanRanks (W CPU-backend ranks meeting at every collective) and must
 * match the interpreter on the unsharded module: relative L2 <= 1e-4 for fp32 plans (the fp32
 * context-parallel tolerance), <= 5e-2 for bf16. Also: what the plan records (mesh, collectives,
 * streams and events), the overlap schedule of ring attention, and First Block Cache decisions
 * made identically by every rank of a sharded plan.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Module, Tensor, formatMesh, interpret, makeMesh, worldSize } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import { writePlan } from '@paradit/codegen-cuda';
import { compileModule } from '@paradit/compiler';
import type { PlanPrecision } from '@paradit/codegen-cuda';
import { compileDenoiseStep } from '@paradit/passes';
import { CpuPlanBackend, InterpreterStepExecutor, SimulatedPlanRanks, compareTensors, denoise, loadPlan, walkInstrs } from '@paradit/runtime';
import type { Instr, Plan } from '@paradit/runtime';
import { CP_DIT, buildCpDit, cpDitInputs } from '../models/tiny-dit-cp';
import type { CpDitConfig } from '../models/tiny-dit-cp';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { tempDir } from './helpers';

const F32_TOL = 1e-4;
const BF16_TOL = 5e-2;

async function writeSharded(m: Module, mesh: Mesh, dtype: PlanPrecision, fbcache = false): Promise<{ dir: string; plan: Plan }> {
  const c = compileModule(m, { dtype, mesh, fbcache, verify: true });
  const dir = path.join(tempDir('paradit-sharded-'), 'plan');
  const meta = {
    compiledFrom: { model: 'in-memory', modelSha256: '0'.repeat(64), paradit: '0.1.0', createdAt: new Date(0).toISOString() },
    target: { backend: 'cuda' as const, arch: 'sm_90a', dtype, mesh: { cfg: mesh.cfg, ring: mesh.ring, ulysses: mesh.ulysses } },
  };
  const w = await writePlan(dir, c.built, c.memory, meta, { nvcc: false });
  return { dir, plan: w.plan };
}

const count = (plan: Plan, pred: (i: Instr) => boolean): number => [...walkInstrs(plan.program)].filter(([i]) => pred(i)).length;

const CONFIGS: readonly [string, CpDitConfig][] = [
  ['plain', CP_DIT],
  ['odd tokens, bool text mask, rope, pooled output', { ...CP_DIT, imageTokens: 15, textTokens: 5, mask: 'bool', rope: true, pooled: true }],
  ['cfg batch 2, additive mask, cross-attention', { ...CP_DIT, batch: 2, mask: 'float', crossAttention: true }],
  ['grouped-query heads', { ...CP_DIT, heads: 4, kvHeads: 2 }],
];

const MESHES: readonly [number, number, number][] = [[2, 1, 1], [1, 2, 1], [2, 2, 1], [4, 1, 1], [1, 1, 2], [2, 1, 2]];

describe.each(CONFIGS)('%s', (_label, cfg) => {
  const m = buildCpDit(cfg);
  const inputs = cpDitInputs(cfg);
  const named = new Map(m.graph.inputs.map((v, i) => [v.name, inputs[i]!]));
  const want = interpret(m, inputs);
  const meshes = MESHES.filter(([, , c]) => c === 1 || cfg.batch % c === 0);
  test.each(meshes)('ulysses %i ring %i cfg %i: SimulatedPlanRanks match the interpreter (fp32, rel L2 <= 1e-4)', async (u, r, c) => {
    const mesh = makeMesh({ ulysses: u, ring: r, cfg: c });
    const { dir, plan } = await writeSharded(m, mesh, 'f32');
    expect(plan.version).toBe(3);
    expect(plan.target.mesh).toEqual({ cfg: c, ring: r, ulysses: u });
    const ranks = new SimulatedPlanRanks(loadPlan(dir));
    expect(ranks.ranks).toHaveLength(worldSize(mesh));
    const got = await ranks.step(named);
    plan.outputs.forEach((o, k) => expect(compareTensors(got.get(o.name)!, want[k]!).relL2).toBeLessThan(F32_TOL));
    // The plan's outputs keep the model's names (the final gathers make new values).
    expect(plan.outputs.map((o) => o.name)).toEqual(m.graph.outputs.map((v) => v.name));
    // Every mesh gathers the output; sequence meshes exchange tokens too.
    expect(count(plan, (i) => i.op === 'collective')).toBeGreaterThan(0);
    if (u > 1) expect(count(plan, (i) => i.op === 'collective' && i.collective === 'all_to_all')).toBeGreaterThan(0);
    if (r > 1) expect(count(plan, (i) => i.op === 'collective' && i.collective === 'send_recv')).toBeGreaterThan(0);
  });
});

test('bf16 sharded plans match within 5e-2 (ulysses 2, ring 2, both)', async () => {
  const cfg: CpDitConfig = { ...CP_DIT, headDim: 64, heads: 4, mask: 'bool', rope: true };
  const m = buildCpDit(cfg);
  const inputs = cpDitInputs(cfg);
  const named = new Map(m.graph.inputs.map((v, i) => [v.name, inputs[i]!]));
  const want = interpret(m, inputs)[0]!;
  for (const mesh of [makeMesh({ ulysses: 2 }), makeMesh({ ring: 2 }), makeMesh({ ulysses: 2, ring: 2 })]) {
    const { dir, plan } = await writeSharded(m, mesh, 'bf16');
    const got = await new SimulatedPlanRanks(loadPlan(dir)).step(named);
    expect(compareTensors(got.get(plan.outputs[0]!.name)!, want).relL2).toBeLessThan(BF16_TOL);
  }
});

test('ring attention overlaps: each K/V hand-off runs on stream 1, issued before the attention that does not need it', async () => {
  const { plan } = await writeSharded(buildCpDit(CP_DIT), makeMesh({ ring: 2 }), 'f32');
  expect(plan.streams).toBe(2);
  expect(plan.events).toBeGreaterThan(0);
  const top = plan.program;
  const sends = top.map((i, k) => [i, k] as const).filter(([i]) => i.op === 'collective' && i.collective === 'send_recv');
  expect(sends.length).toBeGreaterThan(0);
  for (const [s, k] of sends) {
    expect(s.stream).toBe(1);
    expect(s.wait?.length).toBe(1);
    // Some compute instruction after the hand-off runs before anything waits for it: the overlap.
    const joinAt = top.findIndex((i, j) => j > k && (i.stream ?? 0) === 0 && (i.wait ?? []).length > 0);
    expect(joinAt).toBeGreaterThan(k + 1);
  }
});

test('a single-GPU plan has no streams or events (its order is unchanged)', async () => {
  const { plan } = await writeSharded(buildCpDit(CP_DIT), makeMesh({}), 'f32');
  expect(plan.streams).toBe(1);
  expect(plan.events).toBe(0);
  expect(count(plan, (i) => i.stream !== undefined || i.wait !== undefined || i.record !== undefined)).toBe(0);
});

test('a sharded plan cannot run as one CPU rank without a communicator, and says how to run it', async () => {
  const { dir } = await writeSharded(buildCpDit(CP_DIT), makeMesh({ ulysses: 2 }), 'f32');
  expect(() => new CpuPlanBackend(loadPlan(dir))).toThrow(/compiled for mesh cfg=1 ring=1 ulysses=2 \(world 2\), so it runs on 2 ranks.*paradit launch --nproc 2/);
});

describe('First Block Cache in a sharded plan', () => {
  const cfg = { ...TINY_DIT, blocks: 3, heads: 4, batch: 2 };
  const original = buildTinyDit(cfg);
  const ins = tinyDitInputs(cfg);
  const inputs = new Map<string, Tensor>(original.graph.inputs.map((v, i) => [v.name, ins[i]!]));
  const cache = { threshold: 0.5 };
  test.each([[makeMesh({ ulysses: 2 })], [makeMesh({ ring: 2 })], [makeMesh({ cfg: 2, ulysses: 2 })]])('%p: every rank makes the interpreter\'s decisions', async (mesh) => {
    const expected = await denoise(new InterpreterStepExecutor(compileDenoiseStep(original, { fbcache: true })), { steps: 8, inputs, cache });
    expect(expected.steps.map((s) => s.cached)).toContain(true);
    const { dir, plan } = await writeSharded(original, mesh, 'f32', true);
    expect(count(plan, (i) => i.op === 'branch')).toBe(1);
    const got = await denoise(new SimulatedPlanRanks(loadPlan(dir)), { steps: 8, inputs, cache });
    expect(got.steps.map((s) => s.cached)).toEqual(expected.steps.map((s) => s.cached));
    expect(compareTensors(got.latents, expected.latents).relL2).toBeLessThan(F32_TOL);
  });
});

describe('the loader refuses a sharded plan whose instructions break the rules', () => {
  let good: string;
  beforeAll(async () => {
    good = (await writeSharded(buildCpDit(CP_DIT), makeMesh({ ring: 2 }), 'f32')).dir;
  });
  const variant = (edit: (p: Plan) => void): string => {
    const dir = path.join(tempDir('paradit-sharded-bad-'), 'plan');
    fs.cpSync(good, dir, { recursive: true });
    const file = path.join(dir, 'plan.json');
    const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Plan;
    edit(p);
    fs.writeFileSync(file, JSON.stringify(p));
    return dir;
  };
  const firstSide = (p: Plan): Instr => p.program.find((i) => i.stream === 1)!;
  test('the good plan loads', () => expect(loadPlan(good).plan.target.mesh.ring).toBe(2));
  test('a wait on an event nothing recorded', () => {
    expect(() => loadPlan(variant((p) => (firstSide(p).wait = [p.events + 5])))).toThrow(/waits for event \d+, which no earlier instruction of the same list records/);
  });
  test('a stream-1 instruction never joined', () => {
    const dir = variant((p) => {
      const e = firstSide(p).record ?? -1;
      for (const i of p.program) if (i.wait) i.wait = i.wait.filter((w) => w !== e);
      // Later hand-offs join the earlier ones through stream order: drop every stream-1 record's waits.
      const side = new Set(p.program.filter((i) => i.stream === 1).map((i) => i.record));
      for (const i of p.program) if ((i.stream ?? 0) === 0 && i.wait) i.wait = i.wait.filter((w) => !side.has(w));
    });
    expect(() => loadPlan(dir)).toThrow(/never joined back into stream 0/);
  });
  test('a collective compiled for another group size', () => {
    const dir = variant((p) => {
      const c = p.program.find((i) => i.op === 'collective')!;
      if (c.op === 'collective') c.groupSize = 4;
    });
    expect(() => loadPlan(dir)).toThrow(/has groupSize 4, but the plan's mesh gives that axis 2 ranks/);
  });
  test('a mesh edited after compiling', () => {
    expect(() => loadPlan(variant((p) => (p.target.mesh.ring = 3)))).toThrow(/groupSize 2, but the plan's mesh gives that axis 3 ranks/);
  });
  test('a receive buffer of the wrong size', () => {
    const dir = variant((p) => {
      const c = p.program.find((i) => i.op === 'collective' && i.collective === 'send_recv');
      if (c?.op === 'collective') c.recv = p.buffers.find((b) => b.bytes !== p.buffers.find((x) => x.id === c.send)!.bytes)!.id;
    });
    expect(() => loadPlan(dir)).toThrow(/sends \d+ bytes of .* into a receive buffer of \d+ bytes/);
  });
});

test('formatMesh names every degree (messages quote it)', () => {
  expect(formatMesh(makeMesh({ ulysses: 2, ring: 2 }))).toBe('cfg=1 ring=2 ulysses=2 (world 4)');
});
