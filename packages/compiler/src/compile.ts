/**
 * The compile driver: ONNX model (or an in-memory Module) -> plan directory. It decides nothing
 * itself: it loads, runs the pipelines of lowering-pipeline.ts (every IR-to-IR step a named pass,
 * so `--after`, verification and timing see each), hands the decided IR to codegen-cuda to render
 * (kernels, streams, memory plan) and writes the plan atomically.
 *
 *   load               ONNX (+ external data, or seeded random weights)
 *   step pipeline      mask-token-selection, specialize-shapes, default pipeline, context parallelism, cache gate
 *   reference pipeline dtype-policy, patchify-conv, einsum-to-matmul, canonicalize: the plan's interpreter reference
 *   render pipeline    decompose-attention, lower-collectives, canonicalize
 *   render (codegen)   gemm / attention / fused fragments / branches; streams; memory plan
 *   write              plan.json, weights.bin, kernels/module.cu (+ .fatbin), atomically
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IrError, Module, loadModel, makeMesh, resolveModelPath, worldSize } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import type { KeepPattern } from '@paradit/passes';
import { createPassContext, maskTokenSelection, runPipeline } from '@paradit/passes';
import type { PassReport } from '@paradit/passes';
import { listTestDataSets, openPlan, readTestDataSet, sha256OfFile } from '@paradit/runtime';
import type { OpenedPlan, Plan } from '@paradit/runtime';
import {
  buildPlan,
  checkProgram,
  coverageError,
  defaultEmitters,
  lowerModule,
  onAbort,
  parsePrecision,
  planMemory,
  refusedNodes,
  scheduleStreams,
  linkBytes,
  valueRecipe,
  writePlan,
} from '@paradit/codegen-cuda';
import type { BuiltPlan, EmitFragment, LowerOptions, LoweredProgram, MemoryPlan, PlanPrecision, ScheduleReport, ShapeBindings, WriteOptions } from '@paradit/codegen-cuda';
import { fusionPipeline, referencePipeline, renderPipeline, specializePipeline, stepPipeline } from './lowering-pipeline';

const PARADIT_VERSION = '0.1.0';
const TARGET_ARCH = 'sm_90a';

interface MeshDegrees {
  readonly ulysses: number;
  readonly ring: number;
  readonly cfg: number;
}

export interface LowerToPlanOptions {
  readonly dtype: PlanPrecision;
  /** --keep-bf16 patterns of an fp8 plan (docs/fp8.md). */
  readonly keepBf16?: readonly KeepPattern[];
  readonly shapes?: ShapeBindings;
  readonly emitFragment?: EmitFragment;
  readonly emitAttention?: LowerOptions['emitAttention'];
  /** The module already went through the default pipeline (e.g. compileDenoiseStep's output). */
  readonly prepared?: boolean;
  /** Insert the First Block Cache gate (passes' insert-cache-gate); the threshold is a step input. */
  readonly fbcache?: boolean;
  /** Kernels without CUDA bodies (stub-emitter.ts): plans for the CPU backend only (debugging). */
  readonly stubKernels?: boolean;
  /** Flash-attention kernel where it applies, decomposition elsewhere (default true; false: decompose all). */
  readonly flashAttention?: boolean;
  /** Bound in bytes on the fp32 scores of one query chunk of decomposed attention (default 64 MiB). */
  readonly attentionScoreBudget?: number;
  /** Run the IR verifier around every pass (tests). */
  readonly verify?: boolean;
  readonly onPhase?: (phase: string) => void;
  /** Compile for this mesh (context parallelism): one plan that every rank runs. */
  readonly mesh?: Mesh;
  /** The mesh (ring = W) splits the image rows of a convolutional decoder (passes' rows-parallel), not the tokens. */
  readonly rowsParallel?: boolean;
  /** `--comm-dtype fp8` (docs/fp8.md): the context-parallel attention payloads move as e4m3 (needs a sharded mesh). */
  readonly commDtype?: 'fp8';
  /**
   * Seeded random weights become generator recipes the runtime fills (plan `weights.generated`)
   * instead of bytes in weights.bin (default true; false writes them like real weights).
   */
  readonly generateRandomWeights?: boolean;
  /** Per-pass wall times of every pipeline (`compile --time-passes`). */
  readonly report?: PassReport;
  /** Pass names after which `dump` receives the module text (`compile --after`; '*' = every pass). */
  readonly printAfter?: readonly string[];
  readonly dump?: (passName: string, text: string) => void;
}

export interface CompiledModule {
  /** The module after the dtype policy: the interpreter reference for this plan. */
  readonly reference: Module;
  readonly lowered: LoweredProgram;
  /** The overlap schedule's simulated timeline (sharded plans; cost-model.ts estimates). */
  readonly schedule: ScheduleReport;
  readonly memory: MemoryPlan;
  readonly built: BuiltPlan;
}

/** Everything up to (not including) writing files; `m` is an imported (unfused) module. */
export function compileModule(m: Module, opts: LowerToPlanOptions): CompiledModule {
  const instruments = { ...(opts.report ? { report: opts.report } : {}), ...(opts.printAfter ? { printAfter: opts.printAfter } : {}), ...(opts.dump ? { dump: opts.dump } : {}) };
  const sharded = opts.mesh !== undefined && worldSize(opts.mesh) > 1;
  // The step's passes verify with the rules its module declares (placements, the cache gate): ir's verify.
  const stepCtx = createPassContext({ ...instruments, verify: opts.verify === true, ...(opts.mesh ? { options: { mesh: opts.mesh } } : {}) });
  let fused = m;
  if (opts.commDtype === 'fp8' && (!sharded || opts.rowsParallel)) {
    throw new IrError('E_INPUT', `--comm-dtype fp8 moves the attention payloads of context parallelism (Ulysses all-to-all, ring K/V) as e4m3; ${sharded ? 'a rows-parallel decoder has none' : 'this compile has no mesh'}: add --ulysses N or --ring N, or drop --comm-dtype`);
  }
  if (sharded && opts.rowsParallel && opts.fbcache) throw new IrError('E_INPUT', 'rows-parallel plans have no First Block Cache gate (it gates transformer blocks); drop --fbcache');
  if (!opts.prepared) {
    opts.onPhase?.('specialize');
    const spec = runPipeline(m, specializePipeline(opts.shapes ?? new Map()), stepCtx);
    opts.onPhase?.('passes');
    fused = runPipeline(spec, fusionPipeline(), stepCtx);
  }
  const gated = opts.fbcache === true;
  if (sharded || gated) opts.onPhase?.(sharded ? 'shard' : 'fbcache');
  const step = runPipeline(fused, stepPipeline({ fbcache: gated, sharded, rowsParallel: opts.rowsParallel === true, commFp8: opts.commDtype === 'fp8' }), stepCtx);
  opts.onPhase?.('dtype');
  // The dtype policy drops placements: from here on a module is one rank's program on local shapes.
  const ctx = createPassContext({ ...instruments, verify: opts.verify === true });
  const typed = runPipeline(step, referencePipeline(opts.dtype, opts.keepBf16 ?? []), ctx);
  opts.onPhase?.('lower');
  const emitters = defaultEmitters(opts.stubKernels === true);
  const flash = opts.flashAttention !== false;
  const ready = runPipeline(typed, renderPipeline({ flash, ...(opts.attentionScoreBudget !== undefined ? { attentionScoreBudget: opts.attentionScoreBudget } : {}) }), ctx);
  // Every node whose op has no CUDA path at all, in one error (exit 2), before any kernel is emitted.
  if (!opts.stubKernels) {
    const refused = coverageError(refusedNodes(ready));
    if (refused) throw refused;
  }
  let lowered: LoweredProgram;
  try {
    lowered = lowerModule(ready, {
      emitFragment: opts.emitFragment ?? emitters.emitFragment,
      emitAttention: opts.emitAttention ?? emitters.emitAttention,
      flashAttention: flash,
    });
  } catch (e) {
    // The kernel emitters' "cannot lower" errors are about the model, not bugs: exit 2.
    if (e instanceof Error && (e.name === 'CodegenError' || e.name === 'AttentionError')) {
      throw new IrError('E_UNSUPPORTED', `${e.message}; no CUDA kernel covers this yet: compile with --stub-kernels to run the plan on the CPU backend, or change the export`, (e as { nodeName?: string }).nodeName);
    }
    throw e;
  }
  // Sharded programs: collectives onto the communication stream, compute reordered around them.
  const scheduled = scheduleStreams(lowered.program, lowered.aliases);
  if (scheduled.events > 0) lowered = { ...lowered, program: scheduled.program, events: scheduled.events };
  checkProgram(lowered);
  opts.onPhase?.('memory');
  const memory = planMemory(lowered, opts.generateRandomWeights === false ? {} : { generated: (v) => valueRecipe(v) !== undefined });
  const built = buildPlan(lowered, memory);
  return { reference: typed, lowered, schedule: scheduled.report, memory, built: scheduled.events > 0 ? withStats(built, scheduleStats(scheduled.report)) : built };
}

interface CompileOptions extends Omit<LowerToPlanOptions, 'fbcache' | 'mesh'>, WriteOptions {
  readonly randomWeights?: { readonly seed: number };
  readonly mesh?: MeshDegrees;
  /** First Block Cache with this default threshold (recorded in stats.fbcacheThreshold). */
  readonly fbcache?: number;
}

/** Input shapes (in graph input order) of the model folder's first test data set, if any. */
export function testDataShapes(dir: string): number[][] {
  const sets = listTestDataSets(dir);
  return sets.length > 0 ? readTestDataSet(sets[0]!).inputs.map((t) => [...t.shape]) : [];
}

export interface CompileResult {
  readonly plan: Plan;
  readonly compiled: CompiledModule;
  readonly seconds: Readonly<Record<string, number>>;
}

/** `paradit compile MODEL -o PLAN`: loads, compiles and writes the plan directory. */
export async function compileToPlan(model: string, out: string, opts: CompileOptions): Promise<CompileResult> {
  const times: Record<string, number> = {};
  let t = performance.now();
  const lap = (k: string): void => {
    const now = performance.now();
    times[k] = (now - t) / 1000;
    t = now;
  };
  const file = resolveModelPath(model);
  const raw = loadModel(file, opts.randomWeights ? { randomWeights: opts.randomWeights } : {});
  lap('load');
  // Bind symbolic input dims: --shape wins over the test data's shapes.
  const shapes = new Map<string, readonly number[]>();
  const fromData = testDataShapes(path.dirname(file));
  raw.graph.inputs.forEach((v, k) => {
    const s = fromData[k];
    if (s && v.shape.some((d) => typeof d === 'string')) shapes.set(v.name, s);
  });
  for (const [k, v] of opts.shapes ?? new Map()) shapes.set(k, v);
  const mesh = makeMesh(opts.mesh ?? {});
  const compiled = compileModule(raw, { ...opts, shapes, fbcache: opts.fbcache !== undefined, mesh });
  lap('compile');
  const built = opts.fbcache === undefined ? compiled.built : withStats(compiled.built, { fbcacheThreshold: opts.fbcache });
  const written = await writePlan(
    out,
    built,
    compiled.memory,
    {
      compiledFrom: {
        model: file,
        modelSha256: sha256OfFile(file),
        ...(raw.meta.randomWeights && opts.randomWeights ? { randomWeightsSeed: opts.randomWeights.seed } : {}),
        paradit: PARADIT_VERSION,
        createdAt: new Date().toISOString(),
      },
      target: { backend: 'cuda', arch: TARGET_ARCH, dtype: opts.dtype, mesh: { cfg: mesh.cfg, ring: mesh.ring, ulysses: mesh.ulysses } },
    },
    opts,
  );
  lap('write');
  if (written.nvccSeconds !== null) times['nvcc'] = written.nvccSeconds;
  times['weights'] = written.weightsSeconds;
  return { plan: written.plan, compiled, seconds: times };
}

/**
 * What `inspect --target cuda --dtype D [--fbcache T]` reports: the plan's stats, without writing a
 * plan. `fused` is `raw` after the default pipeline when the caller has it already (inspect): it is
 * reused instead of running the pipeline a second time (on full FLUX.1-dev, half of inspect's
 * time), unless `raw` has data-dependent token selection that compile rewrites before fusing.
 */
export function planSummary(raw: Module, target: string, dtype: string, opts: { readonly fbcache?: boolean; readonly mesh?: Mesh; readonly rowsParallel?: boolean; readonly fused?: Module; readonly keepBf16?: readonly KeepPattern[] } = {}): Record<string, number | string> {
  if (target !== 'cuda') throw new IrError('E_INPUT', `--target ${target}: only 'cuda' is supported`);
  const reuse = opts.fused !== undefined && maskTokenSelection(raw) === raw;
  const c = compileModule(reuse ? opts.fused! : raw, { dtype: parsePrecision(dtype), fbcache: opts.fbcache === true, prepared: reuse, ...(opts.mesh ? { mesh: opts.mesh } : {}), ...(opts.rowsParallel ? { rowsParallel: true } : {}), ...(opts.keepBf16 ? { keepBf16: opts.keepBf16 } : {}) });
  const plan = c.built.plan({
    compiledFrom: { model: '', modelSha256: '', paradit: PARADIT_VERSION, createdAt: '' },
    target: { backend: 'cuda', arch: TARGET_ARCH, dtype: parsePrecision(dtype), mesh: { cfg: opts.mesh?.cfg ?? 1, ring: opts.mesh?.ring ?? 1, ulysses: opts.mesh?.ulysses ?? 1 } },
    weightsSha256: '',
    cubin: null,
    sourceOptions: [],
    files: {},
  });
  return { dtype: plan.target.dtype, ...plan.stats };
}

/**
 * What the overlap schedule predicts (cost-model.ts rates: H100, NVLink): bytes each rank moves
 * per step, the collectives' time, how much of it compute hides, and the step's makespan. Stats
 * for humans and `inspect`; the runtime ignores them.
 */
function scheduleStats(r: ScheduleReport): Record<string, number> {
  const us = (s: number): number => Math.round(s * 1e7) / 10;
  const comm = r.comm.reduce((a, c) => a + c.seconds, 0);
  const hidden = r.comm.reduce((a, c) => a + c.hidden, 0);
  return {
    commBytesPerRank: Math.round(r.comm.reduce((a, c) => a + linkBytes(c.instr), 0)),
    commEstimatedUs: us(comm),
    commHiddenUs: us(hidden),
    estimatedStepUs: us(r.makespan),
  };
}

function withStats(b: BuiltPlan, extra: Record<string, number>): BuiltPlan {
  return { kernels: b.kernels, plan: (meta) => {
    const p = b.plan(meta);
    return { ...p, stats: { ...p.stats, ...extra } };
  } };
}

interface OpenCompiledOptions extends LowerToPlanOptions {
  readonly backend: 'cpu' | 'cuda';
  /** Where to write the plan (default: a fresh temporary directory, removed by dispose). */
  readonly dir?: string;
  readonly nvcc?: WriteOptions['nvcc'];
}

/**
 * Compiles an in-memory module to a plan and opens it as a StepExecutor (what `check --backend`
 * and `denoise --backend` need): returns the executor, the plan and a dispose that frees the
 * backend and removes a temporary plan directory.
 */
export async function compileAndOpen(m: Module, opts: OpenCompiledOptions): Promise<{ executor: OpenedPlan['executor']; plan: Plan; dir: string; reference: Module; dispose(): void }> {
  const compiled = compileModule(m, opts);
  const tmp = opts.dir ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-plan-'));
  const dir = opts.dir ?? path.join(tmp!, 'plan');
  // A signal while the plan is written or used removes the temporary folder (see plan-output.ts).
  const unregister = tmp ? onAbort(() => fs.rmSync(tmp, { recursive: true, force: true })) : () => undefined;
  try {
    const meta = {
      compiledFrom: { model: m.meta.source ?? 'in-memory', modelSha256: '', paradit: PARADIT_VERSION, createdAt: new Date().toISOString() },
      target: { backend: 'cuda' as const, arch: TARGET_ARCH, dtype: opts.dtype, mesh: { cfg: opts.mesh?.cfg ?? 1, ring: opts.mesh?.ring ?? 1, ulysses: opts.mesh?.ulysses ?? 1 } },
    };
    const written = await writePlan(dir, compiled.built, compiled.memory, meta, { nvcc: opts.nvcc ?? (opts.backend === 'cuda' ? 'auto' : false) });
    const opened = await openPlan(dir, { backend: opts.backend, verifyWeights: false });
    return {
      executor: opened.executor,
      plan: written.plan,
      dir,
      reference: compiled.reference,
      dispose: () => {
        opened.dispose();
        unregister();
        if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
      },
    };
  } catch (e) {
    unregister();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
