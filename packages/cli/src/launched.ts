/**
 * A CLI command running as one rank of a launched job (torchrun, srun, mpirun, paradit launch):
 * `withRank` reads the launcher's environment, prefixes this process's stderr with `[rank R]`,
 * joins the control channel (world of more than one), installs the SIGINT/SIGTERM handlers, and
 * on any failure tells the peers before the error reaches reportError (exit codes: errors.ts).
 * The RankContext gives the command what it needs around the plan: the DistOptions for openPlan,
 * the check that every rank runs the same plan, the fault hooks of the tests, the outputs check
 * (rank 0 gathers a digest of every rank's outputs) and the final barrier.
 *
 * Fault hooks (tests, drills): PARADIT_FAULT_RANK=R (default 0) with PARADIT_FAULT=
 *   load  rank R fails loading the plan (a user error: exit 2)
 *   step  rank R throws in its step (an internal error: exit 3)
 *   exit  rank R exits with code 9 mid-run without a report
 *   kill  rank R sends itself SIGKILL mid-run
 *   hang  rank R blocks forever mid-run (the peers notice its silence; the launcher stops it)
 */
import crypto from 'node:crypto';
import { IrError, isIrError } from '@paradit/ir';
import type { Tensor } from '@paradit/ir';
import { ControlChannel, RankFailure, checkLaunchedWorld, loadCudaRuntime, parseLaunchEnv, rankPrefix, tcpCollectives } from '@paradit/runtime';
import type { DistOptions, LaunchEnv, Plan, RankWatch } from '@paradit/runtime';
import { planMesh } from '@paradit/runtime';

export const DEFAULT_TIMEOUT_S = 300;
const FAULTS = ['load', 'step', 'exit', 'kill', 'hang'] as const;
type Fault = (typeof FAULTS)[number];

/** --timeout S (else PARADIT_TIMEOUT, which paradit launch sets, else 300 s) in ms. */
export function timeoutMs(flag: string | undefined): number {
  const raw = flag ?? process.env['PARADIT_TIMEOUT'];
  if (raw === undefined) return DEFAULT_TIMEOUT_S * 1000;
  const s = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(s) || s <= 0) {
    throw new IrError('E_INPUT', `${flag !== undefined ? '--timeout' : 'PARADIT_TIMEOUT'} ${raw}: expected a positive number of seconds (how long a rank waits for its peers before giving up)`);
  }
  return s * 1000;
}

/** The fault this rank injects, if any. */
export function faultFor(rank: number, env: Readonly<Record<string, string | undefined>> = process.env): Fault | undefined {
  const f = env['PARADIT_FAULT'];
  if (f === undefined || f === '') return undefined;
  if (!(FAULTS as readonly string[]).includes(f)) throw new IrError('E_INPUT', `PARADIT_FAULT=${f}: expected one of ${FAULTS.join(', ')} (with PARADIT_FAULT_RANK=R)`);
  const r = env['PARADIT_FAULT_RANK'] ?? '0';
  if (!/^\d+$/.test(r)) throw new IrError('E_INPUT', `PARADIT_FAULT_RANK=${r}: expected a rank (a whole number)`);
  return Number(r) === rank ? (f as Fault) : undefined;
}

/** Prefixes every line this process writes to stderr with `prefix`. */
function prefixStderr(prefix: string): void {
  const write = process.stderr.write.bind(process.stderr);
  let atLineStart = true;
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const s = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    let out = '';
    for (const part of s.split(/(?<=\n)/)) {
      if (part === '') continue;
      out += (atLineStart ? prefix : '') + part;
      atLineStart = part.endsWith('\n');
    }
    return (write as (c: string, ...r: unknown[]) => boolean)(out, ...rest);
  }) as typeof process.stderr.write;
}

/** sha256 of what makes two plans run alike (not when or where they were compiled). */
function planFingerprint(plan: Plan): string {
  return crypto.createHash('sha256').update(JSON.stringify({ ...plan, compiledFrom: undefined })).digest('hex');
}

function outputsDigest(outs: ReadonlyMap<string, Tensor>): Uint8Array {
  const lines = [...outs].map(([name, t]) => {
    const h = crypto.createHash('sha256');
    h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    return `${name}\t${t.dtype}[${t.shape.join(',')}]\t${h.digest('hex')}`;
  });
  return Buffer.from(lines.join('\n'), 'utf8');
}

export class RankContext {
  constructor(
    readonly env: LaunchEnv,
    readonly channel: ControlChannel | undefined,
    readonly timeoutMs: number,
    readonly fault: Fault | undefined,
  ) {}

  get isRoot(): boolean {
    return this.env.rank === 0;
  }

  get watch(): RankWatch {
    return this.channel ?? { timeoutMs: this.timeoutMs, peerFailure: () => undefined, reportFailure: () => undefined };
  }

  /** What openPlan needs to run this rank of a plan for `plan`'s mesh. */
  dist(plan: Plan): DistOptions {
    return { env: this.env, watch: this.watch, ...(this.channel ? { transport: tcpCollectives(this.channel, planMesh(plan)) } : {}) };
  }

  /** Refuses (exit 2 on every rank) a plan whose mesh is not the world, or ranks whose plans differ. */
  async checkPlan(plan: Plan, where: string): Promise<void> {
    checkLaunchedWorld(plan, this.env, where);
    await this.channel?.agree('plan', planFingerprint(plan), (r) => `rank ${r} loaded another plan than rank 0 (${where}); every rank must run the same plan (compile it once and give every rank the same folder)`);
  }

  /** The hook of check/denoise (check-backend.ts): checks the compiled plan, then opens this rank of it. */
  launchedOpen(where: string, backend: 'cpu' | 'cuda'): (plan: Plan) => Promise<{ dist: DistOptions; nccl: boolean }> {
    return async (plan) => {
      this.beforeLoad();
      await this.checkPlan(plan, where);
      return { dist: this.dist(plan), nccl: backend === 'cuda' };
    };
  }

  /** A launched world of several ranks runs a compiled plan, never the interpreter. */
  requirePlan(command: string, backend: string | undefined): void {
    if (backend === undefined && this.env.world > 1) {
      throw new IrError('E_INPUT', `${command} as one rank of a launched world of ${this.env.world} (${this.env.describe}) runs a compiled plan: add --backend cpu or --backend cuda, and mesh flags whose product is ${this.env.world} (e.g. --ulysses ${this.env.world})`);
    }
  }

  /** beforeStep, once (the first step of a loop or of the first data set). */
  firstStepHook(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.beforeStep();
    };
  }

  /** PARADIT_FAULT=load on this rank: fail while loading. */
  beforeLoad(): void {
    if (this.fault === 'load') throw new IrError('E_INPUT', `PARADIT_FAULT=load: injected failure while loading the plan on rank ${this.env.rank}`);
  }

  /** PARADIT_FAULT=step|exit|kill|hang on this rank: fail at the start of the step (the peers wait at its first collective). */
  beforeStep(): void {
    const r = this.env.rank;
    switch (this.fault) {
      case undefined:
      case 'load':
        return;
      case 'step':
        throw new Error(`PARADIT_FAULT=step: injected exception in the step of rank ${r}`);
      case 'exit':
        process.stderr.write(`PARADIT_FAULT=exit: rank ${r} exits with code 9 without a report\n`);
        process.exit(9);
        return;
      case 'kill':
        process.stderr.write(`PARADIT_FAULT=kill: rank ${r} kills itself (SIGKILL)\n`);
        process.kill(process.pid, 'SIGKILL');
        return;
      case 'hang': {
        process.stderr.write(`PARADIT_FAULT=hang: rank ${r} blocks forever\n`);
        const cell = new Int32Array(new SharedArrayBuffer(4));
        for (;;) Atomics.wait(cell, 0, 0, 1000);
      }
      // eslint-disable-next-line no-fallthrough
      default: {
        const never: never = this.fault;
        throw new Error(`unknown fault ${String(never)}`);
      }
    }
  }

  /** Rank 0 gathers a digest of every rank's outputs: a plan's outputs must be the same on every rank. */
  async checkOutputs(outs: ReadonlyMap<string, Tensor>): Promise<void> {
    const all = await this.channel?.gather('outputs', outputsDigest(outs));
    if (!all) return;
    const mine = Buffer.from(all[0]!).toString('utf8');
    all.forEach((b, r) => {
      const theirs = Buffer.from(b).toString('utf8');
      if (theirs !== mine) {
        const name = mine.split('\n').find((l, i) => l !== theirs.split('\n')[i])?.split('\t')[0] ?? '?';
        throw new IrError('E_RUNTIME', `ranks 0 and ${r} computed different values for output '${name}'; the plan must gather its outputs on every rank (a compiler bug: report it)`);
      }
    });
  }

  /** Rank 0 is the hub: no rank leaves before every rank is done. */
  async finish(): Promise<void> {
    await this.channel?.barrier('end');
  }
}

/** "SIGTERM" -> 143, "SIGINT" -> 130 */
export const SIGNAL_EXIT: Readonly<Record<'SIGINT' | 'SIGTERM', number>> = { SIGINT: 130, SIGTERM: 143 };

function abortNccl(): void {
  try {
    loadCudaRuntime().abortAll();
  } catch {
    /* no CUDA runtime loaded: nothing to abort */
  }
}

/**
 * Runs `body` as one rank when a launcher's variables are set (else returns undefined and the
 * command runs as before). A failure is reported to the peers and rethrown; a peer's failure
 * arrives as RankFailure (exit 4).
 */
export async function withRank<T>(timeoutFlag: string | undefined, body: (rank: RankContext) => Promise<T>): Promise<{ value: T } | undefined> {
  const env = parseLaunchEnv(process.env);
  if (!env) {
    if (process.env['PARADIT_FAULT']) faultFor(0);
    return undefined;
  }
  const prefix = rankPrefix(env);
  if (prefix) prefixStderr(prefix);
  const ms = timeoutMs(timeoutFlag);
  const fault = faultFor(env.rank);
  let channel: ControlChannel | undefined;
  const onSignal = (sig: 'SIGINT' | 'SIGTERM') => {
    process.stderr.write(`paradit: stopped by ${sig}\n`);
    channel?.reportFailure(`stopped by ${sig}`);
    abortNccl();
    const exit = () => process.exit(SIGNAL_EXIT[sig]);
    setTimeout(exit, 2000).unref();
    void (channel?.close() ?? Promise.resolve()).then(exit, exit);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    if (env.world > 1) {
      const fingerprint = crypto.createHash('sha256').update(JSON.stringify(process.argv.slice(2))).digest('hex');
      channel = await ControlChannel.open({ env, timeoutMs: ms, fingerprint });
    }
    const ctx = new RankContext(env, channel, ms, fault);
    const value = await body(ctx);
    await ctx.finish();
    return { value };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof RankFailure && channel && !channel.failure) {
      // A rank that timed out in a synchronous wait (CUDA) may not have read the peers' news yet.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const peer = channel.peerFailure();
      const first = channel.failure as { readonly rank: number } | undefined;
      if (peer) throw new RankFailure(`${message}; ${peer}`, first?.rank);
    }
    if (channel && !channel.failure) channel.reportFailure(isIrError(e) ? message : `internal error: ${message}`);
    throw e;
  } finally {
    await channel?.close();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
