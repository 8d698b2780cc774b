/**
 * The NCCL communicators of one launched rank: the world communicator and one ncclCommSplit per
 * mesh axis the plan communicates over (color = the rank's group among groupsOf(mesh, axis), key
 * = its member index, so a split communicator's ranks are the axis's member indices; an axis whose
 * group is the whole world uses the world communicator). Communicators are non-blocking (every
 * call may answer ncclInProgress, then the rank polls with a bound, watchdog.ts), so a rank whose
 * peer died or never started fails with a RankFailure that says what it was doing, instead of
 * hanging.
 *
 * Bootstrap needs no store of our own: NCCL_COMM_ID=<LaunchEnv.bootstrap> (nccl-abi.ts) makes
 * every rank's ncclGetUniqueId return rank 0's address, where rank 0's init starts the root.
 * `enqueue` turns a plan collective into the calls of `ncclCallsFor` on a stream (also under CUDA
 * graph capture, inside conditional bodies too). `abortAll` aborts every live communicator of the
 * process (the CLI's SIGTERM handler).
 */
import { groupsOf, worldSize } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import type { LaunchEnv, RankWatch } from '../distributed/types';
import { RankFailure } from '../distributed/types';
import type { MeshAxisName } from '../plan/schema';
import type { InstrContext } from './errors';
import type { Ptr } from './ffi';
import { setNativeEnv } from './ffi';
import type { Launch } from './launch';
import { Nccl, ncclLibrary } from './nccl';
import { NCCL_DTYPE, NCCL_OP, NCCL_RESULT, NcclCallPlan, formatNcclVersion, ncclCallsFor, ncclConfigBytes, ncclEnvDefaults, splitColorKey } from './nccl-abi';
import type { PreparedCollective } from './prepare-comm';
import { waitBounded } from './watchdog';

/** The device work a collective may need besides NCCL (injected: tests run over a mock NCCL on host memory). */
export interface CommDevice {
  copy(dst: Ptr, src: Ptr, bytes: number, stream: Ptr, ctx: InstrContext): void;
  /** dst[0, bytes) = 0, asynchronously on stream. */
  zero(dst: Ptr, bytes: number, stream: Ptr, ctx: InstrContext): void;
  launch(l: Launch, stream: Ptr, ctx: InstrContext): void;
}

interface NcclCommunicatorOptions {
  readonly env: LaunchEnv;
  readonly watch: RankWatch;
  readonly mesh: Mesh;
  /** The mesh axes of the plan's collectives. */
  readonly axes: readonly MeshAxisName[];
  readonly device: CommDevice;
  /** World of one only: groups of one go through NCCL too (exercises the NCCL path on one GPU). */
  readonly singletonsThroughNccl?: boolean;
  /** A loaded NCCL (default: ncclLibrary() after the environment defaults are set). */
  readonly nccl?: Nccl;
  readonly log?: (line: string) => void;
}

interface AxisComm {
  readonly comm: Ptr;
  readonly size: number;
}

const live = new Set<NcclCommunicator>();

/** Aborts every live communicator of this process (NCCL kernels see the abort flag and exit). */
export function abortAll(): void {
  for (const c of [...live]) c.abort();
}

/** Values this module set (a later communicator of the process may replace them; the user's it never does). */
const ours = new Map<string, string>();

/** Sets the NCCL environment defaults (nccl-abi.ts) in this process, before NCCL reads them. */
export function applyNcclEnv(env: LaunchEnv): Record<string, string> {
  const user: Record<string, string | undefined> = {};
  for (const k of ['NCCL_COMM_ID', 'NCCL_NVLS_ENABLE', 'NCCL_GRAPH_MIXING_SUPPORT']) {
    const v = process.env[k];
    if (v !== undefined && ours.get(k) !== v) user[k] = v;
  }
  const set = ncclEnvDefaults(user, env.bootstrap, env.world);
  // An address an earlier communicator of this process set is stale for this one.
  if (!('NCCL_COMM_ID' in set) && user['NCCL_COMM_ID'] === undefined && ours.has('NCCL_COMM_ID')) {
    setNativeEnv('NCCL_COMM_ID', undefined);
    ours.delete('NCCL_COMM_ID');
  }
  for (const [k, v] of Object.entries(set)) {
    setNativeEnv(k, v);
    ours.set(k, v);
  }
  return set;
}

export class NcclCommunicator {
  readonly nccl: Nccl;
  readonly version: number;
  /** Every communicator, world first (destroyed in reverse). */
  private readonly comms: Ptr[] = [];
  private readonly axisComms = new Map<MeshAxisName, AxisComm>();
  private readonly plans = new WeakMap<PreparedCollective, NcclCallPlan>();
  private world: Ptr = 0n;
  private aborted = false;
  /** The last collective enqueued, for the watchdog's message. */
  lastCollective: string | undefined;

  constructor(private readonly opts: NcclCommunicatorOptions) {
    const { env } = opts;
    if (worldSize(opts.mesh) !== env.world) throw new Error(`NCCL set-up: the plan's mesh has ${worldSize(opts.mesh)} ranks, the launch ${env.world}`);
    if (opts.singletonsThroughNccl && env.world !== 1) throw new Error('NCCL set-up: groups of one go through NCCL only in a world of one');
    const set = applyNcclEnv(env);
    this.nccl = opts.nccl ?? ncclLibrary();
    this.version = this.nccl.version();
    const log = opts.log ?? (() => {});
    log(`nccl ${formatNcclVersion(this.version)}: rank ${env.rank} of ${env.world}${Object.keys(set).length ? ` (set ${Object.entries(set).map(([k, v]) => `${k}=${v}`).join(' ')})` : ''}`);
    live.add(this);
    const what = `in NCCL communicator set-up (world ${env.world})`;
    try {
      const nonBlocking = this.nccl.has('ncclCommInitRankConfig');
      if (!nonBlocking) log('nccl: no ncclCommInitRankConfig (NCCL < 2.14): blocking set-up, without a timeout');
      const id = this.nccl.uniqueId();
      const w = this.nccl.initRank(env.world, id, env.rank, nonBlocking ? ncclConfigBytes(false) : undefined);
      this.world = w.comm;
      this.comms.push(w.comm);
      this.waitReady(w.comm, what);
      for (const [axis, comm] of this.splits(what)) this.axisComms.set(axis, comm);
    } catch (e) {
      this.abort();
      if (e instanceof RankFailure) throw e;
      throw new RankFailure(`rank ${env.rank}: NCCL communicator set-up failed (world ${env.world}): ${(e as Error).message}`);
    }
  }

  /** One communicator per axis; axes with the same groups share one; a group of the whole world is the world. */
  private splits(what: string): Map<MeshAxisName, AxisComm> {
    const { mesh, env } = this.opts;
    const out = new Map<MeshAxisName, AxisComm>();
    const byGroups = new Map<string, AxisComm>();
    for (const axis of [...new Set(this.opts.axes)].sort()) {
      const groups = groupsOf(mesh, axis);
      const size = groups[0]!.length;
      if (size === 1 && !this.opts.singletonsThroughNccl) continue;
      const sig = JSON.stringify(groups);
      let c = byGroups.get(sig);
      if (!c) {
        if (size === env.world) c = { comm: this.world, size };
        else {
          if (!this.nccl.has('ncclCommSplit')) {
            throw new Error(`mesh ${JSON.stringify(mesh)} needs a communicator per axis (ncclCommSplit, NCCL 2.18 or newer), but this NCCL is ${formatNcclVersion(this.version)}; install a newer NCCL or set NCCL_LIBRARY`);
          }
          const { color, key } = splitColorKey(groups, env.rank);
          const s = this.nccl.split(this.world, color, key, ncclConfigBytes(false));
          this.comms.push(s.comm);
          this.waitReady(s.comm, `${what}: splitting the '${axis}' communicator`);
          c = { comm: s.comm, size };
        }
        byGroups.set(sig, c);
      }
      out.set(axis, c);
    }
    return out;
  }

  /** Polls a non-blocking communicator until its pending call (init, split, group) finished. */
  private waitReady(comm: Ptr, what: string): void {
    const { env, watch } = this.opts;
    waitBounded(
      {
        done: () => {
          const s = this.nccl.asyncError(comm);
          if (s === NCCL_RESULT.ncclInProgress) return false;
          if (s !== NCCL_RESULT.ncclSuccess) throw this.nccl.error('ncclCommGetAsyncError', s, undefined, comm);
          return true;
        },
        peerFailure: () => watch.peerFailure(),
        giveUp: () => this.abort(),
      },
      { who: `rank ${env.rank}`, what, timeoutMs: watch.timeoutMs },
    );
  }

  private commFor(p: PreparedCollective): Ptr {
    const c = this.axisComms.get(p.instr.meshAxis);
    if (!c) throw new Error(`${p.ctx.detail} at instruction ${p.where}: no communicator was set up for axis '${p.instr.meshAxis}' (the plan's axes were ${this.opts.axes.join(', ')})`);
    if (c.size !== p.instr.groupSize) throw new Error(`${p.ctx.detail} at instruction ${p.where}: the '${p.instr.meshAxis}' communicator has ${c.size} ranks, the plan says ${p.instr.groupSize}`);
    return c.comm;
  }

  /** Enqueues collective `p` on `stream` (eagerly or into the graph being captured there). */
  enqueue(p: PreparedCollective, stream: Ptr): void {
    if (this.aborted) throw new RankFailure(`rank ${this.opts.env.rank}: the NCCL communicators were aborted; this rank cannot run ${p.ctx.detail} (instruction ${p.where})`);
    let plan = this.plans.get(p);
    if (!plan) {
      plan = ncclCallsFor(p.instr, p.memberIndex, p.sendBytes, p.dtype, this.version, this.opts.singletonsThroughNccl);
      this.plans.set(p, plan);
    }
    this.lastCollective = `instruction ${p.where}: ${p.ctx.detail}${p.ctx.origin.length ? ` from ONNX node ${p.ctx.origin[0]}` : ''}`;
    if (plan.calls.length === 0) return;
    const needsComm = plan.calls.some((c) => c.call !== 'copy' && c.call !== 'scale' && c.call !== 'zero');
    const comm = needsComm ? this.commFor(p) : 0n;
    const dt = NCCL_DTYPE[p.dtype];
    const n = this.nccl;
    let pending = false;
    const note = (r: number) => {
      if (r === NCCL_RESULT.ncclInProgress) pending = true;
    };
    if (plan.grouped) n.call('ncclGroupStart', [], p.ctx);
    for (const c of plan.calls) {
      switch (c.call) {
        case 'copy':
          this.opts.device.copy(p.recv, p.send, c.bytes, stream, p.ctx);
          break;
        case 'zero':
          this.opts.device.zero(p.recv, c.bytes, stream, p.ctx);
          break;
        case 'scale':
          if (!p.scale) throw new Error(`${p.ctx.detail} at instruction ${p.where}: the mean needs a scale kernel, none was prepared`);
          this.opts.device.launch(p.scale, stream, p.ctx);
          break;
        case 'send':
          note(n.call('ncclSend', [p.send + BigInt(c.offset), c.count, dt, c.peer, comm, stream], p.ctx, comm));
          break;
        case 'recv':
          note(n.call('ncclRecv', [p.recv + BigInt(c.offset), c.count, dt, c.peer, comm, stream], p.ctx, comm));
          break;
        case 'allGather':
          note(n.call('ncclAllGather', [p.send, p.recv, c.count, dt, comm, stream], p.ctx, comm));
          break;
        case 'allReduce':
          note(n.call('ncclAllReduce', [p.send, p.recv, c.count, dt, c.op, comm, stream], p.ctx, comm));
          break;
        default: {
          const never: never = c;
          throw new Error(`unknown NCCL call ${JSON.stringify(never)}`);
        }
      }
    }
    if (plan.grouped) note(n.call('ncclGroupEnd', [], p.ctx));
    if (pending && comm) this.waitReady(comm, `enqueueing ${this.lastCollective}`);
  }

  /** Enqueues an element-wise max of `count` int32 over the world (ranks agreeing on a choice). */
  enqueueWorldMaxInt32(buf: Ptr, count: number, stream: Ptr): void {
    const r = this.nccl.call('ncclAllReduce', [buf, buf, count, NCCL_DTYPE.i32, NCCL_OP.max, this.world, stream], undefined, this.world);
    if (r === NCCL_RESULT.ncclInProgress) this.waitReady(this.world, 'agreeing on the gemm algorithms');
  }

  /** The first asynchronous error of any communicator (a peer's failure shows up here too). */
  asyncError(): string | undefined {
    if (this.aborted) return 'the communicators were aborted';
    for (const c of this.comms) {
      const s = this.nccl.asyncError(c);
      if (s !== NCCL_RESULT.ncclSuccess && s !== NCCL_RESULT.ncclInProgress) return this.nccl.error('ncclCommGetAsyncError', s, undefined, c).message;
    }
    return undefined;
  }

  get isAborted(): boolean {
    return this.aborted;
  }

  /** Aborts every communicator (idempotent, never throws). */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    live.delete(this);
    for (const c of [...this.comms].reverse()) {
      try {
        this.nccl.raw('ncclCommAbort', [c]);
      } catch {
        /* aborting is best effort */
      }
    }
  }

  /** Finalizes and destroys the communicators (aborts the rest when that fails or takes too long). */
  destroy(): void {
    if (this.aborted) return;
    try {
      // Split communicators first, the world last; a destroyed one leaves the list at once.
      while (this.comms.length) {
        const c = this.comms[this.comms.length - 1]!;
        if (this.nccl.has('ncclCommFinalize') && this.nccl.call('ncclCommFinalize', [c], undefined, c) === NCCL_RESULT.ncclInProgress) {
          this.waitReady(c, 'finalizing the NCCL communicators');
        }
        this.comms.pop();
        this.nccl.call('ncclCommDestroy', [c], undefined, c);
      }
      this.aborted = true;
      live.delete(this);
    } catch {
      this.abort();
    }
  }
}
