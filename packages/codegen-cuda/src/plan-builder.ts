/**
 * Renders a lowered program and its memory plan as the plan.json object (plan-format.md) and the kernel
 * module source. Decisions are all made already; this only numbers buffers and prints refs.
 */
import { DType, Graph, IrError, Module, Value, cacheGateAttrsOf, printModule } from '@paradit/ir';
import type { Instr, KernelArg, MatrixView, Plan, PlanDType, RefFragment } from '@paradit/runtime';
import { PLAN_FORMAT, PLAN_VERSION, streamHazard, streamRuleViolation } from '@paradit/runtime';
import type { LInstr, LMatrix, LoweredProgram, RefSpec } from './lower/program';
import { REF_INLINE_LIMIT, instrOrigin } from './lower/lower-graph';
import type { MemoryPlan } from './memory-plan';
import { ALIGNMENT } from './memory-plan';
import { STUB_KERNEL_MARKER } from './lower/stub-emitter';
import { valueRecipe } from './weight-recipes';

const PLAN_DTYPES: Partial<Record<DType, PlanDType>> = { f32: 'f32', f16: 'f16', bf16: 'bf16', i32: 'i32', i64: 'i64', bool: 'bool', u8: 'u8', i8: 'i8', i16: 'i16', u16: 'u16', u32: 'u32', u64: 'u64', f8e4m3fn: 'f8e4m3fn' };

export function planDtypeOf(v: Value): PlanDType {
  const d = PLAN_DTYPES[v.dtype];
  if (!d) {
    throw new IrError('E_UNSUPPORTED', `value '${v.name || v.id}' is ${v.dtype}; plans hold ${Object.keys(PLAN_DTYPES).join(', ')} only (f64 is computed in f32 by the dtype policy; fp8 only inside GEMMs)`);
  }
  return d;
}

export interface PlanMeta {
  readonly compiledFrom: Plan['compiledFrom'];
  readonly target: Plan['target'];
  readonly weightsSha256: string;
  readonly cubin: string | null;
  readonly sourceOptions: readonly string[];
  /** sha256 of each kernel file, by path in the plan (plan.json's `files`). */
  readonly files: Readonly<Record<string, string>>;
}

interface KernelModule {
  /** Full text of kernels/module.cu. */
  readonly source: string;
  readonly entries: number;
  /** Kernels without a CUDA body (stub emitter), which a GPU cannot run. */
  readonly stubs: number;
}

class Renderer {
  readonly sources = new Map<string, string>();
  readonly counts = { kernels: 0, gemms: 0, copies: 0, branches: 0, collectives: 0, shardSlices: 0 };
  /** First Block Cache gate's block counts (the If's totalBlocks/skippedBlocks attributes). */
  readonly gate: Record<string, number> = {};

  /** Kernel text with its entry name abstracted -> the entry that module.cu defines for it. */
  private readonly byText = new Map<string, string>();
  /** Every entry the lowering emitted, with its source (one source per name). */
  private readonly emitted = new Map<string, string>();

  constructor(
    private readonly mp: MemoryPlan,
    private readonly opsets: Readonly<Record<string, number>>,
  ) {}

  /**
   * The entry an instruction launches: kernels whose sources differ only in their entry name (the
   * same fragment in each of FLUX's 57 blocks) share the first one's, so module.cu holds (and
   * nvcc compiles) each distinct kernel once.
   */
  private dedupe(entry: string, source: string): string {
    const text = source.replace(new RegExp(`\\b${entry.replace(/[^A-Za-z0-9_]/g, (c) => `\\${c}`)}\\b`, 'g'), '\u0001');
    const hit = this.byText.get(text);
    if (hit !== undefined) return hit;
    this.byText.set(text, entry);
    this.sources.set(entry, source);
    return entry;
  }

  id(v: Value): number {
    const b = this.mp.buffers.get(v);
    if (!b) throw new Error(`plan builder: value '${v.name || v.id}' has no buffer`);
    return b.id;
  }

  ref(r: RefSpec): RefFragment {
    const g = new Graph(r.inputs, r.nodes, r.outputs, 'ref');
    const text = printModule(new Module(g, this.opsets), { inlineLimit: REF_INLINE_LIMIT });
    return { text, inputs: r.inputs.map((v) => this.id(v)), outputs: r.outputs.map((v) => this.id(v)) };
  }

  view(m: LMatrix): MatrixView {
    return { buf: this.id(m.value), elemOffset: m.elemOffset, rows: m.rows, cols: m.cols, ld: m.ld, batchStride: m.batchStride };
  }

  instr(i: LInstr): Instr {
    const sync = i.sync;
    const base = this.instrBody(i);
    if (!sync) return base;
    return { ...base, ...(sync.stream ? { stream: sync.stream } : {}), ...(sync.wait.length ? { wait: [...sync.wait] } : {}), ...(sync.record !== undefined ? { record: sync.record } : {}) };
  }

  private instrBody(i: LInstr): Instr {
    const origin = instrOrigin(i);
    switch (i.op) {
      case 'kernel': {
        this.counts.kernels++;
        const k = i.kernel;
        const prev = this.emitted.get(k.entry);
        if (prev !== undefined && prev !== k.source) throw new Error(`kernel entry '${k.entry}' is emitted twice with different sources`);
        this.emitted.set(k.entry, k.source);
        const entry = this.dedupe(k.entry, k.source);
        const args: KernelArg[] = k.args.map((a) => {
          if (a.kind === 'value') return { buf: this.id(a.value) };
          if (a.kind === 'i32') return { i32: a.v };
          if (a.kind === 'i64') return { i64: a.v };
          return { f32: a.v };
        });
        return { op: 'kernel', kernel: entry, grid: [...k.grid], block: [...k.block], smem: k.smem, args, origin, ref: this.ref(i.ref) };
      }
      case 'gemm':
        this.counts.gemms++;
        return {
          op: 'gemm', m: i.m, n: i.n, k: i.k, batch: i.batch,
          a: this.view(i.a), transA: i.transA, b: this.view(i.b), transB: i.transB, out: this.view(i.out),
          ...(i.bias ? { bias: this.id(i.bias) } : {}),
          ...(i.scaleA ? { scaleA: this.id(i.scaleA) } : {}),
          ...(i.scaleB ? { scaleB: this.id(i.scaleB) } : {}),
          epilogue: i.epilogue, alpha: i.alpha, origin, ref: this.ref(i.ref),
        };
      case 'copy':
        this.counts.copies++;
        return { op: 'copy', src: this.id(i.src), dst: this.id(i.dst), origin };
      case 'branch': {
        this.counts.branches++;
        const gate = cacheGateAttrsOf(i.node);
        if (gate) {
          this.gate['fbcacheTotalBlocks'] = gate.totalBlocks;
          this.gate['fbcacheSkippedBlocks'] = gate.skippedBlocks;
        }
        return { op: 'branch', cond: this.id(i.cond), then: i.then.map((x) => this.instr(x)), else: i.else.map((x) => this.instr(x)), origin };
      }
      case 'collective':
        this.counts.collectives++;
        return {
          op: 'collective', collective: i.collective, meshAxis: i.meshAxis, groupSize: i.groupSize, send: this.id(i.send), recv: this.id(i.recv),
          ...(i.reduce ? { reduce: i.reduce } : {}), ...(i.shift !== undefined ? { shift: i.shift } : {}), ...(i.cyclic === false ? { cyclic: false } : {}), origin,
        };
      case 'shard_slice':
        this.counts.shardSlices++;
        return { op: 'shard_slice', meshAxis: i.meshAxis, groupSize: i.groupSize, shift: i.shift, src: this.id(i.src), dst: this.id(i.dst), rows: i.rows, partBytes: i.partBytes, origin };
    }
  }
}

const MODULE_HEADER = [
  '// kernels/module.cu: every kernel of this plan, written by `paradit compile` (do not edit).',
  '// Entry points are extern "C" __global__ functions named in plan.json; compiled with',
  '// nvcc -gencode arch=compute_90a,code=sm_90a -std=c++17 -O3 (or NVRTC at load time).',
  '',
].join('\n');

export interface BuiltPlan {
  /** plan.json without weights sha256 / cubin (filled by the writer). */
  readonly plan: (meta: PlanMeta) => Plan;
  readonly kernels: KernelModule;
}

export function buildPlan(lp: LoweredProgram, mp: MemoryPlan): BuiltPlan {
  const r = new Renderer(mp, lp.opsets);
  const program = lp.program.map((i) => r.instr(i));
  const badSync = streamRuleViolation(program, lp.events ?? 0);
  if (badSync) throw new Error(`plan builder: the schedule breaks the plan's stream rules (a compiler bug): ${badSync}`);
  const buffers = [...mp.buffers.values()].map((b) => ({
    id: b.id, name: b.value.name || `v${b.value.id}`, dtype: planDtypeOf(b.value), shape: [...(b.value.shape as number[])],
    space: b.space, offset: b.offset, bytes: b.bytes,
  }));
  const generated = mp.weights.flatMap((v) => {
    const b = mp.buffers.get(v)!;
    if (b.offset < mp.fileBytes) return [];
    const recipe = valueRecipe(v);
    if (!recipe) throw new Error(`plan builder: constant '${v.name || v.id}' lies after weights.bin but has no generator recipe (a memory-plan bug)`);
    return [{ buf: b.id, ...recipe }];
  });
  const race = streamHazard({ program, buffers });
  if (race) throw new Error(`plan builder: the schedule and the memory plan race (a compiler bug): ${race}`);
  const sources = [...r.sources.values()];
  const uniq = [...new Set(sources)];
  const stubs = uniq.filter((s) => s.includes(STUB_KERNEL_MARKER)).length;
  const kernels: KernelModule = { source: MODULE_HEADER + uniq.join('\n'), entries: r.sources.size, stubs };
  const stats: Record<string, number> = {
    peakActivationBytes: mp.spaces.arena,
    arenaBytes: mp.spaces.arena,
    weightsBytes: mp.spaces.weights,
    weightsFileBytes: mp.fileBytes,
    generatedWeights: generated.length,
    ioBytes: mp.spaces.io,
    stateBytes: mp.spaces.state,
    kernels: r.counts.kernels,
    gemms: r.counts.gemms,
    copies: r.counts.copies,
    branches: r.counts.branches,
    collectives: r.counts.collectives,
    shardSlices: r.counts.shardSlices,
    kernelEntries: r.sources.size,
    stubKernels: stubs,
    buffers: buffers.length,
    ...r.gate,
  };
  return {
    kernels,
    plan: (meta) => ({
      format: PLAN_FORMAT,
      version: PLAN_VERSION,
      compiledFrom: meta.compiledFrom,
      target: meta.target,
      spaces: { ...mp.spaces },
      streams: (lp.events ?? 0) > 0 ? 2 : 1,
      events: lp.events ?? 0,
      weights: { file: 'weights.bin', bytes: mp.fileBytes, alignment: ALIGNMENT, sha256: meta.weightsSha256, generated },
      kernels: { source: 'kernels/module.cu', cubin: meta.cubin, options: [...meta.sourceOptions] },
      files: { ...meta.files },
      buffers,
      inputs: lp.inputs.map((x) => ({ name: x.name, buf: r.id(x.value) })),
      outputs: lp.outputs.map((x) => ({ name: x.name, buf: r.id(x.value) })),
      state: lp.state.map((s) => ({ name: s.name, buf: r.id(s.input), role: s.name.replace(/^fbcache\.state\./, 'fbcache.') })),
      program,
      stats,
    }),
  };
}
