/**
 * First Block Cache on the exported DiT fixtures (../shared/fixtures; skipped when absent):
 * every fixture gates, threshold 0 is bit-identical to the ungated step, and FLUX (Ulysses 2) and
 * SD3 (CFG 2) on simulated ranks make the unsharded run's decisions with latents within relative
 * L2 1e-4.
 */
import path from 'node:path';
import { loadModel, makeMesh } from '@paradit/ir';
import type { Mesh, Module, Tensor } from '@paradit/ir';
import { compileDenoiseStep, createPassContext, defaultPipeline, planCacheGate, runPipeline } from '@paradit/passes';
import { InterpreterStepExecutor, SimulatedStepExecutor, denoise, readTestDataSet } from '@paradit/runtime';
import type { CacheOptions, DenoiseResult } from '@paradit/runtime';
import { FIXTURES, HAVE_FIXTURES, NO_FIXTURES_REASON } from '../fixtures';
import { relL2 } from './reference';
import { skipReason } from '../skip-reason';

if (!HAVE_FIXTURES) skipReason(__filename, NO_FIXTURES_REASON);
const maybe = HAVE_FIXTURES ? describe : describe.skip;

interface Case {
  readonly name: string;
  readonly blocks: number;
  /** Values leaving the cached blocks. */
  readonly leaving: number;
  readonly scale: number;
}

const CASES: readonly Case[] = [
  { name: 'flux-dynamo18', blocks: 6, leaving: 1, scale: 1 },
  { name: 'flux-bf16-dynamo18', blocks: 6, leaving: 1, scale: 1 },
  { name: 'sd3-ts17', blocks: 3, leaving: 1, scale: 1000 },
  { name: 'wan-dynamo18', blocks: 3, leaving: 1, scale: 1000 },
  { name: 'cogvideox-dynamo18', blocks: 2, leaving: 1, scale: 1000 },
];

function load(name: string): { prepared: Module; inputs: Map<string, Tensor> } {
  const dir = path.join(FIXTURES, name);
  const m = loadModel(dir);
  const set = readTestDataSet(path.join(dir, 'test_data_set_0'));
  return { prepared: runPipeline(m, defaultPipeline(), createPassContext()), inputs: new Map(m.graph.inputs.map((v, i) => [v.name, set.inputs[i]!])) };
}

function loop(step: Module, inputs: Map<string, Tensor>, steps: number, scale: number, cache?: CacheOptions, mesh?: Mesh): Promise<DenoiseResult> {
  const ex = mesh ? new SimulatedStepExecutor(step, mesh) : new InterpreterStepExecutor(step);
  return denoise(ex, { steps, inputs, timestepScale: scale, ...(cache ? { cache } : {}) });
}

maybe.each(CASES)('$name', (c) => {
  test('gates after block 0; threshold 0 is bit-identical to the ungated step', async () => {
    const { prepared, inputs } = load(c.name);
    const plan = planCacheGate(prepared.graph);
    expect([plan.totalBlocks, plan.skippedBlocks, plan.leaving.length]).toEqual([c.blocks, c.blocks - 1, c.leaving]);
    const gated = compileDenoiseStep(prepared, { prepared: true, fbcache: true });
    // FLUX's joint stream re-forms as one Concat(text, image) of block 0's outputs, not the chain
    // of per-block Concat/Slice pairs its skip path passes through.
    expect(gated.graph.nodes.filter((n) => n.name.endsWith('/entering')).map((n) => n.op)).toEqual(c.name.startsWith('flux') ? ['Concat'] : []);
    const plain = await loop(prepared, inputs, 2, c.scale);
    const zero = await loop(gated, inputs, 2, c.scale, { threshold: 0 });
    expect(zero.cachedSteps).toBe(0);
    expect(Array.from(zero.latents.data)).toEqual(Array.from(plain.latents.data));
  });
});

maybe('sharded fixtures decide like the unsharded step', () => {
  test('FLUX, Ulysses 2: 6 steps at threshold 0.4 (diffs 0.42 0.36 0.44 0.43 0.41: one cached step)', async () => {
    const { prepared, inputs } = load('flux-dynamo18');
    const cache = { threshold: 0.4 };
    const want = await loop(compileDenoiseStep(prepared, { prepared: true, fbcache: true }), inputs, 6, 1, cache);
    expect(want.steps.map((s) => s.cached)).toEqual([false, false, true, false, false, false]);
    const mesh = makeMesh({ ulysses: 2 });
    const got = await loop(compileDenoiseStep(prepared, { prepared: true, fbcache: true, mesh }), inputs, 6, 1, cache, mesh);
    expect(got.steps.map((s) => s.cached)).toEqual(want.steps.map((s) => s.cached));
    expect(relL2(got.latents, want.latents)).toBeLessThan(1e-4);
  });

  test('SD3, CFG 2: the decision covers the whole CFG batch on both ranks', async () => {
    const { prepared, inputs } = load('sd3-ts17');
    const cache = { threshold: 0.5 };
    const want = await loop(compileDenoiseStep(prepared, { prepared: true, fbcache: true }), inputs, 5, 1000, cache);
    expect(want.steps.map((s) => s.cached)).toContain(true);
    const mesh = makeMesh({ cfg: 2 });
    const got = await loop(compileDenoiseStep(prepared, { prepared: true, fbcache: true, mesh }), inputs, 5, 1000, cache, mesh);
    expect(got.steps.map((s) => s.cached)).toEqual(want.steps.map((s) => s.cached));
    expect(relL2(got.latents, want.latents)).toBeLessThan(1e-4);
  });
});
