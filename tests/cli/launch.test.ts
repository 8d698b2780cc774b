/**
 * Launched ranks as real child processes on the CPU (`--backend cpu`: the collectives go over the
 * control channel's TCP transport): `paradit launch --nproc 2 -- run` of Ulysses-2 and ring-2
 * plans gives the bytes the same plan gives on simulated ranks in one process (and matches the
 * one-rank plan, rel. L2 <= 1e-5); ranks started torchrun-style by the test (RANK, WORLD_SIZE,
 * MASTER_ADDR, MASTER_PORT) work; a world that is not the plan's mesh is refused by every rank
 * (exit 2); every fault mode (PARADIT_FAULT=load|step|exit|kill|hang on rank 1) makes every rank
 * exit non-zero within --timeout + 10 s with the launcher naming rank 1, and leaves no process
 * behind; SIGTERM to the launcher stops every rank (exit 143).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { readTensorFile } from '@paradit/ir';
import { compareTensors } from '@paradit/runtime';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { CLI, ensureCli, removeTempDirs, runCli, tempDir, writeModelDir } from './cli-helpers';
import { REPO_ROOT } from '../fixtures';

// 4 heads, 12 image + 4 text tokens: divisible by Ulysses 2 and ring 2.
const CFG = { ...TINY_DIT, heads: 4, batch: 1, imageTokens: 12, blocks: 1 };
const TIMEOUT_S = 3;
let model = '';
const plans: Record<'one' | 'u2' | 'r2', string> = { one: '', u2: '', r2: '' };

interface Proc {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly seconds: number;
}

/** Runs the CLI asynchronously (so that several can run at once), with extra environment. */
function cli(args: readonly string[], env: NodeJS.ProcessEnv = {}, onStderr?: (text: string, pid: number) => void): Promise<Proc> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      onStderr?.(stderr, p.pid!);
    });
    const kill = setTimeout(() => p.kill('SIGKILL'), 50_000);
    p.on('close', (code, signal) => {
      clearTimeout(kill);
      resolve({ code, signal, stdout, stderr, seconds: (performance.now() - t0) / 1000 });
    });
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** The pids the launcher started (from its first line). */
function rankPids(stderr: string): number[] {
  return [...stderr.matchAll(/rank \d+ pid (\d+)/g)].map((m) => Number(m[1]));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const output = (dir: string) => readTensorFile(path.join(dir, 'output_0.pb'));

beforeAll(() => {
  ensureCli();
  model = writeModelDir(buildTinyDit(CFG), tinyDitInputs(CFG), 'launch');
  const root = tempDir('launch-plans');
  for (const [k, flags] of [['one', []], ['u2', ['--ulysses', '2']], ['r2', ['--ring', '2']]] as const) {
    plans[k] = path.join(root, k);
    const c = runCli(['compile', model, '-o', plans[k], '--dtype', 'fp32', '--no-nvcc', ...flags]);
    if (c.code !== 0) throw new Error(`compile ${k} failed: ${c.stderr}`);
  }
});
afterAll(removeTempDirs);

describe('paradit launch: one process per rank on the CPU', () => {
  test.each(['u2', 'r2'] as const)('%s: launch --nproc 2 gives the bytes of simulated ranks and matches the one-rank plan', async (k) => {
    const sim = path.join(tempDir('launch-sim'), 'out');
    const one = path.join(tempDir('launch-one'), 'out');
    const out = path.join(tempDir('launch-out'), 'out');
    const [s1, s2, r] = await Promise.all([
      cli(['run', plans[k], '--inputs', model, '--save', sim]),
      cli(['run', plans.one, '--inputs', model, '--save', one]),
      cli(['launch', '--nproc', '2', '--', 'run', plans[k], '--inputs', model, '--save', out, '--compare', '--json']),
    ]);
    expect([s1.code, s2.code]).toEqual([0, 0]);
    expect({ code: r.code, err: r.stderr.replace(/^paradit launch: 2 ranks .*\n/, '') }).toEqual({ code: 0, err: '' });
    const rep = JSON.parse(r.stdout) as { ranks: number; checks: { ok: boolean }[] };
    expect(rep.ranks).toBe(2);
    expect(rep.checks[0]!.ok).toBe(true);
    const got = output(out);
    expect([...got.data]).toEqual([...output(sim).data]);
    expect(compareTensors(got, output(one)).relL2).toBeLessThan(1e-5);
    for (const pid of rankPids(r.stderr)) expect(alive(pid)).toBe(false);
  });

  test('denoise with First Block Cache (Ulysses 2) and check (ring 2) as launched ranks equal the simulated ranks', async () => {
    const two = writeModelDir(buildTinyDit({ ...CFG, blocks: 2 }), tinyDitInputs({ ...CFG, blocks: 2 }), 'launch-fbcache');
    const args = (out: string) => ['denoise', two, '--steps', '4', '--backend', 'cpu', '--dtype', 'fp32', '--ulysses', '2', '--fbcache', '0.7', '--json', '--save-latents', out];
    const simOut = path.join(tempDir('launch-dn'), 'sim.pb');
    const sim = runCli(args(simOut));
    expect(sim.code).toBe(0);
    const outFile = path.join(tempDir('launch-dn'), 'launched.pb');
    const [d, c] = await Promise.all([cli(['launch', '--nproc', '2', '--', ...args(outFile)]), cli(['launch', '--nproc', '2', '--', 'check', model, '--backend', 'cpu', '--ring', '2', '--json'])]);
    expect(d.code).toBe(0);
    const steps = (j: string) => (JSON.parse(j) as { steps: { cached: boolean }[] }).steps.map((x) => x.cached);
    expect(steps(d.stdout)).toEqual(steps(sim.stdout));
    expect(steps(d.stdout)).toContain(true);
    expect(fs.readFileSync(outFile)).toEqual(fs.readFileSync(simOut));
    expect(c.code).toBe(0);
    expect(JSON.parse(c.stdout)).toMatchObject({ ok: true, mesh: { ring: 2 } });
  });

  test('ranks started torchrun-style (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) work; only rank 0 prints', async () => {
    const port = await freePort();
    const out = path.join(tempDir('launch-torchrun'), 'out');
    const env = (rank: number) => ({ RANK: String(rank), WORLD_SIZE: '2', LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) });
    // torchrun's store would listen on MASTER_PORT: hold it, so a rank binding it would fail.
    const store = net.createServer().listen(port);
    try {
      const rs = await Promise.all([0, 1].map((r) => cli(['run', plans.u2, '--inputs', model, '--save', out, '--json'], env(r))));
      expect(rs.map((r) => [r.code, r.stderr])).toEqual([[0, ''], [0, '']]);
      expect(rs[1]!.stdout).toBe('');
      expect(JSON.parse(rs[0]!.stdout)).toMatchObject({ ranks: 2 });
      expect(fs.existsSync(path.join(out, 'output_0.pb'))).toBe(true);
    } finally {
      store.close();
    }
  });

  test('a world that is not the plan mesh is refused by every rank (exit 2)', async () => {
    const r = await cli(['launch', '--nproc', '3', '--', 'run', plans.u2, '--inputs', model]);
    expect(r.code).toBe(2);
    for (const rank of [0, 1, 2]) {
      expect(r.stderr).toContain(
        `[rank ${rank}] paradit: error: ${plans.u2}: the plan was compiled for mesh u2 r1 c1 = 2 ranks, but the launched world is 3 (paradit launch: PARADIT_RANK=${rank} PARADIT_WORLD_SIZE=3); start 2 ranks`,
      );
    }
    const solo = await cli(['run', plans.u2, '--inputs', model], { RANK: '0', WORLD_SIZE: '1' });
    expect(solo.code).toBe(2);
    expect(solo.stderr).toMatch(/^paradit: error: .*compiled for mesh u2 r1 c1 = 2 ranks, but the launched world is 1 \(torchrun: RANK=0 WORLD_SIZE=1\)/);
  });

  test('launch --nproc 1 runs the one-rank plan as a world of one (no control channel, no prefix)', async () => {
    const r = await cli(['launch', '--nproc', '1', '--', 'run', plans.one, '--inputs', model, '--compare']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/compare \w+: .* ok\n/);
    expect(r.stderr).not.toMatch(/\[rank/);
  });

  test('bad launcher variables and arguments exit 2 naming them', async () => {
    const r = await cli(['run', plans.u2, '--inputs', model], { RANK: '1' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^paradit: error: RANK=1 is set but WORLD_SIZE is not/);
    const l = await cli(['launch', '--nproc', '2', '--', 'compile', model]);
    expect(l.code).toBe(2);
    expect(l.stderr).toMatch(/paradit launch runs one of run, denoise, check, got 'compile/);
    expect((await cli(['launch', '--nproc', '0', '--', 'run', plans.u2])).stderr).toMatch(/--nproc 0: expected a positive whole number/);
  });

  test.each([
    ['load', 2, /rank 1 failed: PARADIT_FAULT=load: injected failure while loading the plan on rank 1/],
    ['step', 3, /rank 1 failed: PARADIT_FAULT=step: injected exception in the step of rank 1/],
    ['exit', 9, /rank 1 failed: exit 9/],
    ['kill', 137, /rank 1 failed: killed by SIGKILL/],
    ['hang', 4, /rank 1 failed: stopped responding: no heartbeat for \d\.\d s .*\(reported by rank 0\)/],
  ])('PARADIT_FAULT=%s on rank 1: every rank exits non-zero within --timeout + 10 s, naming rank 1', async (fault, code, why) => {
    // Timed from the fault (its first log line), not from the start: starting node is slow on a loaded machine.
    let faultAt = 0;
    const r = await cli(['launch', '--nproc', '2', '--timeout', String(TIMEOUT_S), '--grace', '1', '--', 'run', plans.u2, '--inputs', model], { PARADIT_FAULT: fault, PARADIT_FAULT_RANK: '1' }, (text) => {
      if (!faultAt && text.includes('PARADIT_FAULT=')) faultAt = performance.now();
    });
    expect(faultAt).toBeGreaterThan(0);
    expect((performance.now() - faultAt) / 1000).toBeLessThan(TIMEOUT_S + 10);
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(why);
    // Rank 0 names rank 1 too.
    expect(r.stderr).toMatch(/\[rank 0\] paradit: error: rank 0 stopped because rank 1 failed: /);
    const pids = rankPids(r.stderr);
    expect(pids).toHaveLength(2);
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });

  test('PARADIT_FAULT=kill on rank 0 (the control channel\'s hub): rank 1 notices and names it', async () => {
    const r = await cli(['launch', '--nproc', '2', '--timeout', String(TIMEOUT_S), '--grace', '1', '--', 'run', plans.u2, '--inputs', model], { PARADIT_FAULT: 'kill', PARADIT_FAULT_RANK: '0' });
    expect(r.code).toBe(137);
    expect(r.stderr).toMatch(/\[rank 1\] paradit: error: rank 1 stopped because rank 0 failed: its process died/);
    expect(r.stderr).toMatch(/paradit launch: rank 0 failed: killed by SIGKILL/);
    for (const pid of rankPids(r.stderr)) expect(alive(pid)).toBe(false);
  });

  test('SIGTERM to the launcher stops every rank, a hung one too (exit 143)', async () => {
    // Once rank 1 hangs, rank 0 waits at the step's first collective.
    let sent = false;
    const r = await cli(['launch', '--nproc', '2', '--timeout', '30', '--grace', '1', '--', 'run', plans.u2, '--inputs', model], { PARADIT_FAULT: 'hang', PARADIT_FAULT_RANK: '1' }, (text, pid) => {
      if (!sent && text.includes('rank 1 blocks forever')) {
        sent = true;
        setTimeout(() => process.kill(pid, 'SIGTERM'), 300);
      }
    });
    expect(r.code).toBe(143);
    expect(r.seconds).toBeLessThan(10);
    expect(r.stderr).toMatch(/paradit launch: SIGTERM: stopping every rank/);
    expect(r.stderr).toMatch(/\[rank 0\] paradit: stopped by SIGTERM/);
    for (const pid of rankPids(r.stderr)) expect(alive(pid)).toBe(false);
  });
});
