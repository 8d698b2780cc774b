/**
 * The CUDA backend's glue for generated weights, over the stand-in libcuda (fixtures/mock-cuda.c
 * built with -DPARADIT_MOCK_FILL: its cuLaunchKernel runs the fill kernel's own source, on the
 * host, over the launch grid): DevicePlan uploads weights.bin, zeroes the rest of the weights
 * space and launches paradit_fill_uniform per recipe with the packed parameters (pointer at the
 * buffer's offset, count, the seed's two halves, fan-in, dtype codes); the resulting weights space
 * is byte-equal to the CPU backend's (readWeightsSpace: weights.bin + randomTensor). Guards against
 * a wrong offset, a swapped seed half, a parameter packed at the wrong width, padding left
 * unzeroed or the file's bytes overwritten. Skips with a printed reason without gcc or koffi, or
 * where a real libcuda is loadable.
 */
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PLAN_FORMAT, PLAN_VERSION, loadPlan, planSchema, readWeightsSpace } from '../src/index';
import type { GeneratedWeight, Plan } from '../src/index';
import { koffi } from '../src/cuda/ffi';
import { FILL_HOST_SHIM, FILL_KERNEL_SOURCE } from '../src/cuda/fill-weights';

function setUp(): { dir?: string; reason?: string } {
  try {
    koffi();
  } catch (e) {
    return { reason: (e as Error).message };
  }
  try {
    koffi().load('libcuda.so.1');
    return { reason: 'a real libcuda.so.1 is loadable here (bench/flux-full/gen-check.sh checks the fill on that machine)' };
  } catch {
    /* expected without a GPU */
  }
  try {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-mock-fill-'));
    fs.mkdirSync(path.join(dir, 'lib64'));
    const inc = path.join(dir, 'fill-kernel.h');
    fs.writeFileSync(inc, FILL_HOST_SHIM + FILL_KERNEL_SOURCE);
    const lib = path.join(dir, 'libparadit-mock-cuda-fill.so');
    execFileSync('gcc', ['-shared', '-fPIC', '-O1', `-DPARADIT_MOCK_FILL="${inc}"`, '-o', lib, path.join(__dirname, 'fixtures/mock-cuda.c'), '-lm'], { stdio: 'pipe' });
    fs.copyFileSync(lib, path.join(dir, 'lib64/libnvrtc.so.13'));
    process.env['PARADIT_LIBCUDA'] = lib;
    process.env['CUDA_HOME'] = dir;
    return { dir };
  } catch (e) {
    return { reason: `cannot build the mock CUDA library with gcc (${(e as Error).message.split('\n')[0]})` };
  }
}

const env = setUp();
if (env.reason) console.log(`fill-weights mock tests skipped: ${env.reason}`);
const maybe = env.reason ? describe.skip : describe;

/**
 * A plan with no instructions whose weights space is one file-backed buffer (256 bytes of a
 * pattern), then generated buffers of every dtype pair with odd sizes (so padding sits between
 * them): only the weights path runs.
 */
function writeGeneratedPlan(dir: string): Plan {
  fs.mkdirSync(path.join(dir, 'kernels'), { recursive: true });
  const file = new Uint8Array(256).map((_, i) => (i * 37 + 11) & 0xff);
  const gens: Omit<GeneratedWeight, 'buf'>[] = [
    { generator: 'uniform-jenkins32', seed: 2 ** 40 + 3, count: 3 * 129, fanIn: 129, from: 'bf16', dtype: 'bf16' },
    { generator: 'uniform-jenkins32', seed: 7, count: 1000, fanIn: 1000, from: 'f32', dtype: 'f16' },
    { generator: 'uniform-jenkins32', seed: Number.MAX_SAFE_INTEGER, count: 5 * 3072, fanIn: 3072, from: 'bf16', dtype: 'f32' },
    { generator: 'uniform-jenkins32', seed: 0x80000001, count: 1, fanIn: 1, from: 'f16', dtype: 'bf16' },
  ];
  const size = { f32: 4, bf16: 2, f16: 2 } as const;
  const buffers: Plan['buffers'] = [{ id: 0, name: 'real', dtype: 'u8', shape: [256], space: 'weights', offset: 0, bytes: 256 }];
  const generated: GeneratedWeight[] = [];
  let off = 256;
  gens.forEach((g, k) => {
    const bytes = g.count * size[g.dtype];
    buffers.push({ id: k + 1, name: `gen${k}`, dtype: g.dtype, shape: [g.count / g.fanIn, g.fanIn], space: 'weights', offset: off, bytes });
    generated.push({ buf: k + 1, ...g });
    off = Math.ceil((off + bytes) / 256) * 256;
  });
  const plan: Plan = {
    format: PLAN_FORMAT, version: PLAN_VERSION,
    compiledFrom: { model: 'hand-built', modelSha256: '', paradit: '0.1.0', createdAt: new Date(0).toISOString() },
    target: { backend: 'cuda', arch: 'sm_90a', dtype: 'bf16', mesh: { cfg: 1, ring: 1, ulysses: 1 } },
    streams: 1, events: 0,
    spaces: { weights: off, io: 0, arena: 0, state: 0 },
    weights: { file: 'weights.bin', bytes: file.byteLength, alignment: 256, sha256: crypto.createHash('sha256').update(file).digest('hex'), generated },
    kernels: { source: 'kernels/module.cu', cubin: null, options: [] },
    files: { 'kernels/module.cu': crypto.createHash('sha256').update('').digest('hex') },
    buffers, inputs: [], outputs: [], state: [], program: [], stats: {},
  };
  planSchema.parse(plan);
  fs.writeFileSync(path.join(dir, 'weights.bin'), file);
  fs.writeFileSync(path.join(dir, 'kernels/module.cu'), '');
  fs.writeFileSync(path.join(dir, 'plan.json'), JSON.stringify(plan));
  return plan;
}

maybe('generated weights over the stand-in libcuda', () => {
  const cuda = () => require('../src/cuda') as typeof import('../src/cuda');

  it('DevicePlan fills the weights space byte-equal to the CPU backend, padding zeroed, weights.bin untouched', () => {
    const dir = path.join(env.dir!, 'plan');
    const plan = writeGeneratedPlan(dir);
    const want = readWeightsSpace(loadPlan(dir));
    const lines: string[] = [];
    const dp = new (cuda().DevicePlan)(cuda().readPlanFiles(dir), { verifyWeights: true, log: (l) => lines.push(l) });
    try {
      const got = new Uint8Array(plan.spaces.weights);
      // Dirty the host copy first: every byte must come from the device.
      got.fill(0xcd);
      dp.d.dtoh(got, dp.weights);
      const differ = [...got].findIndex((b, i) => b !== want[i]);
      expect(differ).toBe(-1);
      // The CPU space itself has random data and zero padding where expected.
      const gen1 = plan.buffers[2]!;
      expect(want.subarray(gen1.offset, gen1.offset + gen1.bytes).some((b) => b !== 0)).toBe(true);
      const pad = plan.buffers[1]!.offset + plan.buffers[1]!.bytes;
      expect([...want.subarray(pad, gen1.offset)].every((b) => b === 0)).toBe(true);
      expect(lines.join('\n')).toMatch(/generated on the GPU \(4 tensors\)/);
      expect(dp.generatedMs).toBeGreaterThanOrEqual(0);
    } finally {
      dp.dispose();
    }
  });

  it('refuses a recipe that overlaps weights.bin before touching the device', () => {
    const dir = path.join(env.dir!, 'bad');
    const plan = writeGeneratedPlan(dir);
    plan.buffers[1] = { ...plan.buffers[1]!, offset: 0 };
    fs.writeFileSync(path.join(dir, 'plan.json'), JSON.stringify(plan));
    expect(() => new (cuda().DevicePlan)(cuda().readPlanFiles(dir), {})).toThrow(/generated weight of buffer 1: 'gen0' starts at byte 0, inside weights.bin \(256 bytes\); recompile the plan/);
  });
});
