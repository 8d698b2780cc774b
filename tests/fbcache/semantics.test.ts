/**
 * First Block Cache semantics on the tiny DiT: the gated step driven by the runtime's loop against
 * an independent loop (reference.ts) that runs the original unfused module and applies the
 * issue's rules by hand. Decisions must be equal; latents within relative L2 1e-5 (the gated
 * step is the fused module, the reference the unfused one: observed ~1e-7).
 */
import { createPassContext, defaultPipeline, insertCacheGate, runPipeline } from '@paradit/passes';
import { InterpreterStepExecutor, denoise } from '@paradit/runtime';
import type { CacheOptions, DenoiseResult } from '@paradit/runtime';
import type { Module, Tensor } from '@paradit/ir';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { mixedThreshold, referenceLoop, relL2 } from './reference';
import type { RefOptions } from './reference';

const TOL = 1e-5;
const STEPS = 10;
const cfg = { ...TINY_DIT, blocks: 3 };
const original = buildTinyDit(cfg);
const prepared = runPipeline(original, defaultPipeline(), createPassContext());
const gated = insertCacheGate(prepared);
const ins = tinyDitInputs(cfg);
const inputs = new Map<string, Tensor>(original.graph.inputs.map((v, i) => [v.name, ins[i]!]));

const run = (m: Module, cache?: CacheOptions): Promise<DenoiseResult> => denoise(new InterpreterStepExecutor(m), { steps: STEPS, inputs, ...(cache ? { cache } : {}) });
const reference = (o: Omit<RefOptions, 'steps'>) => referenceLoop(original, inputs, cfg.blocks, { steps: STEPS, ...o });
// Threshold 0.5 on this model: pattern . C . . C C . C C . with diffs 0.42 0.70 0.54 0.45 0.38 0.52 0.34 0.39 0.83.
const { threshold: MIXED, ref: MIXED_REF } = mixedThreshold((threshold) => reference({ threshold }), [0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8]);

function expectLike(got: DenoiseResult, ref: ReturnType<typeof referenceLoop>): void {
  expect(got.steps.map((s) => s.cached)).toEqual(ref.cached);
  got.steps.forEach((s, i) => {
    const d = ref.diffs[i];
    if (d === undefined) throw new Error(`reference has ${ref.diffs.length} diffs, run has step ${i}`);
    if (d === null) expect(s.diff).toBeNull();
    else expect(Math.abs(s.diff! - d)).toBeLessThan(1e-4 * Math.max(1, d));
  });
  expect(relL2(got.latents, ref.latents)).toBeLessThan(TOL);
}

test('threshold 0 gives final latents bit-identical to the step without a gate', async () => {
  const plain = await run(prepared);
  const zero = await run(gated, { threshold: 0 });
  expect(zero.cachedSteps).toBe(0);
  expect(Array.from(zero.latents.data)).toEqual(Array.from(plain.latents.data));
  // A negative threshold never caches either (ParaAttention: threshold <= 0 disables the cache).
  expect((await run(gated, { threshold: -1 })).cachedSteps).toBe(0);
});

test('mixed cached/computed steps match the independent loop (decisions, diffs, latents)', async () => {
  expect(MIXED_REF.cached).toContain(true);
  expect(MIXED_REF.cached.slice(1)).toContain(false);
  const got = await run(gated, { threshold: MIXED });
  expectLike(got, MIXED_REF);
  expect(got.computed).toBe(MIXED_REF.cached.filter((c) => !c).length);
  // Work skipped: every cached step skips blocks 1 and 2 of 3.
  expect(got.totalBlocks).toBe(3);
  expect(got.skippedBlocks).toBe(2 * got.cachedSteps);
  expect(got.skippedFraction).toBeCloseTo((2 * got.cachedSteps) / (3 * STEPS), 12);
});

test('a huge threshold caches every step after the first, and r_ref stays the first step\'s', async () => {
  const ref = reference({ threshold: 1e9 });
  expect(ref.cached).toEqual([false, ...new Array<boolean>(STEPS - 1).fill(true)]);
  expectLike(await run(gated, { threshold: 1e9 }), ref);
});

test('warm-up steps always compute', async () => {
  const ref = reference({ threshold: 1e9, warmup: 3 });
  expect(ref.cached.slice(0, 3)).toEqual([false, false, false]);
  expectLike(await run(gated, { threshold: 1e9, warmup: 3 }), ref);
});

test('max-cached limits consecutive cached steps', async () => {
  const ref = reference({ threshold: 1e9, maxCached: 2 });
  expect(ref.cached).toEqual([false, true, true, false, true, true, false, true, true, false]);
  expectLike(await run(gated, { threshold: 1e9, maxCached: 2 }), ref);
});

test('compute-last-step computes the last step', async () => {
  const ref = reference({ threshold: MIXED, computeLastStep: true });
  expect(ref.cached[STEPS - 1]).toBe(false);
  expectLike(await run(gated, { threshold: MIXED, computeLastStep: true }), ref);
});

test('resetState starts a new generation: two runs on one executor agree', async () => {
  const ex = new InterpreterStepExecutor(gated);
  const a = await denoise(ex, { steps: 4, inputs, cache: { threshold: MIXED } });
  const b = await denoise(ex, { steps: 4, inputs, cache: { threshold: MIXED } });
  expect(b.steps.map((s) => s.cached)).toEqual(a.steps.map((s) => s.cached));
  expect(Array.from(b.latents.data)).toEqual(Array.from(a.latents.data));
});
