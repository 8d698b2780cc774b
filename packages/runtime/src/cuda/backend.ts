/**
 * CudaBackend: runs a compiled plan on one GPU. Load: validate plan.json, refuse a plan for another
 * backend/arch/mesh, allocate the four spaces (weights, io, state, arena), stream weights.bin in,
 * load kernels (the plan's cubin, or module.cu through NVRTC), prepare every instruction (kernel
 * parameters, cuBLASLt algorithms), then warm up and capture the whole step as one CUDA graph
 * (branches as device-side conditional nodes). A step copies inputs into io, replays the graph and
 * copies outputs back. Implements the runtime's StepExecutor.
 */
import { Tensor } from '@paradit/ir';
import type { StepExecutor } from '../denoise/step-executor';
import type { BufferDecl, Plan, Space } from '../plan/schema';
import { inputBytes, outputTensor } from './convert';
import { DeviceContext, DeviceInfo, Driver, cudaDriver } from './driver';
import { InstrContext } from './errors';
import { NativeBlock, Ptr } from './ffi';
import { CublasLt, GEMM_WORKSPACE_BYTES, PreparedGemm, cublasLt } from './cublaslt';
import { captureGraph, conditionalNodesSupported } from './graph';
import { tuneGemms } from './gemm-tune';
import { HELPER_KERNELS_SOURCE, SET_CONDITIONAL_PTX } from './helper-kernels';
import { archForDevice, nvrtc, nvrtcOptions } from './nvrtc';
import { LoadedPlanFiles, checkBuffers, readPlanFiles } from './plan-files';
import { EnqueueEnv, PreparedInstr, enqueue, prepareProgram } from './program';
import { checkPlanTarget } from './target';
import { uploadWeights } from './weights';

export interface CudaBackendOptions {
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
}

export interface CudaLoadReport {
  readonly device: DeviceInfo;
  readonly kernels: 'cubin' | 'nvrtc' | 'none';
  readonly nvrtcMs?: number;
  readonly weightsMs: number;
  readonly gemms: number;
  /** Distinct gemm problems whose algorithm was chosen by timing. */
  readonly gemmsTuned: number;
  readonly graph: 'off' | 'captured' | 'unsupported';
  readonly graphNodes?: number;
  readonly loadMs: number;
}

export interface BenchResult {
  readonly steps: number;
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly mode: 'graph' | 'eager';
}

const SPACES: readonly Space[] = ['weights', 'io', 'state', 'arena'];
const STEP_CTX: InstrContext = { index: 'step', op: 'step', origin: [] };

export class CudaBackend implements StepExecutor {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly plan: Plan;
  report!: CudaLoadReport;
  /** Eager runs record which side each branch took (instruction index -> side). */
  readonly branchTaken = new Map<string, 'then' | 'else'>();

  private readonly d: Driver;
  private readonly dev: DeviceContext;
  private readonly bases = new Map<Space, Ptr>();
  private readonly buffers = new Map<number, BufferDecl>();
  private readonly streams: Ptr[] = [];
  private readonly nativeBlocks: NativeBlock[] = [];
  private readonly gemms: PreparedGemm[] = [];
  private readonly modules: Ptr[] = [];
  private program: PreparedInstr[] = [];
  private planModule: Ptr = 0n;
  private helperModule: Ptr = 0n;
  private conditionalModule: Ptr = 0n;
  private workspace: Ptr = 0n;
  private graph: { graph: Ptr; exec: Ptr } | undefined;
  private disposed = false;

  static load(dir: string, opts: CudaBackendOptions = {}): CudaBackend {
    return new CudaBackend(readPlanFiles(dir), opts);
  }

  constructor(files: LoadedPlanFiles, private readonly opts: CudaBackendOptions = {}) {
    const t0 = performance.now();
    const log = opts.log ?? (() => {});
    this.plan = files.plan;
    checkBuffers(this.plan);
    for (const b of this.plan.buffers) this.buffers.set(b.id, b);
    this.inputNames = this.plan.inputs.map((i) => i.name);
    this.outputNames = this.plan.outputs.map((o) => o.name);
    this.d = cudaDriver();
    this.dev = new DeviceContext(this.d, opts.device ?? 0);
    const info = this.dev.info;
    const target = checkPlanTarget(this.plan.target, files.cubin !== undefined && !opts.forceNvrtc, info);
    if (!target.ok) throw new Error(`${files.dir}: ${target.reason}`);
    try {
      for (const s of SPACES) this.bases.set(s, this.d.memAlloc(this.plan.spaces[s], `the ${s} space`));
      this.d.memsetD8(this.bases.get('io')!, 0, this.plan.spaces.io);
      this.d.memsetD8(this.bases.get('arena')!, 0, this.plan.spaces.arena);
      this.resetState();
      const w = uploadWeights(this.d, files.weightsPath, this.plan.weights.bytes, this.bases.get('weights')!, opts.verifyWeights ? { verifySha256: this.plan.weights.sha256 } : {});
      log(`weights: ${(w.bytes / 2 ** 20).toFixed(1)} MiB in ${w.ms.toFixed(0)} ms`);
      let kernels: CudaLoadReport['kernels'] = 'none';
      let nvrtcMs: number | undefined;
      if (usesKernels(this.plan.program)) {
        if (target.cubinUsable && files.cubin) {
          this.planModule = this.loadModule(files.cubin, 'kernels/module.cubin');
          kernels = 'cubin';
        } else {
          const arch = archForDevice(info.major, info.minor);
          const r = nvrtc().compile(files.source, 'module.cu', nvrtcOptions(arch, this.plan.kernels.options));
          log(`nvrtc: module.cu for ${arch} in ${r.ms.toFixed(0)} ms`);
          this.planModule = this.loadModule(r.cubin, `module.cu compiled by NVRTC for ${arch}`);
          kernels = 'nvrtc';
          nvrtcMs = r.ms;
        }
      }
      this.streams.push(this.d.streamCreate());
      if (walk(this.plan.program, (op) => op === 'gemm')) this.workspace = this.d.memAlloc(GEMM_WORKSPACE_BYTES, 'the cuBLASLt workspace');
      this.program = prepareProgram(
        {
          driver: this.d,
          lt: (): CublasLt => cublasLt(),
          buffers: this.buffers,
          address: (id) => this.address(id),
          planFunction: (name, ctx) => this.d.getFunction(this.planModule, name, ctx),
          helperFunction: (name, ctx) => this.d.getFunction(this.helpers(), name, ctx),
          maxSmemOptin: info.maxSmemOptin,
          workspace: this.workspace,
          workspaceBytes: GEMM_WORKSPACE_BYTES,
          blocks: this.nativeBlocks,
          gemms: this.gemms,
          smemRaised: new Set(),
        },
        this.plan.program,
      );
      let gemmsTuned = 0;
      if (opts.tuneGemms !== false && this.gemms.length) {
        const t1 = performance.now();
        gemmsTuned = tuneGemms(this.d, this.streams[0]!, this.gemms, opts.tuneMinFlops !== undefined ? { minFlops: opts.tuneMinFlops } : {});
        log(`gemms: ${this.gemms.length}, ${gemmsTuned} distinct problem(s) tuned in ${(performance.now() - t1).toFixed(0)} ms`);
        this.clearScratch();
      }
      let graph: CudaLoadReport['graph'] = 'off';
      if (opts.graphs !== false && this.program.length > 0) {
        if (hasBranch(this.plan.program) && !conditionalNodesSupported(this.d)) {
          graph = 'unsupported';
          log('graphs: this driver has no conditional graph nodes; steps run eagerly');
        } else {
          this.captureStep();
          graph = 'captured';
        }
      }
      this.report = {
        device: info, kernels, ...(nvrtcMs !== undefined ? { nvrtcMs } : {}), weightsMs: w.ms, gemms: this.gemms.length, gemmsTuned, graph,
        ...(this.graph ? { graphNodes: this.d.graphNodeCount(this.graph.graph) } : {}), loadMs: performance.now() - t0,
      };
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

  private loadModule(image: Uint8Array, what: string): Ptr {
    const m = this.d.moduleLoad(image, what);
    this.modules.push(m);
    return m;
  }

  private helpers(): Ptr {
    if (!this.helperModule) {
      const info = this.dev.info;
      const arch = archForDevice(info.major, info.minor);
      const r = nvrtc().compile(HELPER_KERNELS_SOURCE, 'paradit_runtime_helpers.cu', nvrtcOptions(arch, []));
      this.helperModule = this.loadModule(r.cubin, 'the runtime helper kernels');
    }
    return this.helperModule;
  }

  private enqueueEnv(bothSides = false): EnqueueEnv {
    return {
      driver: this.d,
      cuCtx: this.dev.ctx,
      streamAt: (depth) => {
        while (this.streams.length <= depth) this.streams.push(this.d.streamCreate());
        return this.streams[depth]!;
      },
      branchTaken: this.branchTaken,
      setConditional: (ctx) => {
        if (!this.conditionalModule) this.conditionalModule = this.loadModule(Buffer.from(`${SET_CONDITIONAL_PTX}\0`), 'the set-conditional PTX');
        return this.d.getFunction(this.conditionalModule, 'paradit_set_conditional', ctx);
      },
      bothSides,
    };
  }

  /**
   * Runs every instruction once (both sides of each branch) so that every kernel, cuBLASLt ones
   * included, is loaded before capture; then restores zeroed io/arena/state and captures.
   */
  private captureStep(): void {
    const s = this.streams[0]!;
    enqueue(this.enqueueEnv(true), this.program, 0, false);
    this.clearScratch();
    this.graph = captureGraph(this.d, s, STEP_CTX, () => enqueue(this.enqueueEnv(), this.program, 0, true));
  }

  /** After load-time launches (tuning, warm-up): zeroes io, arena and state as a fresh load has them. */
  private clearScratch(): void {
    this.d.sync(this.streams[0]!);
    this.d.memsetD8(this.bases.get('io')!, 0, this.plan.spaces.io);
    this.d.memsetD8(this.bases.get('arena')!, 0, this.plan.spaces.arena);
    this.resetState();
  }

  /** Enqueues one step's program (graph replay or eager) on the step stream. */
  private runProgram(): void {
    const s = this.streams[0]!;
    if (this.graph) this.d.call('cuGraphLaunch', [this.graph.exec, s], STEP_CTX);
    else enqueue(this.enqueueEnv(), this.program, 0, false);
  }

  async step(inputs: ReadonlyMap<string, Tensor>): Promise<Map<string, Tensor>> {
    if (this.disposed) throw new Error('CudaBackend: step() after dispose()');
    const missing = this.inputNames.filter((n) => !inputs.has(n));
    if (missing.length) throw new Error(`the step needs inputs ${missing.map((n) => `'${n}'`).join(', ')}, which were not given`);
    for (const io of this.plan.inputs) {
      const decl = this.buffers.get(io.buf)!;
      this.d.htod(this.address(io.buf), inputBytes(inputs.get(io.name)!, decl, io.name));
    }
    this.runProgram();
    this.d.sync(this.streams[0]!);
    const out = new Map<string, Tensor>();
    for (const io of this.plan.outputs) {
      const decl = this.buffers.get(io.buf)!;
      const bytes = new Uint8Array(decl.bytes);
      this.d.dtoh(bytes, this.address(io.buf));
      out.set(io.name, outputTensor(bytes, decl));
    }
    return out;
  }

  resetState(): void {
    this.d.memsetD8(this.bases.get('state')!, 0, this.plan.spaces.state);
  }

  /** Raw device bytes of a buffer (tests and debugging). */
  readBuffer(id: number): Uint8Array {
    const decl = this.buffers.get(id)!;
    this.d.sync(this.streams[0]!);
    const bytes = new Uint8Array(decl.bytes);
    this.d.dtoh(bytes, this.address(id));
    return bytes;
  }

  /**
   * Times `steps` step replays (graph, or eager when graphs are off) with CUDA events, after
   * `warmup` untimed ones, on whatever the io buffers hold; returns the median. State evolves as
   * in real steps (call resetState first for a fresh generation).
   */
  bench(steps: number, warmup = 5): BenchResult {
    const s = this.streams[0]!;
    const e0 = this.d.eventCreate();
    const e1 = this.d.eventCreate();
    try {
      for (let i = 0; i < warmup; i++) this.runProgram();
      this.d.sync(s);
      const times: number[] = [];
      for (let i = 0; i < steps; i++) {
        this.d.call('cuEventRecord', [e0, s]);
        this.runProgram();
        this.d.call('cuEventRecord', [e1, s]);
        this.d.call('cuEventSynchronize', [e1]);
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
   * all enqueued without host syncs so the queue stays ahead of the GPU (the host enqueues an
   * instruction in a few microseconds; most run for tens to hundreds). Returns each top-level
   * instruction's median milliseconds (a gemm includes its post-op kernel, a branch its taken
   * side plus the host round trip that picks it) and the median eager step.
   */
  profileInstructions(steps: number, warmup = 2): { instrMs: number[]; stepMs: number } {
    const s = this.streams[0]!;
    const env = this.enqueueEnv();
    const n = this.program.length;
    const events = Array.from({ length: n + 1 }, () => this.d.eventCreate());
    try {
      for (let i = 0; i < warmup; i++) enqueue(env, this.program, 0, false);
      this.d.sync(s);
      const per: number[][] = Array.from({ length: n }, () => []);
      const totals: number[] = [];
      for (let k = 0; k < steps; k++) {
        this.d.call('cuEventRecord', [events[0]!, s]);
        this.program.forEach((p, i) => {
          enqueue(env, [p], 0, false);
          this.d.call('cuEventRecord', [events[i + 1]!, s]);
        });
        this.d.call('cuEventSynchronize', [events[n]!]);
        for (let i = 0; i < n; i++) per[i]!.push(this.d.elapsedMs(events[i]!, events[i + 1]!));
        totals.push(this.d.elapsedMs(events[0]!, events[n]!));
      }
      const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
      return { instrMs: per.map(median), stepMs: median(totals) };
    } finally {
      for (const e of events) this.d.call('cuEventDestroy_v2', [e]);
    }
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
    for (const s of this.streams) quiet(() => this.d.sync(s));
    if (this.graph) {
      const g = this.graph;
      quiet(() => this.d.call('cuGraphExecDestroy', [g.exec]));
      quiet(() => this.d.call('cuGraphDestroy', [g.graph]));
    }
    for (const g of this.gemms) quiet(() => g.destroy());
    for (const b of this.nativeBlocks) b.free();
    for (const m of this.modules) quiet(() => this.d.call('cuModuleUnload', [m]));
    for (const s of this.streams) quiet(() => this.d.call('cuStreamDestroy_v2', [s]));
    for (const p of this.bases.values()) quiet(() => this.d.memFree(p));
    quiet(() => this.d.memFree(this.workspace));
    quiet(() => this.dev.release());
  }
}

function walk(list: Plan['program'], f: (op: string) => boolean): boolean {
  return list.some((i) => f(i.op) || (i.op === 'branch' && (walk(i.then, f) || walk(i.else, f))));
}
function usesKernels(p: Plan['program']): boolean {
  return walk(p, (op) => op === 'kernel');
}
function hasBranch(p: Plan['program']): boolean {
  return walk(p, (op) => op === 'branch');
}
