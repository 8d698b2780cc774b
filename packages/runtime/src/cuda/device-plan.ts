/**
 * What every rank of a plan on one GPU shares, loaded once: the device context, the target check,
 * the weights space (read-only and identical on every rank, so ranks sharing a GPU upload it
 * once), the plan's kernel module (cubin or NVRTC), the runtime's helper kernels and the
 * set-conditional PTX. A rank (rank.ts) adds its own io/arena/state spaces, streams and prepared
 * program on top.
 */
import { IrError } from '@paradit/ir';
import type { Plan } from '../plan/schema';
import { DeviceContext, DeviceInfo, Driver, cudaDriver } from './driver';
import type { InstrContext } from './errors';
import type { NativeBlock, Ptr } from './ffi';
import { FILL_KERNEL_NAME, FILL_KERNEL_SOURCE, fillGeneratedWeightsOnDevice } from './fill-weights';
import { HELPER_KERNELS_SOURCE, SET_CONDITIONAL_PTX } from './helper-kernels';
import { archForDevice, nvrtc, nvrtcOptions } from './nvrtc';
import { LoadedPlanFiles, checkBuffers } from './plan-files';
import { generatedWeightsViolation } from '../plan/generated-weights';
import { checkPlanTarget } from './target';
import { uploadWeights } from './weights';

interface DevicePlanOptions {
  readonly device?: number;
  /** Ignore the plan's cubin and compile module.cu with NVRTC. */
  readonly forceNvrtc?: boolean;
  readonly verifyWeights?: boolean;
  /** Ranks that will run the plan (checked against the plan's mesh; default 1). */
  readonly world?: number;
  /** How the ranks run, for the mesh-mismatch message ("NCCL", "in-process"). */
  readonly mode?: string;
  readonly log?: (line: string) => void;
}

export class DevicePlan {
  readonly d: Driver;
  readonly dev: DeviceContext;
  readonly plan: Plan;
  readonly files: LoadedPlanFiles;
  readonly weights: Ptr;
  readonly weightsMs: number;
  readonly kernels: 'cubin' | 'nvrtc' | 'none' = 'none';
  readonly nvrtcMs?: number;
  /** Time to fill `weights.generated` on the device (0 when the plan has none). */
  readonly generatedMs: number = 0;
  private readonly modules: Ptr[] = [];
  private planModule: Ptr = 0n;
  private helperModule: Ptr = 0n;
  private conditionalModule: Ptr = 0n;
  private disposed = false;

  constructor(files: LoadedPlanFiles, opts: DevicePlanOptions = {}) {
    const log = opts.log ?? (() => {});
    this.files = files;
    this.plan = files.plan;
    checkBuffers(this.plan);
    const gen = generatedWeightsViolation(this.plan);
    if (gen) throw new IrError('E_INPUT', `${files.dir}: ${gen}; recompile the plan`);
    this.d = cudaDriver();
    this.dev = new DeviceContext(this.d, opts.device ?? 0);
    const info = this.dev.info;
    const target = checkPlanTarget(this.plan.target, files.cubin !== undefined && !opts.forceNvrtc, info, opts.world ?? 1, opts.mode);
    if (!target.ok) {
      this.dev.release();
      throw new IrError('E_INPUT', `${files.dir}: ${target.reason}`);
    }
    let weights: Ptr = 0n;
    try {
      weights = this.d.memAlloc(this.plan.spaces.weights, 'the weights space');
      this.weights = weights;
      const w = uploadWeights(this.d, files.weightsPath, this.plan.weights.bytes, weights, opts.verifyWeights ? { verifySha256: this.plan.weights.sha256 } : {});
      this.weightsMs = w.ms;
      log(`weights: ${(w.bytes / 2 ** 20).toFixed(1)} MiB in ${w.ms.toFixed(0)} ms`);
      if (this.plan.weights.generated.length > 0) {
        const t1 = performance.now();
        const blocks: NativeBlock[] = [];
        try {
          fillGeneratedWeightsOnDevice(this.plan, { d: this.d, fn: () => this.fillFunction(), weights, stream: 0n, blocks });
          this.d.call('cuCtxSynchronize', []);
        } finally {
          for (const b of blocks) b.free();
        }
        this.generatedMs = performance.now() - t1;
        log(`weights: ${((this.plan.spaces.weights - this.plan.weights.bytes) / 2 ** 20).toFixed(1)} MiB generated on the GPU (${this.plan.weights.generated.length} tensors) in ${this.generatedMs.toFixed(0)} ms`);
      }
      if (usesKernels(this.plan.program)) {
        if (target.cubinUsable && files.cubin) {
          this.planModule = this.loadModule(files.cubin, 'kernels/module.cubin');
          this.kernels = 'cubin';
        } else {
          const arch = archForDevice(info.major, info.minor);
          const r = nvrtc().compile(files.source, 'module.cu', nvrtcOptions(arch, this.plan.kernels.options));
          log(`nvrtc: module.cu for ${arch} in ${r.ms.toFixed(0)} ms`);
          this.planModule = this.loadModule(r.cubin, `module.cu compiled by NVRTC for ${arch}`);
          this.kernels = 'nvrtc';
          this.nvrtcMs = r.ms;
        }
      }
    } catch (e) {
      this.weights = weights;
      this.dispose();
      throw e;
    }
  }

  get info(): DeviceInfo {
    return this.dev.info;
  }

  private loadModule(image: Uint8Array, what: string): Ptr {
    const m = this.d.moduleLoad(image, what);
    this.modules.push(m);
    return m;
  }

  planFunction(name: string, ctx: InstrContext): Ptr {
    return this.d.getFunction(this.planModule, name, ctx);
  }

  /** The runtime's helper kernels, compiled with NVRTC on first use. */
  helperFunction(name: string, ctx: InstrContext): Ptr {
    if (!this.helperModule) {
      const arch = archForDevice(this.info.major, this.info.minor);
      const r = nvrtc().compile(HELPER_KERNELS_SOURCE, 'paradit_runtime_helpers.cu', nvrtcOptions(arch, []));
      this.helperModule = this.loadModule(r.cubin, 'the runtime helper kernels');
    }
    return this.d.getFunction(this.helperModule, name, ctx);
  }

  /** The generated-weights fill kernel (fill-weights.ts), compiled with NVRTC. */
  private fillFunction(): Ptr {
    const arch = archForDevice(this.info.major, this.info.minor);
    const r = nvrtc().compile(FILL_KERNEL_SOURCE, 'paradit_fill_weights.cu', nvrtcOptions(arch, []));
    const m = this.loadModule(r.cubin, 'the weight fill kernel');
    return this.d.getFunction(m, FILL_KERNEL_NAME);
  }

  setConditional(ctx: InstrContext): Ptr {
    if (!this.conditionalModule) this.conditionalModule = this.loadModule(Buffer.from(`${SET_CONDITIONAL_PTX}\0`), 'the set-conditional PTX');
    return this.d.getFunction(this.conditionalModule, 'paradit_set_conditional', ctx);
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
    for (const m of this.modules) quiet(() => this.d.call('cuModuleUnload', [m]));
    quiet(() => this.d.memFree(this.weights));
    quiet(() => this.dev.release());
  }
}

export function walkOps(list: Plan['program'], f: (op: string) => boolean): boolean {
  return list.some((i) => f(i.op) || (i.op === 'branch' && (walkOps(i.then, f) || walkOps(i.else, f))));
}
function usesKernels(p: Plan['program']): boolean {
  return walkOps(p, (op) => op === 'kernel');
}
export function hasBranch(p: Plan['program']): boolean {
  return walkOps(p, (op) => op === 'branch');
}
