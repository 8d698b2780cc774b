/**
 * `paradit check DIR --backend cpu|cuda [--dtype D]`: the plan path of `check`. Compiles the model
 * into a temporary plan (default dtype: f32 for fp32 models, no TF32; bf16 for bf16 models),
 * runs every test_data_set_* through the chosen plan backend (cpu: each instruction's IR `ref` on
 * the plan's own buffers; cuda: the GPU, a captured CUDA graph per step) and compares with the
 * expected outputs: relative L2 <= 1e-3 for fp32 plans against fp32 references, 5e-2 when the plan
 * or the reference is bf16/fp16 (`run --compare`'s policy). Without a GPU, `--backend cuda` exits
 * 2 with a message saying so.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IrError, Tensor, formatMesh, loadModel, worldSize } from '@paradit/ir';
import type { Mesh, Module } from '@paradit/ir';
import { parsePrecision } from '@paradit/codegen-cuda';
import { compileToPlan } from '@paradit/compiler';
import type { PlanPrecision } from '@paradit/codegen-cuda';
import type { KeepPattern } from '@paradit/passes';
import {
  FBCACHE_PREFIX,
  compareTensors,
  loadCudaRuntime,
  openPlan,
  readTestDataSet,
  validateTestData,
  withinTolerance,
} from '@paradit/runtime';
import type { OpenPlanOptions, OpenedPlan, Plan, StepExecutor } from '@paradit/runtime';
import type { CheckReport, OutputCheck } from './check';
import { checkDataSets } from './check-data';
import { planTolerance } from './run';

export type PlanBackend = 'cpu' | 'cuda';

/**
 * This process is one rank of a launched job: called with the compiled plan before it is opened
 * (checks it against the world and the other ranks, injects the load fault), returns what openPlan
 * needs to run this rank only (launched.ts).
 */
type LaunchedOpen = (plan: Plan) => Promise<Pick<OpenPlanOptions, 'dist' | 'nccl'>>;

/** `check --comm-dtype fp8`: the e4m3 transfers' bound, the fp8 plans' 0.1 (derived in docs/fp8.md). */
export const FP8_COMM_TOLERANCE = 0.1;

interface PlanCheckOptions {
  /** A launched rank: run this rank only (its outputs are the same as rank 0's). */
  readonly launched?: LaunchedOpen;
  /** Called before each step (the launched rank's step faults). */
  readonly beforeStep?: () => void;
  readonly backend: PlanBackend;
  /** Compile a sharded plan for this mesh (its ranks run in this process). */
  readonly mesh?: Mesh;
  /** The mesh (ring = W) is rows-parallel: split the image rows of a VAE decoder, not the tokens. */
  readonly rowsParallel?: boolean;
  /** Bound on one query chunk of decomposed attention's fp32 scores, in bytes (the compiler's default when absent). */
  readonly attentionScoreBudget?: number;
  /** Plan dtype; default from the model (planDtypeFor). */
  readonly dtype?: PlanPrecision;
  /** --keep-bf16 patterns of an fp8 plan. */
  readonly keepBf16?: readonly KeepPattern[];
  /** --comm-dtype fp8: the attention payloads move as e4m3 (tolerance 0.1 unless given, docs/fp8.md). */
  readonly commDtype?: 'fp8';
  readonly tolerance?: number;
  /** Keep the compiled plan here instead of a removed temporary folder. */
  readonly keepPlan?: string;
  /** After the check, compare every instruction's outputs on the backend with its CPU ref on the same inputs. */
  readonly debugInstrs?: boolean;
  readonly log?: (line: string) => void;
}

interface PlanCheckReport extends CheckReport {
  readonly backend: PlanBackend;
  readonly dtype: PlanPrecision;
  /** The plan's mesh ({1,1,1}: one rank). */
  readonly mesh: { readonly cfg: number; readonly ring: number; readonly ulysses: number };
  /** The rows-parallel degree when the mesh split the image rows (null: tokens/batch, or one rank). */
  readonly rowsParallel: number | null;
  readonly device?: string;
  readonly compileSeconds: number;
  readonly loadSeconds: number;
}

/** Parses `--backend`: cpu or cuda (undefined keeps the reference interpreter). */
export function parseCheckBackend(s: string | undefined): PlanBackend | undefined {
  if (s === undefined) return undefined;
  if (s === 'cpu' || s === 'cuda') return s;
  throw new IrError('E_INPUT', `--backend ${s}: expected cpu (a compiled plan on the CPU) or cuda (a compiled plan on the GPU); leave it out for the reference interpreter`);
}

/** f32 plans for fp32 models; bf16 (f16) plans for models whose float outputs are bf16 (f16). */
export function planDtypeFor(m: Module): PlanPrecision {
  const dtypes = new Set([...m.graph.inputs, ...m.graph.outputs].map((v) => v.dtype));
  if (dtypes.has('bf16')) return 'bf16';
  if (dtypes.has('f16')) return 'f16';
  return 'f32';
}

/** Errors that mean "no usable GPU here" (not a bug in the plan or the runtime), with a short reason. */
const NO_GPU_REASONS: readonly [RegExp, string][] = [
  [/cannot load koffi/, 'the koffi package is not installed (install it, or set NODE_PATH to a folder holding it)'],
  [/cannot load the CUDA driver/, 'the CUDA driver library libcuda.so.1 was not found'],
  [/CUDA_ERROR_NO_DEVICE|driver sees 0 device/, 'the CUDA driver sees no GPU'],
  [/CUDA_ERROR_NOT_INITIALIZED|CUDA_ERROR_INSUFFICIENT_DRIVER|CUDA_ERROR_SYSTEM_DRIVER_MISMATCH/, 'the CUDA driver could not be initialized'],
];

function noGpuReason(e: unknown): string | undefined {
  const msg = e instanceof Error ? e.message : String(e);
  return NO_GPU_REASONS.find(([p]) => p.test(msg))?.[1];
}

export function isNoGpuError(e: unknown): boolean {
  return noGpuReason(e) !== undefined;
}

function noGpu(e: unknown, what: string): IrError {
  return new IrError('E_UNSUPPORTED', `${what} --backend cuda needs an NVIDIA GPU with its driver, and here ${noGpuReason(e) ?? 'none is usable'}; run it on a GPU machine, or use --backend cpu to run the same plan on the CPU`);
}

/** Fails fast (before compiling) when there is no usable GPU: loads koffi and libcuda, calls cuInit. */
export function requireGpu(what: string): void {
  try {
    loadCudaRuntime().cudaDriver();
  } catch (e) {
    if (isNoGpuError(e)) throw noGpu(e, what);
    throw e;
  }
}

/** Opens a plan on `backend`; a missing GPU, driver or koffi becomes a one-paragraph exit-2 error. */
async function openPlanOn(planDir: string, backend: PlanBackend, what: string, launched?: Pick<OpenPlanOptions, 'dist' | 'nccl'>): Promise<OpenedPlan> {
  try {
    return await openPlan(planDir, { backend, verifyWeights: false, ...launched });
  } catch (e) {
    if (backend === 'cuda' && isNoGpuError(e)) throw noGpu(e, what);
    throw e;
  }
}

function deviceName(opened: OpenedPlan): string | undefined {
  const r = (opened.executor as { report?: { device?: { name?: string } } }).report;
  return r?.device?.name;
}

/** The plan's model inputs (fbcache controls excluded) bound to one data set's tensors, in order. */
export function bindInputs(plan: Plan, inputs: readonly Tensor[], setDir: string): Map<string, Tensor> {
  const names = plan.inputs.filter((x) => !x.name.startsWith(FBCACHE_PREFIX));
  if (names.length !== inputs.length) {
    throw new IrError('E_INPUT', `${setDir} has ${inputs.length} input_K.pb files but the plan takes ${names.length} inputs (${names.map((x) => x.name).join(', ')})`);
  }
  return new Map(names.map((x, k) => [x.name, inputs[k]!]));
}

export async function checkModelDirOnPlan(dir: string, opts: PlanCheckOptions): Promise<PlanCheckReport> {
  const t0 = performance.now();
  const sets = checkDataSets(dir);
  if (opts.backend === 'cuda') requireGpu('check');
  const m = loadModel(dir);
  const dtype = opts.dtype ?? planDtypeFor(m);
  const tmp = opts.keepPlan ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-check-'));
  const planDir = opts.keepPlan ? path.resolve(opts.keepPlan) : path.join(tmp!, 'plan');
  try {
    const c0 = performance.now();
    const compiled = await compileToPlan(dir, planDir, { dtype, ...(opts.keepBf16 ? { keepBf16: opts.keepBf16 } : {}), nvcc: opts.backend === 'cuda' ? 'auto' : false, ...(opts.mesh ? { mesh: opts.mesh } : {}), ...(opts.rowsParallel ? { rowsParallel: true } : {}), ...(opts.commDtype ? { commDtype: opts.commDtype } : {}), ...(opts.attentionScoreBudget !== undefined ? { attentionScoreBudget: opts.attentionScoreBudget } : {}) });
    const compileSeconds = (performance.now() - c0) / 1000;
    opts.log?.(`compiled ${compiled.plan.program.length} top-level instructions (${dtype}${opts.mesh && worldSize(opts.mesh) > 1 ? `, ${formatMesh(opts.mesh)}` : ''}) in ${compileSeconds.toFixed(2)} s`);
    const l0 = performance.now();
    const launched = opts.launched ? await opts.launched(compiled.plan) : undefined;
    const opened = await openPlanOn(planDir, opts.backend, 'check', launched);
    const loadSeconds = (performance.now() - l0) / 1000;
    const plan = opened.loaded.plan;
    const checks: OutputCheck[] = [];
    let device: string | undefined;
    try {
      device = deviceName(opened);
      for (const setDir of sets) {
        const set = readTestDataSet(setDir);
        validateTestData(set, m.graph.inputs, m.graph.outputs);
        if (set.outputs.length === 0) throw new IrError('E_INPUT', `${setDir} has no output_K.pb reference files to compare with`);
        opened.executor.resetState();
        opts.beforeStep?.();
        const outs = await opened.executor.step(bindInputs(plan, set.inputs, setDir));
        set.outputs.forEach((ref, k) => {
          const x = plan.outputs[k]!;
          const got = outs.get(x.name)!;
          const c = compareTensors(got, ref);
          const tolerance = opts.tolerance ?? (opts.commDtype === 'fp8' ? Math.max(FP8_COMM_TOLERANCE, planTolerance(plan, ref)) : planTolerance(plan, ref));
          checks.push({ dataSet: set.name, output: x.name, dtype: ref.dtype, shape: [...ref.shape], maxAbs: c.maxAbs, relL2: c.relL2, tolerance, ok: withinTolerance(c, tolerance) });
        });
      }
    } finally {
      opened.dispose();
    }
    if (opts.debugInstrs) {
      const { debugInstructions, formatInstrDebug } = await import('./debug-instrs');
      const set = readTestDataSet(sets[0]!);
      const d = await debugInstructions(planDir, bindInputs(plan, set.inputs, sets[0]!), { backend: opts.backend, ...(opts.log ? { log: opts.log } : {}) });
      opts.log?.(formatInstrDebug(d));
    }
    const mesh = plan.target.mesh;
    const rowsParallel = opts.rowsParallel ? mesh.ring : null;
    return { model: dir, checks, ok: checks.every((c) => c.ok), seconds: (performance.now() - t0) / 1000, backend: opts.backend, dtype, mesh, rowsParallel, ...(device ? { device } : {}), compileSeconds, loadSeconds };
  } finally {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The header line of a plan check (the per-output lines are check's formatCheck). */
export function planCheckHeader(r: PlanCheckReport): string {
  const w = r.mesh.cfg * r.mesh.ring * r.mesh.ulysses;
  const mesh = r.rowsParallel !== null ? `rows-parallel ${r.rowsParallel} (image rows split over mesh axis ring, ` : `mesh ulysses ${r.mesh.ulysses} x ring ${r.mesh.ring} x cfg ${r.mesh.cfg} (`;
  const ranks = w > 1 ? `, ${mesh}${w} ranks in this process)` : '';
  return `plan ${r.dtype} on ${r.backend}${r.device ? ` (${r.device})` : ''}${ranks}: compile ${r.compileSeconds.toFixed(2)} s, load ${r.loadSeconds.toFixed(2)} s`;
}

export { parsePrecision };

interface PlanStepOptions {
  /** A launched rank: run this rank only. */
  readonly launched?: LaunchedOpen;
  readonly backend: PlanBackend;
  readonly dtype: PlanPrecision;
  /** Compile with the First Block Cache gate, this as the plan's default threshold. */
  readonly fbcache?: number;
  readonly randomWeights?: { readonly seed: number };
  readonly keepPlan?: string;
  /** Compile a sharded plan for this mesh (its ranks run in this process). */
  readonly mesh?: Mesh;
}

interface PlanStep {
  /** The plan as a StepExecutor, with the gate's block counts (for the loop's skipped-work report). */
  readonly executor: StepExecutor;
  readonly device?: string;
  readonly plan: Plan;
  dispose(): void;
}

/**
 * Compiles a model folder's denoising step into a plan (a temporary folder unless keepPlan) and
 * opens it on a plan backend. The plan keeps First Block Cache state in its state space (the
 * program copies every `fbcache.state.X.next` into X); its inputs and outputs exclude the state,
 * so the executor's names are exactly what the denoise loop sets and reads.
 */
export async function openPlanStep(dir: string, opts: PlanStepOptions): Promise<PlanStep> {
  const tmp = opts.keepPlan ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-denoise-'));
  const planDir = opts.keepPlan ? path.resolve(opts.keepPlan) : path.join(tmp!, 'plan');
  const cleanup = (): void => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  };
  try {
    const compiled = await compileToPlan(dir, planDir, {
      dtype: opts.dtype,
      nvcc: opts.backend === 'cuda' ? 'auto' : false,
      ...(opts.fbcache !== undefined ? { fbcache: opts.fbcache } : {}),
      ...(opts.randomWeights ? { randomWeights: opts.randomWeights } : {}),
      ...(opts.mesh ? { mesh: opts.mesh } : {}),
    });
    const launched = opts.launched ? await opts.launched(compiled.plan) : undefined;
    const opened = await openPlanOn(planDir, opts.backend, 'denoise', launched);
    const plan = opened.loaded.plan;
    const inner = opened.executor;
    const total = plan.stats['fbcacheTotalBlocks'];
    const skipped = plan.stats['fbcacheSkippedBlocks'];
    const executor: StepExecutor = {
      inputNames: inner.inputNames,
      outputNames: inner.outputNames,
      ...(total !== undefined && skipped !== undefined ? { blocks: { total, skippedWhenCached: skipped } } : {}),
      step: (inputs) => inner.step(inputs),
      resetState: () => inner.resetState(),
    };
    const device = deviceName(opened);
    return {
      executor,
      plan,
      ...(device ? { device } : {}),
      dispose: () => {
        try {
          opened.dispose();
        } finally {
          cleanup();
        }
      },
    };
  } catch (e) {
    cleanup();
    throw e;
  }
}
