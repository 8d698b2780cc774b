/**
 * The CUDA backend on a real GPU: the hand-built smoke plan (bench/runtime/smoke-plan.ts) run
 * eagerly and as a captured graph with conditional nodes, against the host reference. Skips with a
 * printed reason where there is no koffi, libcuda or GPU (CI). bench/runtime/smoke.ts runs the
 * same checks (and more) as a script on the device machine.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Tensor } from '@paradit/ir';
import { loadCudaRuntime } from '../src/index';
import { M, K, N, relL2, seeded, smokeReference, smokeWeights, writeSmokePlan } from '../../../bench/runtime/smoke-plan';
import { skipReason } from '../../../tests/skip-reason';

function gpuUnavailable(): string | undefined {
  try {
    const rt = loadCudaRuntime();
    const d = rt.cudaDriver();
    const n = [0];
    d.call('cuDeviceGetCount', [n]);
    return n[0] ? undefined : 'the CUDA driver sees no device';
  } catch (e) {
    return (e as Error).message.split('\n')[0];
  }
}

const reason = gpuUnavailable();
if (reason) skipReason(__filename, reason);
const maybe = reason ? describe.skip : describe;

maybe('CudaBackend on the smoke plan', () => {
  it.each([
    ['f32', false, 1e-5],
    ['f32', true, 1e-5],
    ['bf16', true, 2e-2],
  ] as const)('%s (graphs %s) matches the host reference, both branches, state and reset', async (dtype, graphs, tol) => {
    const rt = loadCudaRuntime();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-cuda-'));
    writeSmokePlan(dir, dtype);
    const b = rt.CudaBackend.load(dir, { graphs });
    try {
      expect(b.report.graph).toBe(graphs ? 'captured' : 'off');
      const w = smokeWeights(dtype);
      let st: Float32Array = new Float32Array(M * N);
      for (const [i, flag] of [true, true, false, true].entries()) {
        const x = seeded(M * K, 200 + i, 1, dtype);
        const got = await b.step(new Map([['x', new Tensor(dtype, [M, K], x)], ['flag', new Tensor('bool', [1], Float64Array.of(flag ? 1 : 0))]]));
        const ref = smokeReference(dtype, w, x, flag, st);
        st = ref.st;
        expect(relL2(got.get('out')!.data, ref.out)).toBeLessThan(tol);
        expect(relL2(got.get('z')!.data, ref.z)).toBeLessThan(tol);
      }
      b.resetState();
      const x = seeded(M * K, 300, 1, dtype);
      const got = await b.step(new Map([['x', new Tensor(dtype, [M, K], x)], ['flag', new Tensor('bool', [1], Float64Array.of(1))]]));
      expect(relL2(got.get('out')!.data, smokeReference(dtype, w, x, true, new Float32Array(M * N)).out)).toBeLessThan(tol);
    } finally {
      b.dispose();
      fs.rmSync(dir, { recursive: true });
    }
  });
});
