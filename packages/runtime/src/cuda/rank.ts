/**
 * One rank of a plan on a GPU: its own io, arena and state spaces (the weights space and kernels
 * come shared from a DevicePlan), a compute and a communication stream per nesting depth, one
 * CUevent per plan event, a cuBLASLt workspace and the program prepared for this rank (its
 * shard_slice parts and collective member indices). CudaBackend drives one rank (alone or as an
 * NCCL rank); InProcessCudaRanks drives W of them on one GPU.
 */
import { Tensor, worldSize } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import type { BufferDecl, Plan, Space } from '../plan/schema';
import { planMesh } from '../plan/cpu-backend';
import { inputBytes, outputTensor } from './convert';
import type { Driver } from './driver';
import type { DevicePlan } from './device-plan';
import { walkOps } from './device-plan';
import type { EnqueueEnv, StreamKind } from './enqueue';
import type { NativeBlock, Ptr } from './ffi';
import { CublasLt, GEMM_WORKSPACE_BYTES, PreparedGemm, cublasLt } from './cublaslt';
import { PreparedInstr, prepareProgram } from './program';
import { CollectiveMode, allReduceScratchBytes } from './prepare-comm';
import { fp8ScratchBytes } from './fp8-fallback';

interface CudaRankOptions {
  /** This rank's index in the plan's mesh (default 0). */
  readonly rank?: number;
  /** How its collectives run (default 'nccl'; a world of one never reaches one). */
  readonly collectives?: CollectiveMode;
  /** NCCL without ncclAvg: prepare a scale kernel for mean all_reduces. */
  readonly meanNeedsScale?: boolean;
  /** Load-time notes (the FP8 gemm fallback); default: stderr. */
  readonly log?: (line: string) => void;
}

const OWN_SPACES: readonly Exclude<Space, 'weights'>[] = ['io', 'state', 'arena'];

export class CudaRank {
  readonly rank: number;
  readonly mesh: Mesh;
  readonly plan: Plan;
  readonly program: PreparedInstr[];
  readonly gemms: PreparedGemm[] = [];
  /** Eager runs record which side each branch took (instruction index -> side). */
  readonly branchTaken = new Map<string, 'then' | 'else'>();
  readonly d: Driver;
  private readonly bases = new Map<Space, Ptr>();
  private readonly buffers = new Map<number, BufferDecl>();
  private readonly streams = new Map<string, Ptr>();
  private readonly events: Ptr[] = [];
  private readonly nativeBlocks: NativeBlock[] = [];
  private workspace: Ptr = 0n;
  private scratch: Ptr = 0n;
  private fp8Scratch: Ptr | undefined;
  private disposed = false;

  constructor(readonly dp: DevicePlan, opts: CudaRankOptions = {}) {
    this.plan = dp.plan;
    this.d = dp.d;
    this.mesh = planMesh(this.plan);
    this.rank = opts.rank ?? 0;
    if (this.rank < 0 || this.rank >= worldSize(this.mesh)) throw new Error(`rank ${this.rank} is outside the plan's world of ${worldSize(this.mesh)}`);
    for (const b of this.plan.buffers) this.buffers.set(b.id, b);
    try {
      this.bases.set('weights', dp.weights);
      for (const s of OWN_SPACES) this.bases.set(s, this.d.memAlloc(this.plan.spaces[s], `rank ${this.rank}'s ${s} space`));
      this.d.memsetD8(this.bases.get('io')!, 0, this.plan.spaces.io);
      this.d.memsetD8(this.bases.get('arena')!, 0, this.plan.spaces.arena);
      this.resetState();
      this.streamAt(0, 0);
      for (let e = 0; e < this.plan.events; e++) this.events.push(this.d.eventCreate(false));
      if (walkOps(this.plan.program, (op) => op === 'gemm')) this.workspace = this.d.memAlloc(GEMM_WORKSPACE_BYTES, 'the cuBLASLt workspace');
      const mode = opts.collectives ?? 'nccl';
      const scratchBytes = mode === 'in-process' ? allReduceScratchBytes(this.plan.program, (id) => this.buffers.get(id)!.bytes) : 0;
      if (scratchBytes) this.scratch = this.d.memAlloc(scratchBytes, `rank ${this.rank}'s all_reduce scratch`);
      this.program = prepareProgram(
        {
          driver: this.d,
          lt: (): CublasLt => cublasLt(),
          buffers: this.buffers,
          address: (id) => this.address(id),
          planFunction: (name, ctx) => dp.planFunction(name, ctx),
          helperFunction: (name, ctx) => dp.helperFunction(name, ctx),
          maxSmemOptin: dp.info.maxSmemOptin,
          workspace: this.workspace,
          workspaceBytes: GEMM_WORKSPACE_BYTES,
          blocks: this.nativeBlocks,
          gemms: this.gemms,
          smemRaised: new Set(),
          events: this.plan.events,
          rank: this.rank,
          mesh: this.mesh,
          collectives: mode,
          scratch: this.scratch,
          meanNeedsScale: opts.meanNeedsScale ?? false,
          fp8Scratch: (bytes) => {
            // One buffer for every fallback gemm (they run one after another on stream 0).
            const need = Math.max(bytes, fp8FallbackScratchBytes(this.plan.program));
            this.fp8Scratch ??= this.d.memAlloc(need, `rank ${this.rank}'s FP8 gemm fallback scratch`);
            return this.fp8Scratch;
          },
          forceFp8Fallback: process.env['PARADIT_FP8_FALLBACK'] === '1',
          log: opts.log ?? ((l) => void process.stderr.write(`paradit: ${l}\n`)),
        },
        this.plan.program,
      );
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** Device address of a plan buffer. */
  address(id: number): Ptr {
    const b = this.buffers.get(id);
    if (!b) throw new Error(`plan refers to buffer ${id}, which it does not declare`);
    return this.bases.get(b.space)! + BigInt(b.offset);
  }

  decl(id: number): BufferDecl {
    return this.buffers.get(id)!;
  }

  /** The stream of `kind` at nesting `depth`, created on first use. */
  streamAt(depth: number, kind: StreamKind): Ptr {
    const key = `${depth}:${kind}`;
    let s = this.streams.get(key);
    if (s === undefined) {
      s = this.d.streamCreate();
      this.streams.set(key, s);
    }
    return s;
  }

  /** The step's stream (depth 0, compute): a step starts and ends on it. */
  get stepStream(): Ptr {
    return this.streamAt(0, 0);
  }

  event(id: number): Ptr {
    const e = this.events[id];
    if (e === undefined) throw new Error(`plan event ${id} is outside its ${this.events.length} events`);
    return e;
  }

  /** The enqueue environment of this rank; `extra` adds the collective runner, lockstep, host waits. */
  enqueueEnv(extra: Partial<Pick<EnqueueEnv, 'bothSides' | 'collective' | 'lockstep' | 'hostWait'>> = {}): EnqueueEnv {
    return {
      driver: this.d,
      cuCtx: this.dp.dev.ctx,
      streamAt: (depth, kind) => this.streamAt(depth, kind),
      event: (id) => this.event(id),
      branchTaken: this.branchTaken,
      setConditional: (ctx) => this.dp.setConditional(ctx),
      ...extra,
    };
  }

  /** Copies the step's inputs into io (synchronous: ordered before any later stream work). */
  upload(inputs: ReadonlyMap<string, Tensor>): void {
    const missing = this.plan.inputs.map((i) => i.name).filter((n) => !inputs.has(n));
    if (missing.length) throw new Error(`the step needs inputs ${missing.map((n) => `'${n}'`).join(', ')}, which were not given`);
    for (const io of this.plan.inputs) this.d.htod(this.address(io.buf), inputBytes(inputs.get(io.name)!, this.decl(io.buf), io.name));
  }

  /** The step's outputs (call after the step's work finished). */
  download(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const io of this.plan.outputs) out.set(io.name, outputTensor(this.readBytes(io.buf), this.decl(io.buf)));
    return out;
  }

  readBytes(id: number): Uint8Array {
    const bytes = new Uint8Array(this.decl(id).bytes);
    this.d.dtoh(bytes, this.address(id));
    return bytes;
  }

  resetState(): void {
    this.d.memsetD8(this.bases.get('state')!, 0, this.plan.spaces.state);
  }

  /** After load-time launches (tuning, warm-up): zeroes io, arena and state as a fresh load has them. */
  clearScratch(): void {
    this.syncAll();
    this.d.memsetD8(this.bases.get('io')!, 0, this.plan.spaces.io);
    this.d.memsetD8(this.bases.get('arena')!, 0, this.plan.spaces.arena);
    this.resetState();
  }

  syncAll(): void {
    for (const s of this.streams.values()) this.d.sync(s);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const quiet = (f: () => void) => {
      try {
        f();
      } catch {
        /* best effort during teardown */
      }
    };
    for (const s of this.streams.values()) quiet(() => this.d.sync(s));
    for (const g of this.gemms) quiet(() => g.destroy());
    for (const b of this.nativeBlocks) b.free();
    for (const e of this.events) quiet(() => this.d.call('cuEventDestroy_v2', [e]));
    for (const s of this.streams.values()) quiet(() => this.d.call('cuStreamDestroy_v2', [s]));
    for (const s of OWN_SPACES) quiet(() => this.d.memFree(this.bases.get(s) ?? 0n));
    quiet(() => this.d.memFree(this.workspace));
    quiet(() => this.d.memFree(this.scratch));
    if (this.fp8Scratch !== undefined) quiet(() => this.d.memFree(this.fp8Scratch!));
  }
}

/** fp32 bytes of the largest FP8 gemm (one with scales) of a program, branches included. */
export function fp8FallbackScratchBytes(program: Plan['program']): number {
  let most = 0;
  for (const i of program) {
    if (i.op === 'gemm' && i.scaleA !== undefined) most = Math.max(most, fp8ScratchBytes(i.m, i.n));
    if (i.op === 'branch') most = Math.max(most, fp8FallbackScratchBytes(i.then), fp8FallbackScratchBytes(i.else));
  }
  return most;
}
