/**
 * Enqueues a prepared program on one rank's streams, eagerly (a branch copies its condition to the
 * host) or while capturing a CUDA graph (a branch becomes a device-side conditional node, graph.ts).
 *
 * Streams: every nesting depth has a compute stream (kind 0) and a communication stream (kind 1);
 * an instruction's `wait` becomes cuStreamWaitEvent on its stream and its `record` cuEventRecord
 * after it (one CUevent per plan event id). Eagerly that orders the streams; under capture (also
 * inside a conditional body, captured on the depth+1 streams) the same calls become the graph's
 * fork and join edges. The plan's stream rules (plan/streams.ts, checked at load) guarantee every
 * list ends with its streams joined, so each capture ends cleanly.
 *
 * One code path for every rank kind: `enqueueGen` is a generator that yields at each collective
 * when the environment has no `collective` runner (ranks sharing one GPU exchange there, in
 * lockstep), and at each eager branch decision when `lockstep` is set (so those ranks can check
 * that they agree). With NCCL it never yields, so `enqueue` (synchronous) drives it, graph
 * capture included.
 */
import type { Driver } from './driver';
import type { InstrContext } from './errors';
import { NativeBlock, Ptr } from './ffi';
import { addIfElseNode, captureInto, createConditionalHandle } from './graph';
import { launchOn } from './launch';
import type { PreparedInstr } from './program';
import type { PreparedCollective } from './prepare-comm';

export type StreamKind = 0 | 1;

/** What an enqueue stops at when it cannot go on alone. */
export type RankYield =
  | { readonly kind: 'collective'; readonly p: PreparedCollective; readonly stream: Ptr }
  | { readonly kind: 'branch'; readonly where: string; readonly side: 'then' | 'else' };

export interface EnqueueEnv {
  readonly driver: Driver;
  readonly cuCtx: Ptr;
  /** The stream of `kind` at nesting `depth` (depth 0 compute is the step's stream); created on demand. */
  readonly streamAt: (depth: number, kind: StreamKind) => Ptr;
  /** The CUevent of a plan event id. */
  readonly event: (id: number) => Ptr;
  /** Eager mode: which way each branch went (for tests and logs). */
  readonly branchTaken: Map<string, 'then' | 'else'>;
  readonly setConditional: (ctx: InstrContext) => Ptr;
  /** Eager warm-up: run both sides of every branch (loads every kernel before capture). */
  readonly bothSides?: boolean;
  /** Enqueues a collective now (NCCL). Absent: the generator yields it to the caller. */
  readonly collective?: (p: PreparedCollective, stream: Ptr) => void;
  /** Yield every eager branch decision (ranks in lockstep compare them). */
  readonly lockstep?: boolean;
  /** Blocks until `stream` is idle before the host reads a condition (default cuStreamSynchronize). */
  readonly hostWait?: (stream: Ptr, ctx: InstrContext) => void;
}

/** Enqueues `list` at `depth`, yielding where the caller must act (see the file comment). */
export function* enqueueGen(env: EnqueueEnv, list: readonly PreparedInstr[], depth: number, capture: boolean): Generator<RankYield, void, void> {
  const d = env.driver;
  for (const p of list) {
    const stream = env.streamAt(depth, p.sync.stream);
    for (const e of p.sync.wait) d.call('cuStreamWaitEvent', [stream, env.event(e), 0], p.ctx);
    switch (p.op) {
      case 'kernel':
        launchOn(d, p.launch, stream, p.ctx);
        break;
      case 'gemm':
        p.gemm.launch(stream);
        if (p.post) launchOn(d, p.post, stream, p.ctx);
        break;
      case 'copy':
        if (p.bytes) d.call('cuMemcpyDtoDAsync_v2', [p.dst, p.src, p.bytes, stream], p.ctx);
        break;
      case 'shard_slice':
        if (p.copy2d) d.call('cuMemcpy2DAsync_v2', [p.copy2d, stream], p.ctx);
        else if (p.flat) d.call('cuMemcpyDtoDAsync_v2', [p.flat.dst, p.flat.src, p.flat.bytes, stream], p.ctx);
        break;
      case 'collective':
        // A group of one (a plan compiled for mesh 1 on an axis, or run without a communicator):
        // every collective kind is recv = send, a local copy; no peer to wait for.
        if (p.instr.groupSize === 1 && !env.collective) {
          if (p.recv !== p.send && p.recvBytes) d.call('cuMemcpyDtoDAsync_v2', [p.recv, p.send, p.recvBytes, stream], p.ctx);
        } else if (env.collective) env.collective(p, stream);
        else yield { kind: 'collective', p, stream };
        break;
      case 'branch':
        if (capture) enqueueConditional(env, p, depth, stream);
        else if (env.bothSides) {
          yield* enqueueGen(env, p.then, depth, false);
          yield* enqueueGen(env, p.else, depth, false);
        } else {
          if (env.hostWait) env.hostWait(stream, p.ctx);
          else d.sync(stream);
          const b = new Uint8Array(1);
          d.dtoh(b, p.cond, p.ctx);
          const side = b[0] ? 'then' : 'else';
          env.branchTaken.set(p.ctx.index, side);
          if (env.lockstep) yield { kind: 'branch', where: p.ctx.index, side };
          yield* enqueueGen(env, side === 'then' ? p.then : p.else, depth, false);
        }
        break;
      default: {
        const never: never = p;
        throw new Error(`unknown prepared instruction ${JSON.stringify(never)}`);
      }
    }
    if (p.sync.record !== undefined) d.call('cuEventRecord', [env.event(p.sync.record), stream], p.ctx);
  }
}

/** Runs an enqueue that must not yield (NCCL ranks, single-GPU plans, graph capture). */
export function drain(gen: Generator<RankYield, void, void>): void {
  for (const y of gen) {
    const what = y.kind === 'collective' ? `${y.p.ctx.detail} at instruction ${y.p.where}` : `branch ${y.where}`;
    throw new Error(`CUDA runtime: ${what} needs ranks in lockstep, but this rank enqueues alone (no communicator); open the plan with dist (NCCL) or as in-process ranks`);
  }
}

/** Enqueues `list` on the streams of `depth`; `capture` turns branches into conditional nodes. */
export function enqueue(env: EnqueueEnv, list: readonly PreparedInstr[], depth: number, capture: boolean): void {
  drain(enqueueGen(env, list, depth, capture));
}

function enqueueConditional(env: EnqueueEnv, p: Extract<PreparedInstr, { op: 'branch' }>, depth: number, stream: Ptr): void {
  const d = env.driver;
  const handle = createConditionalHandle(d, stream, env.cuCtx, p.ctx);
  // paradit_set_conditional(handle, cond): its params live on the JS side only for this call;
  // cuLaunchKernel copies them into the graph node.
  const block = new NativeBlock(32);
  try {
    block.view.setBigUint64(0, handle, true);
    block.view.setBigUint64(8, p.cond, true);
    block.view.setBigUint64(16, block.addr, true);
    block.view.setBigUint64(24, block.addr + 8n, true);
    const fn = env.setConditional(p.ctx);
    d.call('cuLaunchKernel', [fn, 1, 1, 1, 1, 1, 1, 0, stream, block.addr + 16n, null], p.ctx);
  } finally {
    block.free();
  }
  const [thenGraph, elseGraph] = addIfElseNode(d, stream, env.cuCtx, handle, p.ctx);
  // Each body is captured on the depth+1 compute stream; its stream-1 instructions fork onto the
  // depth+1 communication stream and join back through the plan's events inside the body.
  const side = env.streamAt(depth + 1, 0);
  captureInto(d, side, thenGraph, p.ctx, () => enqueue(env, p.then, depth + 1, true));
  captureInto(d, side, elseGraph, p.ctx, () => enqueue(env, p.else, depth + 1, true));
}
