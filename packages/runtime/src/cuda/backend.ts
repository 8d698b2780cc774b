/**
 * CudaBackend: runs a compiled plan as one rank on one GPU: a plan for one GPU, or one rank of a
 * sharded plan launched as one process per GPU (`dist`: NCCL communicators, nccl-abi.ts and
 * communicator.ts). Load: the shared part (device-plan.ts: target check, weights, kernels), the
 * rank (rank.ts: spaces, streams, events, prepared program), cuBLASLt tuning (NCCL ranks then
 * agree on one algorithm per gemm, so replicated values stay identical across ranks), then a
 * warm-up and the capture of the whole step as one CUDA graph (branches as device-side
 * conditional nodes, NCCL calls captured too). A step copies inputs into io, replays the graph and
 * copies outputs back. NCCL ranks never block in cuStreamSynchronize: they poll with the RankWatch
 * timeout (watchdog.ts) and fail with a RankFailure naming what they waited for.
 */
import { Tensor } from '@paradit/ir';
import type { StepExecutor } from '../denoise/step-executor';
import type { DistOptions, LaunchEnv, RankWatch } from '../distributed/types';
import { RankFailure } from '../distributed/types';
import type { MeshAxisName, Plan } from '../plan/schema';
import { walkInstrs } from '../plan/streams';
import { DeviceInfo, Driver, cudaDriver } from './driver';
import { DevicePlan, hasBranch } from './device-plan';
import { enqueue, EnqueueEnv } from './enqueue';
import { InstrContext } from './errors';
import type { Ptr } from './ffi';
import type { LoadedPlanFiles } from './plan-files';
import { readPlanFiles } from './plan-files';
import { captureGraph, conditionalNodesSupported } from './graph';
import { tuneGemms } from './gemm-tune';
import { launchOn } from './launch';
import { formatNcclVersion, ncclDeviceFor, ncclHasAvg } from './nccl-abi';
import { NcclCommunicator } from './communicator';
import { CudaRank } from './rank';
import { waitBounded } from './watchdog';

export interface CudaBackendOptions {
  /** The GPU (default 0; an NCCL rank defaults to its LaunchEnv.localRank). */
  readonly device?: number;
  /** Capture and replay a CUDA graph per step (default true); false runs every step eagerly. */
  readonly graphs?: boolean;
  /** Ignore the plan's cubin and compile module.cu with NVRTC. */
  readonly forceNvrtc?: boolean;
  readonly verifyWeights?: boolean;
  /** Time cuBLASLt's candidate algorithms for large gemms at load and keep the fastest (default true). */
  readonly tuneGemms?: boolean;
  /** Smallest gemm (flops) worth timing (default MIN_TUNE_FLOPS; tests pass 0 to tune every gemm). */
  readonly tuneMinFlops?: number;
  readonly log?: (line: string) => void;
  /** This process is one rank of a launched job: collectives run through NCCL. */
  readonly dist?: DistOptions;
  /**
   * Run through the NCCL path in a world of one (with `dist` of world 1, or alone): a communicator,
   * the bounded step wait, and groups of one through NCCL calls instead of copies. Measures the
   * NCCL path's cost on a single-GPU plan and smoke-tests NCCL on one GPU.
   */
  readonly nccl?: boolean;
}

export interface CudaLoadReport {
  readonly device: DeviceInfo;
  readonly kernels: 'cubin' | 'nvrtc' | 'none';
  readonly nvrtcMs?: number;
  readonly weightsMs: number;
  /** Time to fill the plan's generated weights (weights.generated) on the device, when it has any. */
  readonly generatedWeightsMs?: number;
  readonly gemms: number;
  /** Distinct gemm problems whose algorithm was chosen by timing. */
  readonly gemmsTuned: number;
  readonly graph: 'off' | 'captured' | 'unsupported';
  readonly graphNodes?: number;
  /** Why the step could not be captured (it runs eagerly then). */
  readonly graphError?: string;
  /** 'nccl' for a launched rank (or forced); its NCCL version. */
  readonly collectives: 'none' | 'nccl';
  readonly ncclVersion?: string;
  readonly rank: number;
  readonly world: number;
  readonly loadMs: number;
}

export interface BenchResult {
  readonly steps: number;
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly mode: 'graph' | 'eager';
}

const STEP_CTX: InstrContext = { index: 'step', op: 'step', origin: [] };

/** A launch of one process with nobody to watch (the forced NCCL path without a launcher). */
function soloDist(): DistOptions {
  const env: LaunchEnv = { launcher: 'paradit', rank: 0, world: 1, localRank: 0, localWorld: 1, bootstrap: undefined, describe: 'one process (NCCL path forced)' };
  const watch: RankWatch = { timeoutMs: 300_000, peerFailure: () => undefined, reportFailure: () => undefined };
  return { env, watch };
}

function planAxes(plan: Plan): MeshAxisName[] {
  const axes = new Set<MeshAxisName>();
  for (const [ins] of walkInstrs(plan.program)) if (ins.op === 'collective') axes.add(ins.meshAxis);
  return [...axes];
}

export class CudaBackend implements StepExecutor {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly blocks?: { readonly total: number; readonly skippedWhenCached: number };
  readonly plan: Plan;
  report!: CudaLoadReport;
  readonly dp: DevicePlan;
  readonly rank: CudaRank;
  readonly comm: NcclCommunicator | undefined;
  private readonly d: Driver;
  private readonly dist: DistOptions | undefined;
  private graph: { graph: Ptr; exec: Ptr } | undefined;
  private doneEvent: Ptr = 0n;
  private disposed = false;

  static load(dir: string, opts: CudaBackendOptions = {}): CudaBackend {
    return new CudaBackend(readPlanFiles(dir), opts);
  }

  constructor(files: LoadedPlanFiles, private readonly opts: CudaBackendOptions = {}) {
    const t0 = performance.now();
    const log = opts.log ?? (() => {});
    this.plan = files.plan;
    this.inputNames = this.plan.inputs.map((i) => i.name);
    this.outputNames = this.plan.outputs.map((o) => o.name);
    const total = this.plan.stats['fbcacheTotalBlocks'];
    const skipped = this.plan.stats['fbcacheSkippedBlocks'];
    if (total !== undefined && skipped !== undefined) this.blocks = { total, skippedWhenCached: skipped };
    this.dist = opts.dist ?? (opts.nccl ? soloDist() : undefined);
    const env = this.dist?.env;
    const useNccl = !!env && (env.world > 1 || !!opts.nccl);
    this.d = cudaDriver();
    let device = opts.device ?? 0;
    if (env && opts.device === undefined) device = ncclDeviceFor(env.localRank, this.d.outInt('cuDeviceGetCount', (o) => [o]), process.env['CUDA_VISIBLE_DEVICES']);
    const mode = env ? `rank ${env.rank} of a launched world of ${env.world}, ${env.describe}` : undefined;
    this.dp = new DevicePlan(files, { device, forceNvrtc: opts.forceNvrtc, verifyWeights: opts.verifyWeights, world: env?.world ?? 1, mode, log });
    let rank: CudaRank | undefined;
    try {
      this.comm = useNccl
        ? new NcclCommunicator({
            env: env!, watch: this.dist!.watch, mesh: { ...this.plan.target.mesh }, axes: planAxes(this.plan), singletonsThroughNccl: env!.world === 1, log,
            device: {
              copy: (dst, src, bytes, stream, ctx) => this.d.call('cuMemcpyDtoDAsync_v2', [dst, src, bytes, stream], ctx),
              zero: (dst, bytes, stream, ctx) => this.d.call('cuMemsetD8Async', [dst, 0, bytes, stream], ctx),
              launch: (l, stream, ctx) => launchOn(this.d, l, stream, ctx),
            },
          })
        : undefined;
      rank = new CudaRank(this.dp, { rank: env?.rank ?? 0, collectives: 'nccl', meanNeedsScale: this.comm ? !ncclHasAvg(this.comm.version) : false });
      this.rank = rank;
      this.doneEvent = this.d.eventCreate(false);
      let gemmsTuned = 0;
      if (opts.tuneGemms !== false && rank.gemms.length) {
        const t1 = performance.now();
        gemmsTuned = tuneGemms(this.d, rank.stepStream, rank.gemms, opts.tuneMinFlops !== undefined ? { minFlops: opts.tuneMinFlops } : {});
        log(`gemms: ${rank.gemms.length}, ${gemmsTuned} distinct problem(s) tuned in ${(performance.now() - t1).toFixed(0)} ms`);
      }
      if (this.comm && env!.world > 1 && rank.gemms.length) this.agreeOnGemms(log);
      rank.clearScratch();
      let graph: CudaLoadReport['graph'] = 'off';
      let graphError: string | undefined;
      if (opts.graphs !== false && rank.program.length > 0) {
        if (hasBranch(this.plan.program) && !conditionalNodesSupported(this.d)) {
          graph = 'unsupported';
          log('graphs: this driver has no conditional graph nodes; steps run eagerly');
        } else {
          try {
            this.captureStep();
            graph = 'captured';
          } catch (e) {
            // Every rank runs the same plan on the same software, so every rank lands here alike.
            if (!this.comm || this.comm.asyncError()) throw e;
            graph = 'unsupported';
            graphError = (e as Error).message;
            log(`graphs: the step with NCCL calls could not be captured (${graphError}); steps run eagerly`);
            rank.clearScratch();
          }
        }
      }
      this.report = {
        device: this.dp.info, kernels: this.dp.kernels, ...(this.dp.nvrtcMs !== undefined ? { nvrtcMs: this.dp.nvrtcMs } : {}), weightsMs: this.dp.weightsMs,
        ...(this.plan.weights.generated.length > 0 ? { generatedWeightsMs: this.dp.generatedMs } : {}),
        gemms: rank.gemms.length, gemmsTuned, graph, ...(this.graph ? { graphNodes: this.d.graphNodeCount(this.graph.graph) } : {}), ...(graphError ? { graphError } : {}),
        collectives: this.comm ? 'nccl' : 'none', ...(this.comm ? { ncclVersion: formatNcclVersion(this.comm.version) } : {}),
        rank: env?.rank ?? 0, world: env?.world ?? 1, loadMs: performance.now() - t0,
      };
    } catch (e) {
      this.comm?.abort();
      rank?.dispose();
      this.dp.dispose();
      if (e instanceof RankFailure) this.dist?.watch.reportFailure(e.message);
      throw e;
    }
  }

  get branchTaken(): Map<string, 'then' | 'else'> {
    return this.rank.branchTaken;
  }

  /** Device address of a plan buffer. */
  address(id: number): Ptr {
    return this.rank.address(id);
  }

  private enqueueEnv(bothSides = false): EnqueueEnv {
    const comm = this.comm;
    return this.rank.enqueueEnv({
      bothSides,
      ...(comm ? { collective: (p, s) => comm.enqueue(p, s), hostWait: (s) => this.waitStream(s, 'waiting for a branch condition') } : {}),
    });
  }

  /**
   * Waits until `stream` is idle: cuStreamSynchronize for a rank alone; NCCL ranks poll an event
   * with the watch's timeout, checking NCCL's errors and the peers, and abort on giving up.
   */
  private waitStream(stream: Ptr, what: string): void {
    const comm = this.comm;
    if (!comm) return this.d.sync(stream);
    const { env, watch } = this.dist!;
    this.d.call('cuEventRecord', [this.doneEvent, stream]);
    const last = comm.lastCollective ? ` (its last collective: ${comm.lastCollective})` : '';
    try {
      waitBounded(
        { done: () => this.d.eventDone(this.doneEvent, STEP_CTX), asyncError: () => comm.asyncError(), peerFailure: () => watch.peerFailure(), giveUp: () => comm.abort() },
        { who: `rank ${env.rank}`, what: `${what}${last}`, timeoutMs: watch.timeoutMs },
      );
    } catch (e) {
      if (e instanceof RankFailure) watch.reportFailure(e.message);
      throw e;
    }
  }

  /** NCCL ranks keep, for each gemm, the largest algorithm index any rank chose: every rank then runs the same one. */
  private agreeOnGemms(log: (line: string) => void): void {
    const gemms = this.rank.gemms;
    const mine = Int32Array.from(gemms.map((g) => g.selected));
    const buf = this.d.memAlloc(mine.byteLength, 'the gemm-choice exchange');
    try {
      this.d.htod(buf, new Uint8Array(mine.buffer));
      this.comm!.enqueueWorldMaxInt32(buf, mine.length, this.rank.stepStream);
      this.waitStream(this.rank.stepStream, 'agreeing on the gemm algorithms with the other ranks');
      const agreed = new Int32Array(mine.length);
      this.d.dtoh(new Uint8Array(agreed.buffer), buf);
      let changed = 0;
      gemms.forEach((g, i) => {
        const a = agreed[i]!;
        if (a !== g.selected && a < g.candidates) {
          g.select(a);
          changed++;
        }
      });
      if (changed) log(`gemms: ${changed} algorithm choice(s) taken from other ranks`);
    } finally {
      this.d.memFree(buf);
    }
  }

  /**
   * Runs every instruction once (both sides of each branch) so that every kernel, cuBLASLt ones
   * included, is loaded (and NCCL's connections are set up) before capture; then restores zeroed
   * io/arena/state and captures.
   */
  private captureStep(): void {
    const s = this.rank.stepStream;
    enqueue(this.enqueueEnv(true), this.rank.program, 0, false);
    this.waitStream(s, 'in the warm-up step before graph capture');
    this.rank.clearScratch();
    this.graph = captureGraph(this.d, s, STEP_CTX, () => enqueue(this.enqueueEnv(), this.rank.program, 0, true));
  }

  /** Enqueues one step's program (graph replay or eager) on the step stream. */
  private runProgram(): void {
    const s = this.rank.stepStream;
    if (this.graph) this.d.call('cuGraphLaunch', [this.graph.exec, s], STEP_CTX);
    else enqueue(this.enqueueEnv(), this.rank.program, 0, false);
  }

  async step(inputs: ReadonlyMap<string, Tensor>): Promise<Map<string, Tensor>> {
    if (this.disposed) throw new Error('CudaBackend: step() after dispose()');
    this.rank.upload(inputs);
    this.runProgram();
    this.waitStream(this.rank.stepStream, 'waiting for the step');
    return this.rank.download();
  }

  resetState(): void {
    this.rank.resetState();
  }

  /** Raw device bytes of a buffer (tests and debugging). */
  readBuffer(id: number): Uint8Array {
    this.waitStream(this.rank.stepStream, 'reading a buffer');
    return this.rank.readBytes(id);
  }

  /**
   * Times `steps` step replays (graph, or eager when graphs are off) with CUDA events, after
   * `warmup` untimed ones, on whatever the io buffers hold; returns the median. State evolves as
   * in real steps (call resetState first for a fresh generation).
   */
  bench(steps: number, warmup = 5): BenchResult {
    const s = this.rank.stepStream;
    const e0 = this.d.eventCreate();
    const e1 = this.d.eventCreate();
    try {
      for (let i = 0; i < warmup; i++) this.runProgram();
      this.waitStream(s, 'in bench warm-up steps');
      const times: number[] = [];
      for (let i = 0; i < steps; i++) {
        this.d.call('cuEventRecord', [e0, s]);
        this.runProgram();
        this.d.call('cuEventRecord', [e1, s]);
        this.waitStream(s, 'waiting for a bench step');
        times.push(this.d.elapsedMs(e0, e1));
      }
      times.sort((a, b) => a - b);
      return { steps, medianMs: times[Math.floor(times.length / 2)] ?? NaN, minMs: times[0] ?? NaN, maxMs: times[times.length - 1] ?? NaN, mode: this.graph ? 'graph' : 'eager' };
    } finally {
      this.d.call('cuEventDestroy_v2', [e0]);
      this.d.call('cuEventDestroy_v2', [e1]);
    }
  }

  /**
   * Per-instruction device times: runs the step eagerly `steps` times (after `warmup` untimed
   * eager steps), recording an event before the first top-level instruction and after each one,
   * all enqueued without host syncs so the queue stays ahead of the GPU. Returns each top-level
   * instruction's median milliseconds (a gemm includes its post-op kernel, a branch its taken
   * side plus the host round trip that picks it) and the median eager step.
   */
  profileInstructions(steps: number, warmup = 2): { instrMs: number[]; stepMs: number } {
    const s = this.rank.stepStream;
    const env = this.enqueueEnv();
    const program = this.rank.program;
    const n = program.length;
    const events = Array.from({ length: n + 1 }, () => this.d.eventCreate());
    try {
      for (let i = 0; i < warmup; i++) enqueue(env, program, 0, false);
      this.waitStream(s, 'in profile warm-up steps');
      const per: number[][] = Array.from({ length: n }, () => []);
      const totals: number[] = [];
      for (let k = 0; k < steps; k++) {
        this.d.call('cuEventRecord', [events[0]!, s]);
        program.forEach((p, i) => {
          enqueue(env, [p], 0, false);
          this.d.call('cuEventRecord', [events[i + 1]!, s]);
        });
        this.waitStream(s, 'in a profiled step');
        for (let i = 0; i < n; i++) per[i]!.push(this.d.elapsedMs(events[i]!, events[i + 1]!));
        totals.push(this.d.elapsedMs(events[0]!, events[n]!));
      }
      const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
      return { instrMs: per.map(median), stepMs: median(totals) };
    } finally {
      for (const e of events) this.d.call('cuEventDestroy_v2', [e]);
    }
  }

  /** Aborts the NCCL communicators (a stop signal): in-flight NCCL kernels exit, later steps fail. */
  abort(): void {
    this.comm?.abort();
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
    const aborted = this.comm?.isAborted ?? false;
    quiet(() => (aborted ? this.rank.syncAll() : this.waitStream(this.rank.stepStream, 'finishing before shutdown')));
    // A graph holding NCCL work is destroyed before its communicator (NCCL frees its persistent
    // plans through the graph); after an abort the communicator is gone, so the graph is left.
    if (this.graph && !aborted) {
      const g = this.graph;
      quiet(() => this.d.call('cuGraphExecDestroy', [g.exec]));
      quiet(() => this.d.call('cuGraphDestroy', [g.graph]));
    }
    quiet(() => this.comm?.destroy());
    quiet(() => this.d.call('cuEventDestroy_v2', [this.doneEvent]));
    this.rank.dispose();
    this.dp.dispose();
  }
}
