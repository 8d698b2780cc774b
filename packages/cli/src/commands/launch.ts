/**
 * `paradit launch --nproc N [--timeout S] [--grace S] -- run PLAN ...`: starts N local ranks of a
 * paradit command, like torchrun's standalone mode: child r gets PARADIT_RANK=r,
 * PARADIT_WORLD_SIZE=N, PARADIT_LOCAL_RANK=r, PARADIT_MASTER_ADDR=127.0.0.1 and a free
 * PARADIT_MASTER_PORT (base: NCCL at +1, the control channel at +2; runtime distributed/env.ts). Ranks
 * prefix their own stderr with `[rank R]`; stdout (rank 0's results) passes through unchanged.
 *
 * When a rank fails (exit code not 0, or killed), the others get --grace seconds to notice
 * through the control channel and exit; the rest are then sent SIGTERM and, 2 s later, SIGKILL.
 * The launcher exits with the failed rank's code (128+signal when it was killed; 4 when only its
 * peers' reports name it) and says which rank failed and why. SIGINT and SIGTERM are forwarded to
 * every rank (exit 130/143).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import type { Command } from 'commander';
import { IrError } from '@paradit/ir';
import { EXIT_PEER_FAILED } from '../errors';
import { SIGNAL_EXIT, timeoutMs } from '../launched';

const LAUNCHABLE = ['run', 'denoise', 'check'];

interface LaunchFlags {
  nproc: string;
  timeout?: string;
  grace?: string;
  masterPort?: string;
}

interface Rank {
  readonly rank: number;
  readonly proc: ChildProcess;
  exit?: { code: number | null; signal: NodeJS.Signals | null; at: number };
  /** The launcher stopped it (after another rank failed, or on SIGINT/SIGTERM). */
  stopped: boolean;
  /** Its last `paradit: error: ...` (or internal error) line. */
  lastError?: string;
  partial: string;
}

function bad(message: string): never {
  throw new IrError('E_INPUT', message);
}

function positive(name: string, v: string, integer: boolean): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) bad(`${name} ${v}: expected a positive ${integer ? 'whole number' : 'number'}`);
  return n;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, () => s.close(() => resolve(true)));
  });
}

/** A base port whose +1 (NCCL) and +2 (control channel) are free now. */
async function freeBasePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = await new Promise<number>((resolve) => {
      const s = net.createServer();
      s.listen(0, () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    if (p + 2 <= 65535 && (await canListen(p + 1)) && (await canListen(p + 2))) return p;
  }
  throw new Error('paradit launch: found no free ports for the ranks; pass --master-port');
}

/** What rootCause reads of a rank. */
export type RankExit = Pick<Rank, 'rank' | 'exit' | 'stopped' | 'lastError'>;

function describeExit(r: RankExit): string {
  const x = r.exit!;
  if (x.signal) return `killed by ${x.signal}${r.stopped ? ' (stopped by paradit launch)' : ''}`;
  const what: Record<number, string> = { 1: 'a mismatch', 2: 'bad input', 3: 'an internal error', [EXIT_PEER_FAILED]: 'a peer rank failed' };
  return `exit ${x.code}${what[x.code!] ? ` (${what[x.code!]})` : ''}`;
}

/** The rank that failed first and why, from the exits and the ranks' last error lines. */
export function rootCause(ranks: readonly RankExit[]): { rank: number; why: string; code: number } | undefined {
  const failed = ranks.filter((r) => r.exit && (r.exit.code !== 0 || r.exit.signal)).sort((a, b) => a.exit!.at - b.exit!.at);
  if (failed.length === 0) return undefined;
  // A rank that failed by itself: not stopped by us, not merely reporting a peer.
  const own = failed.find((r) => !r.stopped && r.exit!.code !== EXIT_PEER_FAILED);
  if (own) {
    const x = own.exit!;
    return { rank: own.rank, why: own.lastError ?? describeExit(own), code: x.signal ? 128 + (os.constants.signals[x.signal] ?? 0) : x.code! };
  }
  // Otherwise the peers' reports name it ("rank 0 stopped because rank 1 failed: ...").
  for (const r of failed) {
    const m = r.lastError && /because rank (\d+) failed: (.*)$/.exec(r.lastError);
    if (m) return { rank: Number(m[1]), why: `${m[2]} (reported by rank ${r.rank})`, code: EXIT_PEER_FAILED };
  }
  const first = failed[0]!;
  return { rank: first.rank, why: first.lastError ?? describeExit(first), code: first.exit!.code ?? EXIT_PEER_FAILED };
}

export function launchCommand(program: Command, setCode: (c: number) => void): void {
  program
    .command('launch')
    .description('start N local ranks of `paradit run|denoise|check` (one process per rank, like torchrun standalone); put the command after --')
    .requiredOption('--nproc <n>', 'number of ranks (processes) to start on this host')
    .option('--timeout <s>', 'watchdog timeout of every rank in seconds (PARADIT_TIMEOUT; default 300)')
    .option('--grace <s>', 'after a rank fails, seconds the others get to exit before they are stopped (default 3)', '3')
    .option('--master-port <port>', 'base port (NCCL at +1, control channel at +2; default: a free port)')
    .argument('<command...>', 'the paradit command every rank runs, after --: run PLAN --inputs DIR ...')
    .action(async (command: string[], flags: LaunchFlags) => {
      const n = positive('--nproc', flags.nproc, true);
      const graceMs = positive('--grace', flags.grace ?? '3', false) * 1000;
      if (flags.timeout !== undefined) timeoutMs(flags.timeout);
      if (!LAUNCHABLE.includes(command[0] ?? '')) bad(`paradit launch runs one of ${LAUNCHABLE.join(', ')}, got '${command.join(' ')}'; e.g. paradit launch --nproc 2 -- run PLAN --inputs DIR`);
      const base = flags.masterPort !== undefined ? positive('--master-port', flags.masterPort, true) : await freeBasePort();
      if (base + 2 > 65535) bad(`--master-port ${base}: the control channel needs ${base}+2 <= 65535`);
      setCode(await launch(n, command, base, graceMs, flags.timeout));
    });
}

async function launch(n: number, command: readonly string[], base: number, graceMs: number, timeout: string | undefined): Promise<number> {
  const say = (line: string) => void process.stderr.write(`paradit launch: ${line}\n`);
  const ranks: Rank[] = [];
  let stopping: NodeJS.Signals | undefined;
  let teardown: NodeJS.Timeout | undefined;
  const alive = () => ranks.filter((r) => !r.exit);
  const stopAll = (sig: NodeJS.Signals) => {
    for (const r of alive()) {
      r.stopped = true;
      r.proc.kill(sig);
    }
  };
  const tearDown = () => {
    if (teardown) return;
    teardown = setTimeout(() => {
      if (alive().length) say(`stopping rank${alive().length > 1 ? 's' : ''} ${alive().map((r) => r.rank).join(', ')} (SIGTERM, then SIGKILL after 2 s)`);
      stopAll('SIGTERM');
      teardown = setTimeout(() => stopAll('SIGKILL'), 2000);
    }, graceMs);
  };
  const done = new Promise<void>((resolve) => {
    for (let rank = 0; rank < n; rank++) {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        PARADIT_RANK: String(rank),
        PARADIT_WORLD_SIZE: String(n),
        PARADIT_LOCAL_RANK: String(rank),
        PARADIT_LOCAL_WORLD_SIZE: String(n),
        PARADIT_MASTER_ADDR: '127.0.0.1',
        PARADIT_MASTER_PORT: String(base),
        ...(timeout !== undefined ? { PARADIT_TIMEOUT: timeout } : {}),
      };
      const proc = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...command], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const r: Rank = { rank, proc, stopped: false, partial: '' };
      ranks.push(r);
      proc.stdout!.on('data', (c: Buffer) => process.stdout.write(c));
      proc.stderr!.on('data', (c: Buffer) => {
        process.stderr.write(c);
        const text = r.partial + c.toString('utf8');
        const lines = text.split('\n');
        r.partial = lines.pop()!;
        for (const l of lines) {
          const m = /paradit: (?:error|internal error): (?:this is a bug in ParaDiT(?: \(\w+\))?: )?(.*)$/.exec(l);
          if (m) r.lastError = m[1];
        }
      });
      proc.on('exit', (code, signal) => {
        r.exit = { code, signal, at: performance.now() };
        if ((code !== 0 || signal) && !stopping) tearDown();
        if (alive().length === 0) resolve();
      });
    }
  });
  say(`${n} rank${n > 1 ? 's' : ''} (${ranks.map((r) => `rank ${r.rank} pid ${r.proc.pid}`).join(', ')}), ports ${base + 1} (NCCL) and ${base + 2} (control)`);
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = sig;
    say(`${sig}: stopping every rank`);
    stopAll(sig);
    teardown = setTimeout(() => stopAll('SIGKILL'), graceMs);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  await done;
  if (teardown) clearTimeout(teardown);
  process.removeListener('SIGINT', onSignal);
  process.removeListener('SIGTERM', onSignal);
  if (stopping) return SIGNAL_EXIT[stopping as 'SIGINT' | 'SIGTERM'] ?? 143;
  const root = rootCause(ranks);
  if (!root) return 0;
  // `run --compare` found a mismatch: rank 0's verdict, not a failure of the job.
  if (root.code === 1 && ranks.every((r) => r.rank === root.rank || (r.exit?.code === 0 && !r.exit.signal))) return 1;
  say(`rank ${root.rank} failed: ${root.why}`);
  say(ranks.map((r) => `rank ${r.rank}: ${describeExit(r)}`).join('; '));
  return root.code;
}
