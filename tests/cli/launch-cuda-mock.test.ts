/**
 * Launched CUDA ranks without a GPU: the bundled CLI over the stand-in libcuda/libnvrtc/libnccl of
 * packages/runtime/test/fixtures (host memory, NCCL in host memory) runs the hand-built dist plans
 * of bench/multi-gpu/dist-plans.ts. Checks that `paradit launch --nproc 1 -- run --backend cuda`
 * and torchrun-style WORLD_SIZE=1 go through the NCCL path (load report `collectives: nccl`, the
 * outputs byte-equal to SimulatedPlanRanks), that NCCL_COMM_ID comes from MASTER_PORT+1 while the
 * user's NCCL_* variables stay untouched, that a plain run does not use NCCL, and that two ranks on
 * one GPU are refused by rank 1 with rank 0 stopping and naming it. Skips with a printed reason
 * without gcc or koffi, or where a real libcuda is loadable (bench/multi-gpu/launch-gpu.sh covers it).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeMesh, readTensorFile, writeTensorFile } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import { SimulatedPlanRanks, loadPlan } from '@paradit/runtime';
import { distInputs, writeDistPlan } from '../../bench/multi-gpu/dist-plans';
import { CLI, ensureCli } from './cli-helpers';
import { REPO_ROOT } from '../fixtures';
import { buildMockLibs } from '../../packages/runtime/test/fixtures/mock-libs';


const mock = buildMockLibs('paradit-launch-mock-');
if (mock.reason) console.log(`launch-cuda-mock tests skipped: ${mock.reason}`);
const maybe = mock.reason ? describe.skip : describe;

interface Proc {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Proc {
  // Only the variables given here say who launched it: the test's own environment may have others.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(RANK|WORLD_SIZE|LOCAL_RANK|MASTER_|NCCL_|PARADIT_|SLURM_|OMPI_|PMI_)/.test(k)));
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, env: { ...base, ...mock.env, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A dist plan for `mesh` with its inputs as input_K.pb files, and SimulatedPlanRanks' outputs. */
async function planWithData(mesh: Mesh, tag: string) {
  const dir = path.join(mock.dir!, tag);
  const plan = writeDistPlan(path.join(dir, 'plan'), mesh, 'f32');
  const inputs = distInputs(mesh, 'f32', 11, true);
  fs.mkdirSync(path.join(dir, 'data'));
  plan.inputs.forEach((x, k) => writeTensorFile(path.join(dir, 'data', `input_${k}.pb`), inputs.get(x.name)!, x.name));
  const want = await new SimulatedPlanRanks(loadPlan(path.join(dir, 'plan'))).step(inputs);
  return { plan: path.join(dir, 'plan'), data: path.join(dir, 'data'), outputs: plan.outputs.map((x) => want.get(x.name)!) };
}

const loadOf = (stdout: string) => (JSON.parse(stdout) as { load: { collectives: string; world: number } }).load;

maybe('launched CUDA ranks over the stand-in CUDA and NCCL libraries', () => {
  beforeAll(() => ensureCli());
  afterAll(() => fs.rmSync(mock.dir!, { recursive: true, force: true }));

  it('launch --nproc 1 and WORLD_SIZE=1 go through NCCL and match simulated ranks; a plain run does not', async () => {
    const p = await planWithData(makeMesh(), 'one');
    const save = path.join(mock.dir!, 'out-launch');
    const l = cli(['launch', '--nproc', '1', '--', 'run', p.plan, '--inputs', p.data, '--backend', 'cuda', '--json', '--save', save]);
    expect(l.code).toBe(0);
    expect(loadOf(l.stdout)).toMatchObject({ collectives: 'nccl', world: 1 });
    p.outputs.forEach((t, k) => expect([...readTensorFile(path.join(save, `output_${k}.pb`)).data]).toEqual([...t.data]));
    const ports = /ports (\d+) \(NCCL\)/.exec(l.stderr);
    expect(l.stderr).toContain(`paradit: cuda: nccl 2.21.5: rank 0 of 1 (set NCCL_COMM_ID=127.0.0.1:${ports![1]} NCCL_NVLS_ENABLE=0 NCCL_GRAPH_MIXING_SUPPORT=0)`);

    // torchrun-style: NCCL at MASTER_PORT + 1; the user's NCCL_NVLS_ENABLE is left as it is.
    const t = cli(['run', p.plan, '--inputs', p.data, '--backend', 'cuda', '--json'], { RANK: '0', WORLD_SIZE: '1', LOCAL_RANK: '0', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '41000', NCCL_NVLS_ENABLE: '1' });
    expect(t.code).toBe(0);
    expect(loadOf(t.stdout).collectives).toBe('nccl');
    expect(t.stderr).toContain('nccl 2.21.5: rank 0 of 1 (set NCCL_COMM_ID=127.0.0.1:41001 NCCL_GRAPH_MIXING_SUPPORT=0)');
    const u = cli(['run', p.plan, '--inputs', p.data, '--backend', 'cuda', '--json'], { RANK: '0', WORLD_SIZE: '1', NCCL_COMM_ID: '10.9.9.9:5000' });
    expect(u.stderr).toContain('nccl 2.21.5: rank 0 of 1 (set NCCL_NVLS_ENABLE=0 NCCL_GRAPH_MIXING_SUPPORT=0)');

    const plain = cli(['run', p.plan, '--inputs', p.data, '--backend', 'cuda', '--json']);
    expect(plain.code).toBe(0);
    expect(loadOf(plain.stdout).collectives).toBe('none');
  });

  it('two ranks on one GPU: rank 1 is refused (exit 2), rank 0 stops naming it', async () => {
    const p = await planWithData(makeMesh({ ulysses: 2 }), 'u2');
    const t0 = performance.now();
    const r = cli(['launch', '--nproc', '2', '--timeout', '3', '--grace', '1', '--', 'run', p.plan, '--inputs', p.data, '--backend', 'cuda'], { CUDA_VISIBLE_DEVICES: '0' });
    expect((performance.now() - t0) / 1000).toBeLessThan(3 + 10);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\[rank 1\] paradit: error: NCCL set-up: this is local rank 1, but the process sees 1 GPU\(s\) \(CUDA_VISIBLE_DEVICES=0\); NCCL cannot put two ranks on one GPU/);
    expect(r.stderr).toMatch(/\[rank 0\] paradit: error: rank 0 stopped because rank 1 failed: NCCL set-up/);
    expect(r.stderr).toMatch(/paradit launch: rank 0: exit 4 \(a peer rank failed\); rank 1: exit 2 \(bad input\)/);
  });
});
