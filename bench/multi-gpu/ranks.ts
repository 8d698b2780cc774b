/**
 * One process per GPU through NCCL, for machines with W >= 2 GPUs (`smoke.cjs ranks W`): the
 * parent spawns W copies of this script (`--child`), each one NCCL rank on GPU localRank running a
 * dist plan (dist-plans.ts) with graphs on and off, compared with SimulatedPlanRanks; then a
 * failure drill: rank 1 dies after set-up (leaving a failure note, the peer beacon), and rank 0,
 * stuck in the step's NCCL kernels, must abort and fail with a RankFailure naming the step.
 * The beacon here is a file per rank in a shared folder (the launcher has its own; this is a test).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeMesh } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import { SimulatedPlanRanks, loadCudaRuntime, loadPlan } from '../../packages/runtime/src/index';
import type { DistOptions } from '../../packages/runtime/src/distributed/types';
import { diffOutputs, distInputs, writeDistPlan } from './dist-plans';

export interface RankResult {
  readonly check: string;
  readonly ok: boolean;
  readonly detail: string;
}

function distFor(rank: number, world: number, port: number, beacon: string, timeoutMs: number): DistOptions {
  return {
    env: { launcher: 'paradit', rank, world, localRank: rank, localWorld: world, bootstrap: `127.0.0.1:${port}`, describe: `smoke child ${rank}/${world}` },
    watch: {
      timeoutMs,
      peerFailure: () => {
        for (const f of fs.existsSync(beacon) ? fs.readdirSync(beacon) : []) if (f !== `fail.${rank}`) return fs.readFileSync(path.join(beacon, f), 'utf8');
        return undefined;
      },
      reportFailure: (m) => fs.writeFileSync(path.join(beacon, `fail.${rank}`), m),
    },
  };
}

/** The child: argv = --child MODE RANK WORLD PORT WORKDIR MESH(c,r,u). Prints one JSON line. */
export async function rankChild(argv: readonly string[]): Promise<void> {
  const [mode, rs, ws, ps, work, ms] = argv;
  const rank = Number(rs);
  const world = Number(ws);
  const [cfg, ring, ulysses] = ms!.split(',').map(Number);
  const mesh = makeMesh({ cfg, ring, ulysses });
  const beacon = path.join(work!, `beacon-${mode}`);
  fs.mkdirSync(beacon, { recursive: true });
  const dir = path.join(work!, `plan-${ms}-${mode}-${rank}`);
  writeDistPlan(dir, mesh, 'f32');
  const rt = loadCudaRuntime();
  const results: RankResult[] = [];
  if (mode === 'run') {
    for (const graphs of [false, true]) {
      const b = new rt.CudaBackend(loadPlan(dir, { verifyWeights: false }), { dist: distFor(rank, world, Number(ps) + (graphs ? 1 : 0), beacon, 120_000), graphs });
      try {
        const sim = new SimulatedPlanRanks(loadPlan(dir));
        const errs: string[] = [];
        for (const [i, flag] of [true, false, true].entries()) {
          const inputs = distInputs(mesh, 'f32', 40 + i, flag);
          errs.push(...diffOutputs(await b.step(inputs), await sim.step(inputs)).map((e) => `step ${i}: ${e}`));
        }
        const t = b.bench(50, 5);
        results.push({ check: `rank ${rank}/${world} mesh ${ms} graphs ${graphs}`, ok: errs.length === 0 && (!graphs || b.report.graph === 'captured'), detail: errs.join('; ') || `3 steps byte-equal to simulated ranks; graph ${b.report.graph}${b.report.graphError ? ` (${b.report.graphError})` : ''}; nccl ${b.report.ncclVersion}; step ${t.medianMs.toFixed(3)} ms (${t.mode})` });
      } finally {
        b.dispose();
      }
    }
  } else {
    // Failure drill: both ranks set up; rank 1 leaves a note and dies; rank 0's step must fail.
    const b = new rt.CudaBackend(loadPlan(dir, { verifyWeights: false }), { dist: distFor(rank, world, Number(ps) + 2, beacon, 60_000), graphs: true });
    if (rank === 1) {
      fs.writeFileSync(path.join(beacon, 'fail.1'), 'rank 1 exited on purpose (failure drill)');
      process.exit(3);
    }
    await new Promise((r) => setTimeout(r, 1000));
    const t0 = Date.now();
    try {
      await b.step(distInputs(mesh, 'f32', 1, true));
      results.push({ check: `rank 0 failure drill`, ok: false, detail: 'the step finished although rank 1 died' });
    } catch (e) {
      const m = (e as Error).message;
      // The beacon, or NCCL noticing the closed connection first: either way a RankFailure about the step.
      const ok = (e as Error).name === 'RankFailure' && /^rank 0: (stopped waiting for the step .*because a peer failed: rank 1 exited on purpose|NCCL reported an error waiting for the step)/.test(m);
      results.push({ check: `rank 0 failure drill`, ok, detail: `${(e as Error).name} after ${((Date.now() - t0) / 1000).toFixed(1)} s: ${m}` });
    }
    b.dispose();
  }
  console.log(`RESULT ${JSON.stringify(results)}`);
}

function runChildren(script: string, mode: string, world: number, port: number, work: string, mesh: Mesh): Promise<RankResult[]> {
  const ms = `${mesh.cfg},${mesh.ring},${mesh.ulysses}`;
  return Promise.all(
    Array.from({ length: world }, (_, r) =>
      new Promise<RankResult[]>((resolve) => {
        const child = spawn(process.execPath, [script, '--child', mode, String(r), String(world), String(port), work, ms], { stdio: ['ignore', 'pipe', 'pipe'] });
        let text = '';
        child.stdout.on('data', (b: Buffer) => (text += b.toString()));
        child.stderr.on('data', (b: Buffer) => (text += b.toString()));
        const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
        child.on('exit', (code) => {
          clearTimeout(timer);
          const line = text.split('\n').find((l) => l.startsWith('RESULT '));
          if (line) resolve(JSON.parse(line.slice(7)) as RankResult[]);
          else if (mode === 'drill' && r === 1 && code === 3) resolve([]);
          else resolve([{ check: `rank ${r}/${world} ${mode} mesh ${ms}`, ok: false, detail: `exit ${code}: ${text.trim().split('\n').slice(-6).join(' | ')}` }]);
        });
      }),
    ),
  ).then((xs) => xs.flat());
}

/** The parent: meshes of `world` ranks, then the failure drill (world 2). */
export async function rankParent(script: string, world: number, work: string): Promise<RankResult[]> {
  const meshes = world === 2 ? [makeMesh({ ulysses: 2 }), makeMesh({ ring: 2 }), makeMesh({ cfg: 2 })] : [makeMesh({ ulysses: world }), makeMesh({ cfg: 2, ulysses: world / 2 }), makeMesh({ ring: 2, ulysses: world / 2 })];
  const out: RankResult[] = [];
  let port = 29611;
  for (const m of meshes) {
    out.push(...(await runChildren(script, 'run', world, port, work, m)));
    port += 4;
  }
  out.push(...(await runChildren(script, 'drill', 2, port, work, makeMesh({ ulysses: 2 }))));
  return out;
}
