/**
 * Localizes a GPU/CPU divergence to one plan instruction (`check --backend cuda --debug-instrs`).
 *
 * For each top-level instruction k, the plan's program is cut after k and run eagerly on the GPU
 * (same buffers, same offsets: a prefix of a plan is a valid plan whose buffers hold what the full
 * step holds right after k). Instruction k's inputs are read after the prefix [0, k) and its
 * outputs after [0, k]; its IR `ref` (what the CPU backend runs) is then interpreted on those very
 * GPU inputs and compared with the GPU outputs. The comparison is local: an instruction is blamed
 * only for its own error, not for drift accumulated upstream. Reading inputs before k runs also
 * covers outputs the memory planner placed over a dying input.
 *
 * Slow by design (one plan load per instruction, no graphs, no gemm tuning): a debugging tool for
 * the small fixtures. A base backend stays open throughout so the CUDA context is kept.
 */
import { Tensor, interpret, parseModule } from '@paradit/ir';
import { compareTensors, decodeTensor, loadCudaRuntime, loadPlan } from '@paradit/runtime';
import type { Instr, Plan } from '@paradit/runtime';

export interface InstrDiff {
  readonly index: number;
  readonly op: string;
  readonly kernel?: string;
  readonly origin: readonly string[];
  /** Worst relative L2 over the instruction's outputs (NaN in one side only counts as Infinity). */
  readonly relL2: number;
  readonly maxAbs: number;
  readonly note?: string;
}

export interface InstrDebugReport {
  readonly dtype: string;
  readonly threshold: number;
  readonly instrs: InstrDiff[];
  /** The first instruction whose local error exceeds the threshold. */
  readonly first?: InstrDiff;
}

type Backend = InstanceType<ReturnType<typeof loadCudaRuntime>['CudaBackend']>;

function read(b: Backend, plan: Plan, id: number): Tensor {
  const decl = plan.buffers.find((x) => x.id === id)!;
  return decodeTensor(b.readBuffer(id), decl.dtype, decl.shape);
}

/** Local error threshold: fp32 kernels agree with the interpreter to ~1e-6; bf16 rounding is ~4e-3. */
export function instrThreshold(dtype: string): number {
  return dtype === 'f32' ? 1e-4 : 2e-2;
}

export async function debugInstructions(planDir: string, inputs: ReadonlyMap<string, Tensor>, opts: { log?: (line: string) => void } = {}): Promise<InstrDebugReport> {
  const { CudaBackend } = loadCudaRuntime();
  const loaded = loadPlan(planDir, { backend: 'cuda', verifyWeights: false });
  const plan = loaded.plan;
  const threshold = instrThreshold(plan.target.dtype);
  const open = (n: number): Backend => new CudaBackend({ ...loaded, plan: { ...plan, program: plan.program.slice(0, n) } }, { graphs: false, tuneGemms: false, verifyWeights: false });
  const base = open(0);
  const instrs: InstrDiff[] = [];
  try {
    const readInputs = (b: Backend, ins: Instr | undefined): Tensor[] => (ins?.ref ? ins.ref.inputs.map((id) => read(b, plan, id)) : []);
    await base.step(inputs);
    let before = readInputs(base, plan.program[0]);
    for (let k = 0; k < plan.program.length; k++) {
      const ins = plan.program[k]!;
      const b = open(k + 1);
      try {
        await b.step(inputs);
        const head = { index: k, op: ins.op, ...(ins.op === 'kernel' ? { kernel: ins.kernel } : {}), origin: ins.origin };
        if (!ins.ref) {
          instrs.push({ ...head, relL2: 0, maxAbs: 0, note: 'no ref fragment (not compared)' });
        } else {
          const want = interpret(parseModule(ins.ref.text), before);
          let relL2 = 0;
          let maxAbs = 0;
          ins.ref.outputs.forEach((id, j) => {
            const c = compareTensors(read(b, plan, id), want[j]!);
            relL2 = Math.max(relL2, c.nanMismatch > 0 ? Infinity : c.relL2);
            maxAbs = Math.max(maxAbs, c.maxAbs);
          });
          instrs.push({ ...head, relL2, maxAbs });
        }
        before = readInputs(b, plan.program[k + 1]);
      } finally {
        b.dispose();
      }
      if (k % 20 === 19) opts.log?.(`debug-instrs: ${k + 1}/${plan.program.length} instructions compared`);
    }
  } finally {
    base.dispose();
  }
  const first = instrs.find((d) => !(d.relL2 <= threshold));
  return { dtype: plan.target.dtype, threshold, instrs, ...(first ? { first } : {}) };
}

const e = (x: number): string => (x === 0 ? '0' : x.toExponential(2));

function line(d: InstrDiff): string {
  const what = d.op === 'kernel' ? `kernel ${d.kernel}` : d.op;
  const origin = d.origin.slice(0, 4).join(', ') + (d.origin.length > 4 ? `, ... (${d.origin.length - 4} more)` : '');
  return `  #${d.index} ${what}: rel L2 ${e(d.relL2)}, max |err| ${e(d.maxAbs)}${d.note ? ` [${d.note}]` : ''} (ONNX ${origin})`;
}

export function formatInstrDebug(r: InstrDebugReport): string {
  const worst = [...r.instrs].sort((a, b) => (b.relL2 || 0) - (a.relL2 || 0)).slice(0, 8);
  const lines = [`debug-instrs: ${r.instrs.length} instructions, local GPU vs ref threshold ${e(r.threshold)} (${r.dtype})`];
  lines.push(r.first ? `first divergent instruction:\n${line(r.first)}` : 'no instruction diverges locally');
  lines.push('worst instructions:', ...worst.map(line));
  return lines.join('\n');
}
