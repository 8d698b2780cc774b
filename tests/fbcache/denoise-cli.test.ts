/**
 * `paradit denoise` end to end on the tiny DiT exported to a model folder (model.onnx and
 * test_data_set_0), in process (runDenoise) and, when the CLI bundle is built, as a subprocess
 * for the exit code of bad flags; plus the StepExecutor contract and the loop's own errors.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { IrError, Tensor, makeMesh, parseModule, readTensorFile, saveModel, simulateRanks, writeTensorFile } from '@paradit/ir';
import { compileDenoiseStep } from '@paradit/passes';
import { InterpreterStepExecutor, denoise, sigmaSchedule } from '@paradit/runtime';
import { runDenoise } from '../../packages/cli/src/commands/denoise';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { REPO_ROOT } from '../fixtures';

const cfg = { ...TINY_DIT, blocks: 3 };
const model = buildTinyDit(cfg);
const ins = tinyDitInputs(cfg);
let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-denoise-'));
  saveModel(model, path.join(dir, 'model.onnx'));
  fs.mkdirSync(path.join(dir, 'test_data_set_0'));
  ins.forEach((t, k) => writeTensorFile(path.join(dir, 'test_data_set_0', `input_${k}.pb`), t, model.graph.inputs[k]!.name));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('--json: one object with the steps, the computed count and the work skipped; --save-latents writes them', async () => {
  const out = path.join(dir, 'latents.pb');
  const { report, latents } = await runDenoise(dir, { steps: '10', fbcache: '0.5', json: true, saveLatents: out, progress: false });
  expect(Object.keys(report.steps[0]!).sort()).toEqual(['cached', 'diff', 'index', 'sigma']);
  expect(report.steps.map((s) => s.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  expect(report.steps.map((s) => s.sigma)).toEqual(sigmaSchedule(10).slice(0, 10));
  expect(report.steps[0]!.diff).toBeNull();
  expect(report.computed + report.cachedSteps).toBe(10);
  expect(report.cachedSteps).toBeGreaterThan(0);
  expect(report.totalBlocks).toBe(3);
  expect(report.skippedBlocks).toBe(2 * report.cachedSteps);
  expect(report.skippedFraction).toBeCloseTo(report.skippedBlocks / 30, 12);
  expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  expect(Array.from(readTensorFile(out).data)).toEqual(Array.from(latents.data));
  // The same loop in process on the same model folder's step agrees bit for bit.
  const step = compileDenoiseStep(model, { fbcache: true });
  const direct = await denoise(new InterpreterStepExecutor(step), { steps: 10, inputs: new Map(model.graph.inputs.map((v, i) => [v.name, ins[i]!])), cache: { threshold: 0.5 } });
  expect(direct.steps.map((s) => s.cached)).toEqual(report.steps.map((s) => s.cached));
  expect(Array.from(direct.latents.data)).toEqual(Array.from(latents.data));
});

test('bad flags are clear errors', async () => {
  const bad = (flags: Record<string, string | boolean>): Promise<unknown> => runDenoise(dir, { progress: false, ...flags });
  await expect(bad({})).rejects.toThrow(/--steps N is required/);
  await expect(bad({ steps: '0' })).rejects.toThrow(/--steps must be an integer >= 1, got '0'/);
  await expect(bad({ steps: '2', fbcache: 'x' })).rejects.toThrow(/--fbcache must be a number, got 'x'/);
  await expect(bad({ steps: '2', warmup: '1' })).rejects.toThrow(/add --fbcache T/);
  await expect(bad({ steps: '2', fbcache: '0.1', maxCached: '0' })).rejects.toThrow(/--max-cached must be an integer >= 1/);
  await expect(bad({ steps: '2', latentInput: 'latents' })).rejects.toThrow(/the model has no input 'latents' \(inputs: hidden_states, encoder_hidden_states, timestep\); name it with --latent-input/);
  await expect(bad({ steps: '2', ulysses: '0' })).rejects.toThrow(IrError);
  await expect(runDenoise(path.join(dir, 'nope'), { steps: '2' })).rejects.toThrow(/does not exist/);
});

const BUNDLE = path.join(REPO_ROOT, 'packages/cli/dist/paradit.cjs');
if (!fs.existsSync(BUNDLE)) console.log(`skipped: ${BUNDLE} is absent (run node scripts/build.mjs)`);
(fs.existsSync(BUNDLE) ? test : test.skip)('the CLI exits 2 with one message for a bad flag (built bundle)', () => {
  const r = spawnSync(process.execPath, [BUNDLE, 'denoise', dir, '--steps', 'two'], { encoding: 'utf8' });
  expect(r.status).toBe(2);
  expect(r.stderr).toBe("paradit: error: --steps must be an integer >= 1, got 'two'\n");
});

(fs.existsSync(BUNDLE) ? test : test.skip)('inspect --fbcache --after insert-cache-gate prints the one-graph step with both branches (built bundle)', () => {
  const r = spawnSync(process.execPath, [BUNDLE, 'inspect', dir, '--fbcache', '0.1', '--after', 'insert-cache-gate'], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/= If\(%\d+\) \{  # fbcache\/gate/);
  expect(r.stdout).toContain('else_branch=graph fbcache_computed() {');
  expect(r.stdout).toContain('then_branch=graph fbcache_cached() {');
  expect(r.stdout.match(/^  graph main\(/gm)).toHaveLength(1);
});

test('StepExecutor: state stays inside; names exclude it', () => {
  const ex = new InterpreterStepExecutor(compileDenoiseStep(model, { fbcache: true }));
  expect(ex.inputNames).toEqual(['hidden_states', 'encoder_hidden_states', 'timestep', 'fbcache.threshold', 'fbcache.must_compute', 'fbcache.max_cached']);
  expect(ex.outputNames).toEqual(['sample', 'fbcache.cached', 'fbcache.diff']);
  expect(ex.blocks).toEqual({ total: 3, skippedWhenCached: 2 });
});

test('the loop rejects cache options for a step without a gate, and a missing input', async () => {
  const inputs = new Map(model.graph.inputs.map((v, i) => [v.name, ins[i]!]));
  const plain = new InterpreterStepExecutor(model);
  await expect(denoise(plain, { steps: 2, inputs, cache: { threshold: 0.1 } })).rejects.toThrow(/the step has no cache gate/);
  await expect(plain.step(new Map([['hidden_states', ins[0]!]]))).rejects.toThrow(/the step needs inputs 'encoder_hidden_states', 'timestep'/);
});

test('simulator: an If whose branches hold collectives needs every rank to take the same branch', () => {
  // Guards the lockstep If of spmd.ts: rank 0 sees x = 1, rank 1 sees x = -1.
  const m = parseModule(`graph main(%x: f32[2]) {
    %z = const f32[] [0.0]
    %l = shard_slice(%x) {axis=0, groupSize=2, meshAxis="ulysses"} : f32[1]@shard(0,ulysses)
    %s = ReduceSum(%l) {keepdims=0} : f32[]
    %c = Greater(%s, %z) : bool[]
    %y = If(%c) {
      else_branch=graph b0() {
        %e = all_gather(%l) {axis=0, groupSize=2, meshAxis="ulysses"} : f32[2]
        return %e
      },
      then_branch=graph b1() {
        %t = all_gather(%l) {axis=0, groupSize=2, meshAxis="ulysses"} : f32[2]
        return %t
      }
    } : f32[2]
    return %y
  }`);
  const mesh = makeMesh({ ulysses: 2 });
  expect(() => simulateRanks(m, mesh, [Tensor.from('f32', [2], [1, -1])])).toThrow(/ranks disagree on the condition \(rank 0: true, rank 1: false\)/);
  expect(simulateRanks(m, mesh, [Tensor.from('f32', [2], [1, 2])]).map((o) => Array.from(o[0]!.data))).toEqual([[1, 2], [1, 2]]);
});
