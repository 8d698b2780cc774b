/**
 * Localizes a GPU/CPU divergence to one plan instruction (`check --backend cuda --debug-instrs`).
 *
 * The unit compared is a fragment: one top-level instruction, or a run of consecutive kernels that
 * share one `ref` (a fused fragment split into several kernels, each writing part of the outputs).
 * The plan's program is cut after n instructions and run on the device (same buffers, same
 * offsets: a prefix of a plan is a valid plan whose buffers hold what the full step holds at that
 * point). A fragment's inputs are read after the prefix that ends just before it, and its outputs
 * once they are complete (`checkpoints`: a later kernel of the same fused group may still write
 * part of them); its IR `ref` (what the CPU backend runs) is interpreted on those very device
 * inputs and compared with the device outputs. The comparison is local: a fragment is blamed only
 * for its own error, not for drift accumulated upstream. Reading inputs before the fragment runs
 * also covers outputs the memory planner placed over a dying input.
 *
 * Slow by design (one plan load per fragment, no graphs, no gemm tuning): a debugging tool for the
 * small fixtures. The device is behind `PrefixRunner`, so the same walk runs on the CPU backend
 * (tests: no GPU needed, and a fault injected into one buffer must be found there).
 */
import { Tensor, interpret, parseModule } from '@paradit/ir';
import { CpuPlanBackend, compareTensors, decodeTensor, loadCudaRuntime, loadPlan } from '@paradit/runtime';
import type { Instr, LoadedPlan, Plan } from '@paradit/runtime';

interface InstrDiff {
  /** First and last top-level instruction of the fragment. */
  readonly index: number;
  readonly last: number;
  readonly op: string;
  readonly kernel?: string;
  readonly origin: readonly string[];
  /** Worst relative L2 over the fragment's outputs (a NaN on one side only counts as Infinity). */
  readonly relL2: number;
  readonly maxAbs: number;
  readonly note?: string;
}

interface InstrDebugReport {
  readonly dtype: string;
  readonly threshold: number;
  readonly instrs: InstrDiff[];
  /** The first fragment whose local error exceeds the threshold. */
  readonly first?: InstrDiff;
}

/** Runs a prefix of the program on some device and reads buffers afterwards. */
export interface PrefixRunner {
  /** Runs program[0, n) on the step inputs, then calls `use` with a buffer reader. */
  withPrefix<T>(n: number, use: (read: (id: number) => Tensor) => T): Promise<T>;
  dispose(): void;
}

const prefixPlan = (plan: Plan, n: number): Plan => ({ ...plan, program: plan.program.slice(0, n) });

/** The GPU: one CudaBackend per prefix (eager, untuned); a base backend keeps the CUDA context. */
function cudaPrefixRunner(loaded: LoadedPlan, inputs: ReadonlyMap<string, Tensor>): PrefixRunner {
  const { CudaBackend } = loadCudaRuntime();
  const opts = { graphs: false, tuneGemms: false, verifyWeights: false } as const;
  const base = new CudaBackend({ ...loaded, plan: prefixPlan(loaded.plan, 0) }, opts);
  const decl = new Map(loaded.plan.buffers.map((b) => [b.id, b]));
  return {
    async withPrefix(n, use) {
      const b = new CudaBackend({ ...loaded, plan: prefixPlan(loaded.plan, n) }, opts);
      try {
        await b.step(inputs);
        return use((id) => decodeTensor(b.readBuffer(id), decl.get(id)!.dtype, decl.get(id)!.shape));
      } finally {
        b.dispose();
      }
    },
    dispose: () => base.dispose(),
  };
}

/** The CPU plan backend as the device (each instruction's ref on the plan's byte buffers). */
export function cpuPrefixRunner(loaded: LoadedPlan, inputs: ReadonlyMap<string, Tensor>): PrefixRunner {
  return {
    async withPrefix(n, use) {
      const b = new CpuPlanBackend({ ...loaded, plan: prefixPlan(loaded.plan, n) });
      await b.step(inputs);
      return use((id) => b.read(id));
    },
    dispose: () => undefined,
  };
}

/** Local error threshold: fp32 kernels agree with the interpreter to ~1e-6; bf16 rounding is ~4e-3. */
function instrThreshold(dtype: string): number {
  // fp8: a GEMM's fp32 accumulation order differs from the interpreter's on e4m3 inputs, and a
  // bf16 rounding of the quantize kernel's input can flip an e4m3 rounding (one step = 2^-3).
  if (dtype === 'fp8') return 1e-1;
  return dtype === 'f32' ? 1e-4 : 2e-2;
}

const sameRef = (a: Instr, b: Instr): boolean =>
  a.ref !== undefined && b.ref !== undefined && a.ref.text === b.ref.text && a.ref.inputs.join() === b.ref.inputs.join() && a.ref.outputs.join() === b.ref.outputs.join();

/** [start, end) ranges of consecutive top-level instructions sharing one ref. */
export function fragments(program: readonly Instr[]): [number, number][] {
  const out: [number, number][] = [];
  for (let a = 0; a < program.length; ) {
    let b = a + 1;
    while (b < program.length && sameRef(program[a]!, program[b]!)) b++;
    out.push([a, b]);
    a = b;
  }
  return out;
}

interface Checkpoint {
  /** The fragment [start, end) (see `fragments`). */
  readonly start: number;
  readonly end: number;
  /**
   * Prefix length after which its outputs are complete: a fused fragment may be split into kernels
   * that are not adjacent (one writes the tail of a Concat, a later one its head), each carrying
   * the whole fragment's ref. So the outputs are read after the last instruction that also writes
   * one of them, before any instruction reads one of them.
   */
  readonly ready: number;
}

/** Where each fragment's inputs (prefix `start`) and outputs (prefix `ready`) are read. */
export function checkpoints(program: readonly Instr[]): Checkpoint[] {
  return fragments(program).map(([start, end]) => {
    const outs = new Set(program[start]!.ref?.outputs ?? []);
    let ready = end;
    for (let j = end; j < program.length && outs.size > 0; j++) {
      const ref = program[j]!.ref;
      if (!ref || ref.inputs.some((id) => outs.has(id))) break;
      if (ref.outputs.some((id) => outs.has(id))) ready = j + 1;
    }
    return { start, end, ready };
  });
}

export async function debugWithRunner(plan: Plan, runner: PrefixRunner, opts: { log?: (line: string) => void } = {}): Promise<InstrDebugReport> {
  const threshold = instrThreshold(plan.target.dtype);
  const points = checkpoints(plan.program);
  // One device run per distinct prefix length, in order: read the inputs of the fragments that
  // start there and the outputs of those that are ready there.
  const starting = new Map<number, Checkpoint[]>();
  const readyAt = new Map<number, Checkpoint[]>();
  for (const c of points) {
    starting.set(c.start, [...(starting.get(c.start) ?? []), c]);
    readyAt.set(c.ready, [...(readyAt.get(c.ready) ?? []), c]);
  }
  const prefixes = [...new Set([...starting.keys(), ...readyAt.keys()])].sort((x, y) => x - y);
  const expected = new Map<Checkpoint, Tensor[]>();
  const diffs = new Map<Checkpoint, InstrDiff>();
  let done = 0;
  for (const n of prefixes) {
    const got = await runner.withPrefix(n, (read) => ({
      inputs: (starting.get(n) ?? []).map((c) => (plan.program[c.start]!.ref?.inputs ?? []).map(read)),
      outputs: (readyAt.get(n) ?? []).map((c) => (plan.program[c.start]!.ref?.outputs ?? []).map(read)),
    }));
    (starting.get(n) ?? []).forEach((c, i) => {
      const ref = plan.program[c.start]!.ref;
      expected.set(c, ref ? interpret(parseModule(ref.text), got.inputs[i]!) : []);
    });
    (readyAt.get(n) ?? []).forEach((c, i) => {
      const ins = plan.program[c.start]!;
      let relL2 = 0;
      let maxAbs = 0;
      got.outputs[i]!.forEach((t, j) => {
        const cmp = compareTensors(t, expected.get(c)![j]!);
        relL2 = Math.max(relL2, cmp.nanMismatch > 0 ? Infinity : cmp.relL2);
        maxAbs = Math.max(maxAbs, cmp.maxAbs);
      });
      expected.delete(c);
      diffs.set(c, {
        index: c.start,
        last: c.end - 1,
        op: ins.op,
        ...(ins.op === 'kernel' ? { kernel: ins.kernel } : {}),
        origin: ins.origin,
        relL2,
        maxAbs,
        ...(ins.ref ? {} : { note: 'no ref fragment (not compared)' }),
        ...(c.ready > c.end ? { note: `outputs complete after instruction ${c.ready - 1}` } : {}),
      });
      if (++done % 20 === 0) opts.log?.(`debug-instrs: ${done}/${points.length} fragments compared`);
    });
  }
  const instrs = points.map((c) => diffs.get(c)!);
  const first = instrs.find((d) => !(d.relL2 <= threshold));
  return { dtype: plan.target.dtype, threshold, instrs, ...(first ? { first } : {}) };
}

/** The GPU walk over a plan directory (see the header). */
export async function debugInstructions(planDir: string, inputs: ReadonlyMap<string, Tensor>, opts: { log?: (line: string) => void; backend?: 'cpu' | 'cuda' } = {}): Promise<InstrDebugReport> {
  const loaded = loadPlan(planDir, { backend: opts.backend ?? 'cuda', verifyWeights: false });
  const runner = (opts.backend ?? 'cuda') === 'cuda' ? cudaPrefixRunner(loaded, inputs) : cpuPrefixRunner(loaded, inputs);
  try {
    return await debugWithRunner(loaded.plan, runner, opts);
  } finally {
    runner.dispose();
  }
}

const e = (x: number): string => (x === 0 ? '0' : x.toExponential(2));

function line(d: InstrDiff): string {
  const what = d.op === 'kernel' ? `kernel ${d.kernel}${d.last > d.index ? ` (+${d.last - d.index} more kernels of its fragment)` : ''}` : d.op;
  const origin = d.origin.slice(0, 4).join(', ') + (d.origin.length > 4 ? `, ... (${d.origin.length - 4} more)` : '');
  return `  #${d.index} ${what}: rel L2 ${e(d.relL2)}, max |err| ${e(d.maxAbs)}${d.note ? ` [${d.note}]` : ''} (ONNX ${origin})`;
}

export function formatInstrDebug(r: InstrDebugReport): string {
  const worst = [...r.instrs].sort((a, b) => (b.relL2 || 0) - (a.relL2 || 0)).slice(0, 8);
  const lines = [`debug-instrs: ${r.instrs.length} fragments, local device vs ref threshold ${e(r.threshold)} (${r.dtype})`];
  lines.push(r.first ? `first divergent fragment:\n${line(r.first)}` : 'no fragment diverges locally');
  lines.push('worst fragments:', ...worst.map(line));
  return lines.join('\n');
}
