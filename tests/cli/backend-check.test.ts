/**
 * `paradit check DIR --backend cpu|cuda` (compile to a plan, run it, compare) without a GPU: the
 * plan path on the CPU backend matches the test data with the plan tolerances; `--backend cuda`
 * on a machine without a GPU, driver or koffi exits 2 with one paragraph that says so (guards
 * against a stack trace or an internal error there); the backend flags are validated; and the
 * per-instruction localizer (--debug-instrs) finds a fault injected into one buffer.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Tensor, parseModule } from '@paradit/ir';
import { compileToPlan } from '@paradit/compiler';
import { listTestDataSets, loadPlan, readTestDataSet } from '@paradit/runtime';
import type { Instr } from '@paradit/runtime';
import { bindInputs, checkModelDirOnPlan, isNoGpuError, parseCheckBackend, planDtypeFor } from '../../packages/cli/src/commands/check-backend';
import { checkpoints, cpuPrefixRunner, debugWithRunner, fragments } from '../../packages/cli/src/commands/debug-instrs';
import type { PrefixRunner } from '../../packages/cli/src/commands/debug-instrs';
import { buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { ensureCli, expectUserError, removeTempDirs, runCli, tempDir, writeModelDir } from './cli-helpers';

/** A machine with an NVIDIA driver would really run the GPU path; the no-GPU cases skip there. */
const HAS_GPU = spawnSync('sh', ['-c', 'command -v nvidia-smi && nvidia-smi -L'], { encoding: 'utf8' }).status === 0;
const noGpuIt = HAS_GPU ? it.skip : it;

let model = '';

beforeAll(() => {
  ensureCli();
  model = writeModelDir(buildTinyDit(), tinyDitInputs(), 'backend-check', true);
});
afterAll(removeTempDirs);

describe('check --backend cpu', () => {
  it('compiles an fp32 plan by default for an fp32 model and matches within 1e-3', async () => {
    const r = await checkModelDirOnPlan(model, { backend: 'cpu' });
    expect(r.dtype).toBe('f32');
    expect(r.checks).toHaveLength(1);
    expect(r.checks[0]!.tolerance).toBe(1e-3);
    expect(r.checks[0]!.relL2).toBeLessThan(1e-5); // fp32 plan vs fp32 interpreter: rounding only
    expect(r.ok).toBe(true);
  });

  it('CLI: --dtype bf16 uses the 5e-2 tolerance, prints the plan line, exit 0', () => {
    const r = runCli(['check', model, '--backend', 'cpu', '--dtype', 'bf16']);
    expect({ code: r.code }).toEqual({ code: 0 });
    expect(r.stdout).toMatch(/^check .*\n {2}plan bf16 on cpu: compile [\d.]+ s, load [\d.]+ s\n/);
    expect(r.stdout).toMatch(/rel L2 [\d.e+-]+ \(tol 5\.00e-2\) ok/);
    const j = JSON.parse(runCli(['check', model, '--backend', 'cpu', '--json']).stdout) as { backend: string; dtype: string; ok: boolean };
    expect([j.backend, j.dtype, j.ok]).toEqual(['cpu', 'f32', true]);
  });

  it('CLI: a tolerance the bf16 plan cannot meet is a mismatch (exit 1)', () => {
    const r = runCli(['check', model, '--backend', 'cpu', '--dtype', 'bf16', '--tolerance', '1e-9']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/MISMATCH/);
  });

  it('keeps the plan with --keep-plan', () => {
    const keep = path.join(tempDir('backend-keep'), 'plan');
    expect(runCli(['check', model, '--backend', 'cpu', '--keep-plan', keep]).code).toBe(0);
    expect(fs.readdirSync(keep).sort()).toEqual(['kernels', 'plan.json', 'weights.bin']);
  });
});

describe('check --backend cuda without a GPU', () => {
  noGpuIt('exits 2 with one paragraph naming what is missing and the CPU alternative', () => {
    const msg = expectUserError(runCli(['check', model, '--backend', 'cuda']));
    expect(msg).toMatch(/^check --backend cuda needs an NVIDIA GPU with its driver, and here .+; run it on a GPU machine, or use --backend cpu/);
  });

  it('classifies the runtime\'s load failures as "no GPU" and nothing else', () => {
    expect(isNoGpuError(new Error("CUDA runtime: cannot load koffi (Cannot find module 'koffi')"))).toBe(true);
    expect(isNoGpuError(new Error('CUDA runtime: cannot load the CUDA driver (libcuda.so.1); tried:\n  libcuda.so.1: not found'))).toBe(true);
    expect(isNoGpuError(new Error('cuInit failed: CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)'))).toBe(true);
    expect(isNoGpuError(new Error("cuLaunchKernel failed: CUDA_ERROR_INVALID_VALUE in kernel 'f1_k0'"))).toBe(false);
  });
});

describe('backend flags', () => {
  it('parses --backend', () => {
    expect(parseCheckBackend(undefined)).toBeUndefined();
    expect(parseCheckBackend('cpu')).toBe('cpu');
    expect(parseCheckBackend('cuda')).toBe('cuda');
    expect(() => parseCheckBackend('gpu')).toThrow(/--backend gpu: expected cpu .* or cuda/);
  });

  it('picks bf16 plans for bf16 models, f32 otherwise', () => {
    expect(planDtypeFor(buildTinyDit())).toBe('f32');
    const bf16 = parseModule('module opset(ai.onnx=18) {\n  graph g(%0: bf16[2]) {\n    %1 = Relu(%0) : bf16[2]\n    return %1\n  }\n}\n');
    expect(planDtypeFor(bf16)).toBe('bf16');
  });

  it('rejects a bad backend, plan flags without --backend, a bad mesh with --backend and a bad dtype (exit 2)', () => {
    expect(expectUserError(runCli(['check', model, '--backend', 'gpu']))).toMatch(/--backend gpu: expected cpu/);
    expect(expectUserError(runCli(['check', model, '--dtype', 'bf16']))).toMatch(/configure a compiled plan; add --backend cpu or --backend cuda/);
    expect(expectUserError(runCli(['check', model, '--debug-instrs']))).toMatch(/add --backend/);
    expect(expectUserError(runCli(['check', model, '--backend', 'cpu', '--ulysses', '0']))).toMatch(/--ulysses/);
    expect(expectUserError(runCli(['check', model, '--backend', 'cpu', '--dtype', 'int4']))).toMatch(/--dtype int4: expected bf16, fp16, fp32 or fp8/);
  });
});

describe('--backend with a mesh', () => {
  it('compiles a sharded plan and runs its ranks in this process, saying which mesh ran', () => {
    const r = runCli(['check', model, '--backend', 'cpu', '--ulysses', '2']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/plan f32 on cpu, mesh ulysses 2 x ring 1 x cfg 1 \(2 ranks in this process\)/);
    expect(r.stdout).toMatch(/all 1 outputs within tolerance/);
  });
});

describe('--debug-instrs localizer', () => {
  // Regression (seen on the H100 with sd3-ts17's fp32 plan): a fused Concat split into kernels that
  // are not adjacent (k0 writes the tail of buffer 4, k3 its head, both carrying the whole ref)
  // must be compared only once both ran, or the localizer blames a correct kernel.
  it('reads a fragment\'s outputs after the last kernel that writes them, before their first reader', () => {
    const k = (name: string, text: string, inputs: number[], outputs: number[]): Instr => ({
      op: 'kernel', kernel: name, grid: [1, 1, 1], block: [32, 1, 1], smem: 0, args: [], origin: [name], ref: { text, inputs, outputs },
    });
    const program = [
      k('a', 'R1', [1], [2]),
      k('f9_k0', 'R2', [2, 3], [4]),
      k('f9_k1', 'R3', [5], [6]),
      k('f9_k3', 'R4', [3], [4, 6]),
      k('reader', 'R5', [4, 6], [7]),
      k('g_k0', 'R6', [7], [8]),
      k('g_k1', 'R6', [7], [8]),
    ];
    expect(fragments(program)).toEqual([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 7]]);
    expect(checkpoints(program).map((c) => [c.start, c.ready])).toEqual([[0, 1], [1, 4], [2, 4], [3, 4], [4, 5], [5, 7]]);
  });

  it('finds nothing on a faithful device, and blames exactly the fragment whose output was corrupted', async () => {
    const out = path.join(tempDir('backend-debug'), 'plan');
    await compileToPlan(model, out, { dtype: 'f32', nvcc: false });
    const loaded = loadPlan(out, { verifyWeights: false });
    const set = readTestDataSet(listTestDataSets(model)[0]!);
    const inputs = bindInputs(loaded.plan, set.inputs, model);
    const clean = await debugWithRunner(loaded.plan, cpuPrefixRunner(loaded, inputs));
    expect(clean.first).toBeUndefined();
    expect(clean.instrs.map((d) => d.index)).toEqual(fragments(loaded.plan.program).map(([a]) => a));
    // A device whose fragment #k writes a wrong value into its first output (as a broken kernel would).
    const frags = fragments(loaded.plan.program);
    const [a, b] = frags[Math.floor(frags.length / 2)]!;
    const bad = loaded.plan.program[a]!.ref!.outputs[0]!;
    const inner = cpuPrefixRunner(loaded, inputs);
    const faulty: PrefixRunner = {
      withPrefix: (n, use) =>
        inner.withPrefix(n, (read) =>
          use((id) => {
            const t = read(id);
            if (id !== bad || n < b) return t;
            const data = Float32Array.from(t.data, (x, i) => (i === 0 ? x + 1 + Math.abs(x) * 10 : x));
            return new Tensor(t.dtype, t.shape, data);
          }),
        ),
      dispose: () => undefined,
    };
    const r = await debugWithRunner(loaded.plan, faulty);
    expect(r.first?.index).toBe(a);
    expect(r.first!.relL2).toBeGreaterThan(1e-4);
  });
});
