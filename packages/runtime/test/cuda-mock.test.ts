/**
 * The CUDA runtime's multi-rank glue on the host, against a stand-in libcuda/libnvrtc
 * (fixtures/mock-cuda.c: host memory, every stream operation run at once, the reduce helper
 * kernels by name) and the stand-in libnccl (fixtures/mock-nccl.c): InProcessCudaRanks (shared
 * weights, per-rank spaces, shard_slice as CUDA_MEMCPY2D, the exchange copies, the packed
 * reduce-kernel parameters, branch agreement) and CudaBackend forced through NCCL in a world of
 * one return exactly SimulatedPlanRanks' bytes. Schedules are not tested here (the mock runs
 * everything in call order): the GPU runs of bench/multi-gpu/smoke.ts are. Skips with a printed
 * reason without gcc or koffi, or where a real libcuda is loadable (the GPU tests cover that machine).
 */
import path from 'node:path';
import { makeMesh } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import { SimulatedPlanRanks, loadPlan } from '../src/index';
import { diffOutputs, distInputs, writeDistPlan } from '../../../bench/multi-gpu/dist-plans';
import type { DistDType } from '../../../bench/multi-gpu/dist-plans';
import { skipReason } from '../../../tests/skip-reason';
import { buildMockLibs } from './fixtures/mock-libs';

function setUp(): { dir?: string; reason?: string } {
  const libs = buildMockLibs('paradit-mock-cuda-');
  if (!libs.env) return libs;
  Object.assign(process.env, libs.env);
  return { dir: libs.dir };
}

const env = setUp();
if (env.reason) skipReason(__filename, env.reason);
const maybe = env.reason ? describe.skip : describe;

maybe('the CUDA runtime over mock CUDA and NCCL libraries', () => {
  // Required lazily: the CUDA entry must load after the mock driver.
  const rt = () => (require('../src/cuda') as typeof import('../src/cuda'));
  const name = (m: Mesh) => `${m.cfg}x${m.ring}x${m.ulysses}`;
  const planDir = (mesh: Mesh, dtype: DistDType) => {
    const dir = path.join(env.dir!, `plan-${name(mesh)}-${dtype}`);
    writeDistPlan(dir, mesh, dtype);
    return dir;
  };

  const meshes = [{ ulysses: 2 }, { ring: 2 }, { cfg: 2 }, { ring: 2, ulysses: 2 }, { cfg: 2, ulysses: 2 }, { cfg: 2, ring: 2, ulysses: 2 }, { ulysses: 3 }, { cfg: 3, ring: 2 }, { ring: 4, ulysses: 2 }].map((m) => makeMesh(m));
  it.each(meshes.flatMap((m) => (['f32', 'bf16'] as const).map((d) => [name(m), d, m] as const)))('InProcessCudaRanks %s %s equals SimulatedPlanRanks byte for byte', async (_, dtype, mesh) => {
    const dir = planDir(mesh, dtype);
    const ranks = new (rt().InProcessCudaRanks)(loadPlan(dir));
    try {
      expect(ranks.ranks.length).toBe(mesh.cfg * mesh.ring * mesh.ulysses);
      // One weights allocation for every rank.
      expect(new Set(ranks.ranks.map((r) => r.address(0))).size).toBe(1);
      expect(new Set(ranks.ranks.map((r) => r.address(1))).size).toBe(ranks.ranks.length);
      const sim = new SimulatedPlanRanks(loadPlan(dir));
      for (const [i, flag] of [true, false, true].entries()) {
        const inputs = distInputs(mesh, dtype, 30 + i, flag);
        expect(diffOutputs(await ranks.step(inputs), await sim.step(inputs))).toEqual([]);
      }
      expect(ranks.ranks.every((r) => r.branchTaken.get('5') === 'then')).toBe(true);
    } finally {
      ranks.dispose();
    }
  });

  it('ranks whose branch decisions differ fail naming them', async () => {
    const mesh = makeMesh({ ulysses: 2 });
    const dir = planDir(mesh, 'f32');
    const ranks = new (rt().InProcessCudaRanks)(loadPlan(dir));
    try {
      // Rank 1's flag byte is flipped after its upload, as a diverged cache decision would be.
      const r1 = ranks.ranks[1]!;
      const upload = r1.upload.bind(r1);
      r1.upload = (inputs) => {
        upload(inputs);
        r1.d.memsetD8(r1.address(2), 0, 1);
      };
      await expect(ranks.step(distInputs(mesh, 'f32', 1, true))).rejects.toThrow(/branch 5 \(branch\) of mesh cfg=1 ring=1 ulysses=2 \(world 2\): ranks 0 take 'then', ranks 1 take 'else'; every rank must take the same side/);
    } finally {
      ranks.dispose();
    }
  });

  it.each([false, true])('CudaBackend with the NCCL path forced in a world of one (graphs %s: eager here) equals SimulatedPlanRanks', async (graphs) => {
    const mesh = makeMesh();
    const dir = planDir(mesh, 'f32');
    const lines: string[] = [];
    const b = rt().CudaBackend.load(dir, { nccl: true, graphs, log: (l) => lines.push(l) });
    try {
      expect(b.report.collectives).toBe('nccl');
      expect(b.report.ncclVersion).toBe('2.21.5');
      expect(b.report.graph).toBe(graphs ? 'unsupported' : 'off'); // the mock has no conditional nodes
      const sim = new SimulatedPlanRanks(loadPlan(dir));
      for (const [i, flag] of [false, true].entries()) {
        const inputs = distInputs(mesh, 'f32', 50 + i, flag);
        expect(diffOutputs(await b.step(inputs), await sim.step(inputs))).toEqual([]);
      }
      expect(lines.join('\n')).toMatch(/nccl 2\.21\.5: rank 0 of 1 \(set NCCL_NVLS_ENABLE=0 NCCL_GRAPH_MIXING_SUPPORT=0\)/);
    } finally {
      b.dispose();
    }
  });

  it('CudaBackend without NCCL runs a mesh-1 plan that has collectives (groups of one are local copies)', async () => {
    const mesh = makeMesh();
    const dir = planDir(mesh, 'f32');
    const b = rt().CudaBackend.load(dir, { nccl: false, graphs: false });
    try {
      expect(b.report.collectives).not.toBe('nccl');
      const sim = new SimulatedPlanRanks(loadPlan(dir));
      for (const [i, flag] of [false, true].entries()) {
        const inputs = distInputs(mesh, 'f32', 70 + i, flag);
        expect(diffOutputs(await b.step(inputs), await sim.step(inputs))).toEqual([]);
      }
    } finally {
      b.dispose();
    }
  });
});
