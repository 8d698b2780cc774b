/**
 * GPU smoke test of multi-GPU execution (device machine; see bench/multi-gpu/README.md). On one
 * GPU (`all`, the default):
 *   nccl1   NCCL in a world of one: every collective kind through real NCCL calls (grouped
 *           self send/recv, all-gather, all-reduce sum/max/avg), eager and graph-captured, byte
 *           for byte against collectiveOverGroup (nccl-direct.ts); then the dist plan of a 1x1x1
 *           mesh through CudaBackend with the NCCL path forced, eager and as a captured graph
 *           (NCCL inside the branch's conditional body, forked onto the comm stream), against
 *           SimulatedPlanRanks; and a rank whose peer never starts must time out cleanly.
 *   inproc  dist plans at W = 2 and 4 (every mesh shape) through InProcessCudaRanks, byte for byte
 *           against SimulatedPlanRanks, f32 and bf16, both branch sides.
 *   bench   the single-GPU smoke plan (bench/runtime) and the 1x1x1 dist plan: graph step with and
 *           without the NCCL path (numbers only).
 * With W >= 2 GPUs: `ranks W` runs one process per GPU through NCCL (ranks.ts).
 *   node .gpu-work/multi-gpu/smoke.cjs [all|nccl1|inproc|bench|ranks W] [workdir]
 * Prints a PASS/FAIL table; exits 1 on any failure.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeMesh } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import { SimulatedPlanRanks, loadCudaRuntime, loadPlan } from '../../packages/runtime/src/index';
import { RankFailure } from '../../packages/runtime/src/distributed/types';
import { writeSmokePlan } from '../runtime/smoke-plan';
import { diffOutputs, distInputs, writeDistPlan } from './dist-plans';
import type { DistDType } from './dist-plans';
import { ncclDirectChecks } from './nccl-direct';
import { rankChild, rankParent } from './ranks';

const results: { check: string; ok: boolean; detail: string }[] = [];
function record(check: string, ok: boolean, detail: string): void {
  results.push({ check, ok, detail });
  console.log(`${ok ? 'PASS' : 'FAIL'} ${check}: ${detail}`);
}
async function attempt(check: string, f: () => Promise<string> | string): Promise<void> {
  try {
    record(check, true, await f());
  } catch (e) {
    record(check, false, (e as Error).stack ?? String(e));
  }
}

const name = (m: Mesh) => `${m.cfg}x${m.ring}x${m.ulysses}`;

function planDir(work: string, mesh: Mesh, dtype: DistDType): string {
  const dir = path.join(work, `dist-${name(mesh)}-${dtype}`);
  writeDistPlan(dir, mesh, dtype);
  return dir;
}

/** Steps an executor over both branch sides and compares with simulated ranks. */
async function compareSteps(exec: { step: SimulatedPlanRanks['step'] }, dir: string, mesh: Mesh, dtype: DistDType): Promise<string> {
  const sim = new SimulatedPlanRanks(loadPlan(dir));
  const errs: string[] = [];
  for (const [i, flag] of [true, false, true, false].entries()) {
    const inputs = distInputs(mesh, dtype, 20 + i, flag);
    errs.push(...diffOutputs(await exec.step(inputs), await sim.step(inputs)).map((e) => `step ${i} (flag ${flag}): ${e}`));
  }
  if (errs.length) throw new Error(errs.join('; '));
  return '4 steps (both branch sides) byte-equal to SimulatedPlanRanks';
}

async function nccl1(work: string): Promise<void> {
  const rt = loadCudaRuntime();
  const d = rt.cudaDriver();
  const dev = new rt.DeviceContext(d, 0);
  const env = { launcher: 'paradit' as const, rank: 0, world: 1, localRank: 0, localWorld: 1, bootstrap: undefined, describe: 'smoke' };
  const watch = { timeoutMs: 60_000, peerFailure: () => undefined, reportFailure: () => undefined };
  let comm: InstanceType<typeof rt.NcclCommunicator> | undefined;
  await attempt('nccl world 1 communicator', () => {
    comm = new rt.NcclCommunicator({
      env, watch, mesh: makeMesh(), axes: ['cfg', 'ring', 'ulysses', 'sp'], singletonsThroughNccl: true, log: (l) => console.log(`  ${l}`),
      device: { copy: (dst, src, bytes, s, ctx) => d.call('cuMemcpyDtoDAsync_v2', [dst, src, bytes, s], ctx), launch: () => { throw new Error('no scale kernel here'); } },
    });
    return `NCCL ${comm.version}`;
  });
  if (comm) {
    const stream = d.streamCreate();
    for (const r of ncclDirectChecks(d, comm, stream)) record(r.check, r.ok, r.detail);
    d.call('cuStreamDestroy_v2', [stream]);
    comm.destroy();
  }
  dev.release();
  for (const dtype of ['f32', 'bf16'] as const) {
    const dir = planDir(work, makeMesh(), dtype);
    for (const graphs of [false, true]) {
      await attempt(`dist plan 1x1x1 ${dtype} NCCL path graphs ${graphs}`, async () => {
        const b = rt.CudaBackend.load(dir, { nccl: true, graphs, log: (l) => console.log(`  ${l}`) });
        try {
          if (b.report.collectives !== 'nccl') throw new Error(`collectives ${b.report.collectives}, expected nccl`);
          if (graphs && b.report.graph !== 'captured') throw new Error(`graph ${b.report.graph}: ${b.report.graphError ?? '?'}`);
          const r = await compareSteps(b, dir, makeMesh(), dtype);
          return `${r}; graph ${b.report.graph}${b.report.graphNodes !== undefined ? ` (${b.report.graphNodes} nodes)` : ''}; NCCL ${b.report.ncclVersion}`;
        } finally {
          b.dispose();
        }
      });
    }
  }
  await attempt('nccl rank whose peer never starts times out', () => {
    const dir = planDir(work, makeMesh({ ulysses: 2 }), 'f32');
    const t0 = Date.now();
    try {
      const b = rt.CudaBackend.load(dir, { dist: { env: { ...env, world: 2, localWorld: 2, bootstrap: '127.0.0.1:29671' }, watch: { ...watch, timeoutMs: 5000 } } });
      b.dispose();
    } catch (e) {
      const s = ((Date.now() - t0) / 1000).toFixed(1);
      if (e instanceof RankFailure && /rank 0: timed out after 5\.\d s in NCCL communicator set-up \(world 2\)/.test(e.message)) return `RankFailure after ${s} s: ${e.message}`;
      throw e;
    }
    throw new Error('set-up succeeded without its peer');
  });
}

async function inproc(work: string): Promise<void> {
  const rt = loadCudaRuntime();
  const meshes = [{ ulysses: 2 }, { ring: 2 }, { cfg: 2 }, { ulysses: 4 }, { ring: 4 }, { cfg: 4 }, { ring: 2, ulysses: 2 }, { cfg: 2, ulysses: 2 }, { cfg: 2, ring: 2 }].map((m) => makeMesh(m));
  for (const mesh of meshes) {
    for (const dtype of ['f32', 'bf16'] as const) {
      await attempt(`in-process ${name(mesh)} (W=${mesh.cfg * mesh.ring * mesh.ulysses}) ${dtype}`, async () => {
        const dir = planDir(work, mesh, dtype);
        const ranks = new rt.InProcessCudaRanks(loadPlan(dir));
        try {
          return await compareSteps(ranks, dir, mesh, dtype);
        } finally {
          ranks.dispose();
        }
      });
    }
  }
}

async function bench(work: string): Promise<void> {
  const rt = loadCudaRuntime();
  const smoke = path.join(work, 'single-gpu-smoke');
  writeSmokePlan(smoke, 'bf16');
  const dist = planDir(work, makeMesh(), 'f32');
  for (const [label, dir] of [['single-GPU smoke plan (bf16)', smoke], ['dist plan 1x1x1 (f32)', dist]] as const) {
    for (const nccl of [false, true]) {
      await attempt(`bench ${label} nccl ${nccl}`, () => {
        const b = rt.CudaBackend.load(dir, { nccl });
        try {
          const r = b.bench(300, 20);
          return `graph step median ${r.medianMs.toFixed(4)} ms (min ${r.minMs.toFixed(4)}, ${r.mode}, ${b.report.graphNodes ?? '?'} nodes)`;
        } finally {
          b.dispose();
        }
      });
    }
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') return rankChild(process.argv.slice(3));
  const what = process.argv[2] ?? 'all';
  const world = what === 'ranks' ? Number(process.argv[3]) : 0;
  const work = process.argv[what === 'ranks' ? 4 : 3] ?? fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-multi-gpu-'));
  fs.mkdirSync(work, { recursive: true });
  if (what === 'ranks') for (const r of await rankParent(process.argv[1]!, world, work)) record(r.check, r.ok, r.detail);
  if (what === 'all' || what === 'inproc') await inproc(work);
  if (what === 'all' || what === 'bench') await bench(work);
  // Last: its timeout drill leaves an NCCL bootstrap behind in this process.
  if (what === 'all' || what === 'nccl1') await nccl1(work);
  const failed = results.filter((r) => !r.ok);
  console.log(`\n${'check'.padEnd(72)} result`);
  for (const r of results) console.log(`${r.check.padEnd(72)} ${r.ok ? 'PASS' : 'FAIL'}`);
  console.log(`\n${results.length - failed.length} passed, ${failed.length} failed`);
  process.exit(failed.length ? 1 : 0);
}

main().catch((e) => {
  console.error((e as Error).stack ?? String(e));
  process.exit(1);
});
