/**
 * Sharded plans on the CUDA backend. Without a GPU: the hand-built dist plans
 * (bench/multi-gpu/dist-plans.ts) load for every mesh of up to 8 ranks (their streams and events
 * pass the loader's rules) and run on SimulatedPlanRanks, where every rank agrees. With a GPU:
 * InProcessCudaRanks (W ranks sharing the GPU) returns exactly SimulatedPlanRanks' bytes at W = 2
 * and 4, for both branch sides and in bf16, and a plan for one rank refuses dist/world mismatches.
 * GPU parts skip with a printed reason where there is no koffi, libcuda or GPU (CI);
 * bench/multi-gpu/smoke.ts runs the same checks and the NCCL ones on the device machine.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeMesh } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import { SimulatedPlanRanks, loadCudaRuntime, loadPlan, openPlan } from '../src/index';
import { diffOutputs, distInputs, writeDistPlan } from '../../../bench/multi-gpu/dist-plans';
import type { DistDType } from '../../../bench/multi-gpu/dist-plans';

function gpuUnavailable(): string | undefined {
  try {
    const d = loadCudaRuntime().cudaDriver();
    const n = [0];
    d.call('cuDeviceGetCount', [n]);
    return n[0] ? undefined : 'the CUDA driver sees no device';
  } catch (e) {
    return (e as Error).message.split('\n')[0];
  }
}

const MESHES: Mesh[] = [];
for (let c = 1; c <= 8; c++) for (let r = 1; c * r <= 8; r++) for (let u = 1; c * r * u <= 8; u++) MESHES.push(makeMesh({ cfg: c, ring: r, ulysses: u }));
const name = (m: Mesh) => `${m.cfg}x${m.ring}x${m.ulysses}`;

function planDir(mesh: Mesh, dtype: DistDType): string {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-dist-')), 'plan');
  writeDistPlan(dir, mesh, dtype);
  return dir;
}

describe('dist plans on simulated ranks', () => {
  it.each(MESHES.map((m) => [name(m), m] as const))('mesh %s: loads (streams and events pass) and every rank returns the same outputs', async (_, mesh) => {
    const dir = planDir(mesh, 'f32');
    try {
      const sim = new SimulatedPlanRanks(loadPlan(dir));
      for (const flag of [true, false]) {
        const out = await sim.step(distInputs(mesh, 'f32', 3, flag));
        expect([...out.keys()]).toEqual(['g', 'w1']);
        expect(out.get('g')!.data.some((v) => Number.isNaN(v))).toBe(false);
      }
    } finally {
      fs.rmSync(path.dirname(dir), { recursive: true });
    }
  });
});

const reason = gpuUnavailable();
if (reason) console.log(`cuda-dist GPU tests skipped: ${reason}`);
const maybe = reason ? describe.skip : describe;

maybe('InProcessCudaRanks on one GPU', () => {
  const meshes = [makeMesh({ ulysses: 2 }), makeMesh({ ring: 2 }), makeMesh({ cfg: 2 }), makeMesh({ ring: 2, ulysses: 2 }), makeMesh({ cfg: 2, ulysses: 2 }), makeMesh({ ulysses: 4 }), makeMesh({ cfg: 2, ring: 2 })];
  it.each(meshes.flatMap((m) => (['f32', 'bf16'] as const).map((d) => [name(m), d, m] as const)))('mesh %s %s: byte-equal to SimulatedPlanRanks, both branch sides', async (_, dtype, mesh) => {
    const dir = planDir(mesh, dtype);
    const opened = await openPlan(dir, { backend: 'cuda' });
    try {
      expect((opened.executor as { report?: { collectives?: string } }).report?.collectives).toBe('in-process');
      const sim = new SimulatedPlanRanks(loadPlan(dir));
      for (const [i, flag] of [true, false, true].entries()) {
        const inputs = distInputs(mesh, dtype, 10 + i, flag);
        expect(diffOutputs(await opened.executor.step(inputs), await sim.step(inputs))).toEqual([]);
      }
    } finally {
      opened.dispose();
      fs.rmSync(path.dirname(dir), { recursive: true });
    }
  });

  it('refuses a sharded plan opened as a single launched rank, naming both worlds', async () => {
    const dir = planDir(makeMesh({ ulysses: 2 }), 'f32');
    const env = { launcher: 'paradit' as const, rank: 0, world: 1, localRank: 0, localWorld: 1, bootstrap: undefined, describe: 'test' };
    const watch = { timeoutMs: 1000, peerFailure: () => undefined, reportFailure: () => undefined };
    try {
      await expect(openPlan(dir, { backend: 'cuda', dist: { env, watch } })).rejects.toThrow(/sharded over a mesh \(cfg 1, ring 1, ulysses 2\), so it runs on 2 ranks, but this backend was opened as a single rank/);
    } finally {
      fs.rmSync(path.dirname(dir), { recursive: true });
    }
  });
});
