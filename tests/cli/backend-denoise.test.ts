/**
 * `paradit denoise DIR --backend cpu|cuda` without a GPU: the gated step compiled into a plan
 * (cache state in the plan's state space) drives the runtime's loop and makes the same First
 * Block Cache decisions as the reference interpreter, with the same skipped-work accounting;
 * `--backend cuda` without a GPU exits 2 with one paragraph; the backend flags are validated.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { saveModel, writeTensorFile } from '@paradit/ir';
import { runDenoise } from '../../packages/cli/src/commands/denoise';
import { openPlanStep } from '../../packages/cli/src/commands/check-backend';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { ensureCli, expectUserError, runCli } from './cli-helpers';
import { relL2 } from '../support/harness';

const HAS_GPU = spawnSync('sh', ['-c', 'command -v nvidia-smi && nvidia-smi -L'], { encoding: 'utf8' }).status === 0;
const noGpuIt = HAS_GPU ? it.skip : it;

const cfg = { ...TINY_DIT, blocks: 3 };
const model = buildTinyDit(cfg);
const ins = tinyDitInputs(cfg);
let dir: string;

beforeAll(() => {
  ensureCli();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-backend-denoise-'));
  saveModel(model, path.join(dir, 'model.onnx'));
  fs.mkdirSync(path.join(dir, 'test_data_set_0'));
  ins.forEach((t, k) => writeTensorFile(path.join(dir, 'test_data_set_0', `input_${k}.pb`), t, model.graph.inputs[k]!.name));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('denoise --backend cpu (a compiled plan)', () => {
  it('makes the interpreter\'s cache decisions with an fp32 plan, and reports the plan', async () => {
    const flags = { steps: '10', fbcache: '0.5', progress: false };
    const interp = await runDenoise(dir, flags);
    const plan = await runDenoise(dir, { ...flags, backend: 'cpu' });
    expect(interp.report.cachedSteps).toBeGreaterThan(0);
    expect(interp.report.computed).toBeGreaterThan(1); // both branches are exercised
    expect(plan.report.steps.map((s) => s.cached)).toEqual(interp.report.steps.map((s) => s.cached));
    plan.report.steps.forEach((s, i) => {
      const d = interp.report.steps[i]!.diff;
      if (d === null) expect(s.diff).toBeNull();
      else expect(Math.abs(s.diff! - d)).toBeLessThan(1e-5 * Math.max(1, Math.abs(d)));
    });
    expect([plan.report.totalBlocks, plan.report.skippedBlocks]).toEqual([interp.report.totalBlocks, interp.report.skippedBlocks]);
    expect(plan.report.backend).toEqual({ name: 'cpu', dtype: 'f32' });
    expect(plan.text).toMatch(/f32 plan on cpu/);
    expect(relL2(plan.latents, interp.latents)).toBeLessThan(1e-4);
  });

  it('keeps the cache state inside the plan: the executor exposes no fbcache.state names', async () => {
    const p = await openPlanStep(dir, { backend: 'cpu', dtype: 'f32', fbcache: 0.5 });
    try {
      expect(p.executor.inputNames.filter((n) => n.startsWith('fbcache.state'))).toEqual([]);
      expect(p.executor.outputNames.filter((n) => n.startsWith('fbcache.state'))).toEqual([]);
      expect(p.plan.state.map((s) => s.name)).toEqual(expect.arrayContaining(['fbcache.state.valid', 'fbcache.state.r_ref']));
      expect(p.executor.blocks).toEqual({ total: 3, skippedWhenCached: 2 });
    } finally {
      p.dispose();
    }
  });
});

describe('denoise --backend flags', () => {
  noGpuIt('--backend cuda without a GPU exits 2 with one paragraph', () => {
    const msg = expectUserError(runCli(['denoise', dir, '--steps', '2', '--backend', 'cuda']));
    expect(msg).toMatch(/^denoise --backend cuda needs an NVIDIA GPU with its driver, and here .+; run it on a GPU machine, or use --backend cpu/);
  });

  it('rejects a bad backend, --dtype without --backend and a bad mesh with --backend (exit 2)', () => {
    expect(expectUserError(runCli(['denoise', dir, '--steps', '2', '--backend', 'tpu']))).toMatch(/--backend tpu: expected cpu/);
    expect(expectUserError(runCli(['denoise', dir, '--steps', '2', '--dtype', 'bf16']))).toMatch(/add --backend cpu or --backend cuda/);
    expect(expectUserError(runCli(['denoise', dir, '--steps', '2', '--backend', 'cpu', '--ring', 'two']))).toMatch(/--ring/);
  });

  it('runs a sharded plan with its ranks in this process', () => {
    const r = runCli(['denoise', dir, '--steps', '2', '--backend', 'cpu', '--ulysses', '2']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/mesh ulysses 2 ring 1 cfg 1 \(ranks in this process\), f32 plan on cpu/);
  });
});
