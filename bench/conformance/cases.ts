/**
 * ONNX node-test conformance of the CUDA path: which node-test cases the interpreter passes, and
 * packing those into a bounded folder the GPU machine can carry (the test data is not there).
 *
 * A case whose shape-determining operands (Reshape's shape, Slice's starts, Resize's scales,
 * reduction axes, ...) are graph inputs cannot become a static-shape plan as it stands; such a
 * case is packed as a variant whose operands are frozen to the test data's values (moved from the
 * graph inputs to initializers, like `compile --shape` freezes dims), recorded as `frozen` in the
 * manifest. Everything else is packed unchanged. Used by pack.mjs; see README.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Graph, Module, Value } from '@paradit/ir';
import { interpret, loadModel } from '@paradit/ir';
import type { Tensor } from '@paradit/ir';
import { compileModule } from '@paradit/compiler';
import { listTestDataSets, readTestDataSet } from '@paradit/runtime';
import type { TestDataSet } from '@paradit/runtime';
import { decodeModel, decodeTensor, encodeModel } from '../../packages/ir/src/onnx/proto';

export const NODE_ROOT = '/usr/share/libonnx-testdata/data/node';

/** Inputs that decide output shapes (by op, input positions), as the plan compiler needs them constant. */
const SHAPE_SLOTS: Readonly<Record<string, readonly number[]>> = {
  Reshape: [1], Slice: [1, 2, 3, 4], Unsqueeze: [1], Squeeze: [1], Split: [1], Tile: [1], Expand: [1], Pad: [1, 3],
  TopK: [1], OneHot: [1], ConstantOfShape: [0], Range: [0, 1, 2], CumSum: [1], Resize: [1, 2, 3], Upsample: [1],
  ReduceSum: [1], ReduceMean: [1], ReduceMax: [1], ReduceMin: [1], ReduceProd: [1], ReduceL1: [1], ReduceL2: [1],
  ReduceLogSum: [1], ReduceLogSumExp: [1], ReduceSumSquare: [1],
};

/** Training-mode or random cases the interpreter suite excludes (tests/onnx-node.test.ts). */
const EXCLUDED = /^test_(dropout_random_old|training_dropout.*|cast_BFLOAT16_to_FLOAT|cast_FLOAT_to_BFLOAT16|castlike_BFLOAT16_to_FLOAT(_expanded)?|castlike_FLOAT_to_BFLOAT16(_expanded)?)$/;

/** A case's data sets, in order (the runtime's model-zoo reader). */
function readSets(dir: string): TestDataSet[] {
  return listTestDataSets(dir).map(readTestDataSet);
}

/** ONNX backend-test closeness (the interpreter suite's rule). */
function close(got: Tensor, ref: Tensor): boolean {
  if (got.dtype !== ref.dtype || got.shape.join(',') !== ref.shape.join(',')) return false;
  for (let i = 0; i < ref.data.length; i++) {
    const a = Number(got.data[i]);
    const b = Number(ref.data[i]);
    if (Number.isNaN(b) ? !Number.isNaN(a) : !(a === b || Math.abs(a - b) <= 1e-7 + 1e-3 * Math.abs(b))) return false;
  }
  return true;
}

export interface CaseInfo {
  readonly name: string;
  readonly dir: string;
  readonly ops: string[];
  /** The interpreter passes every data set. */
  readonly interpreter: boolean;
  readonly why?: string;
}

function opsOf(g: Graph, into = new Set<string>()): Set<string> {
  for (const n of g.nodes) {
    into.add(n.op);
    for (const sg of n.subgraphs()) opsOf(sg, into);
  }
  return into;
}

/** Which ONNX op names a case's model.onnx uses (before import rewrites), for per-op counts. */
function onnxOps(dir: string): string[] {
  const m = decodeModel(new Uint8Array(fs.readFileSync(path.join(dir, 'model.onnx'))), dir);
  return [...new Set((m.graph?.node ?? []).map((n) => n.opType ?? ''))].filter((s) => s).sort();
}

export function interpreterCase(name: string): CaseInfo {
  const dir = path.join(NODE_ROOT, name);
  let ops: string[] = [];
  try {
    ops = onnxOps(dir);
  } catch {
    /* reported below */
  }
  if (EXCLUDED.test(name)) return { name, dir, ops, interpreter: false, why: 'excluded (training-mode / bf16-bits data)' };
  let m: Module;
  try {
    m = loadModel(dir);
  } catch (e) {
    return { name, dir, ops, interpreter: false, why: `import: ${(e as Error).message.split('\n')[0]}` };
  }
  try {
    for (const s of readSets(dir)) {
      const got = interpret(m, s.inputs);
      if (!s.outputs.every((ref, k) => got[k] && close(got[k]!, ref))) return { name, dir, ops, interpreter: false, why: 'interpreter mismatch' };
    }
  } catch (e) {
    return { name, dir, ops, interpreter: false, why: `interpreter: ${(e as Error).message.split('\n')[0]}` };
  }
  void opsOf;
  return { name, dir, ops, interpreter: true };
}

/** Graph inputs that reach a shape-deciding operand slot (through any chain of producers). */
export function shapeInputs(m: Module): Value[] {
  const g = m.graph;
  const producer = g.producers();
  const inputs = new Set(g.inputs);
  const found = new Set<Value>();
  const seen = new Set<Value>();
  const back = (v: Value | null | undefined): void => {
    if (!v || seen.has(v)) return;
    seen.add(v);
    if (inputs.has(v)) found.add(v);
    const p = producer.get(v);
    if (p) p.inputs.forEach(back);
  };
  for (const n of g.nodes) for (const k of SHAPE_SLOTS[n.op] ?? []) back(n.inputs[k]);
  return g.inputs.filter((v) => found.has(v));
}

/** The plan dtype `check --backend` picks for a model (bf16/f16 models get such plans). */
export function planDtype(m: Module): 'f32' | 'bf16' | 'f16' {
  const d = new Set([...m.graph.inputs, ...m.graph.outputs].map((v) => v.dtype));
  return d.has('bf16') ? 'bf16' : d.has('f16') ? 'f16' : 'f32';
}

/** Compiles a model folder to a plan in memory (no nvcc); undefined when it compiles, else the reason. */
export function compileError(dir: string): string | undefined {
  try {
    const m = loadModel(dir);
    const sets = readSets(dir);
    const shapes = new Map<string, readonly number[]>();
    m.graph.inputs.forEach((v, i) => {
      const t = sets[0]?.inputs[i];
      if (t && v.shape.some((d) => typeof d === 'string')) shapes.set(v.name, t.shape);
    });
    compileModule(m, { dtype: planDtype(m), shapes });
    return undefined;
  } catch (e) {
    return (e as Error).message.replace(/\s+/g, ' ').slice(0, 400);
  }
}

/**
 * Writes the case into `dest` (model.onnx + test_data_set_*). With `freeze`, those graph inputs
 * become initializers holding data set 0's values (every data set must agree) and leave the
 * data sets; returns false when the data sets disagree (no variant is possible).
 */
export function writeCase(src: string, dest: string, freeze: readonly string[]): boolean {
  fs.mkdirSync(dest, { recursive: true });
  const bytes = new Uint8Array(fs.readFileSync(path.join(src, 'model.onnx')));
  const sets = fs.readdirSync(src).filter((d) => d.startsWith('test_data_set_')).sort();
  if (freeze.length === 0) {
    fs.writeFileSync(path.join(dest, 'model.onnx'), bytes);
    for (const s of sets) fs.cpSync(path.join(src, s), path.join(dest, s), { recursive: true });
    return true;
  }
  const model = decodeModel(bytes, src);
  const g = model.graph!;
  const inits = new Set((g.initializer ?? []).map((t) => t.name));
  const realInputs = (g.input ?? []).filter((v) => !inits.has(v.name));
  const idx = freeze.map((n) => realInputs.findIndex((v) => v.name === n));
  if (idx.some((i) => i < 0)) return false;
  const file = (s: string, k: number): string => path.join(src, s, `input_${k}.pb`);
  for (const k of idx) {
    const first = fs.readFileSync(file(sets[0]!, k));
    if (sets.some((s) => !fs.readFileSync(file(s, k)).equals(first))) return false;
  }
  g.initializer = [...(g.initializer ?? []), ...idx.map((k) => ({ ...decodeTensor(new Uint8Array(fs.readFileSync(file(sets[0]!, k))), file(sets[0]!, k)), name: realInputs[k]!.name }))];
  g.input = (g.input ?? []).filter((v) => !freeze.includes(v.name ?? ''));
  fs.writeFileSync(path.join(dest, 'model.onnx'), encodeModel(model));
  for (const s of sets) {
    fs.mkdirSync(path.join(dest, s), { recursive: true });
    let j = 0;
    realInputs.forEach((_, k) => {
      if (!idx.includes(k)) fs.copyFileSync(file(s, k), path.join(dest, s, `input_${j++}.pb`));
    });
    for (const f of fs.readdirSync(path.join(src, s)).filter((f) => f.startsWith('output_'))) fs.copyFileSync(path.join(src, s, f), path.join(dest, s, f));
  }
  return true;
}

export interface PackedCase {
  readonly name: string;
  readonly ops: string[];
  /** Graph inputs frozen to the test data (shape-deciding operands). */
  readonly frozen: string[];
  /** The plan dtype `check --backend` picks (CLI spelling). */
  readonly dtype: 'fp32' | 'bf16' | 'fp16';
  /** CPU-side compile (in memory, no nvcc): undefined = ok, else the reason. */
  readonly compileError?: string;
}

export interface PackReport {
  readonly total: number;
  readonly interpreterPasses: number;
  readonly notInterpreter: { name: string; why: string }[];
  readonly cases: PackedCase[];
}

/** Every interpreter-passing case into outDir/cases/<name>, with outDir/manifest.json. */
export function pack(outDir: string, filter = '', log: (s: string) => void = () => undefined): PackReport {
  const names = fs.readdirSync(NODE_ROOT).filter((n) => n.startsWith('test_') && n.includes(filter)).sort();
  fs.rmSync(path.join(outDir, 'cases'), { recursive: true, force: true });
  const cases: PackedCase[] = [];
  const notInterpreter: { name: string; why: string }[] = [];
  for (const name of names) {
    const info = interpreterCase(name);
    if (!info.interpreter) {
      notInterpreter.push({ name, why: info.why ?? '' });
      continue;
    }
    const dest = path.join(outDir, 'cases', name);
    let err = compileError(info.dir);
    let frozen: string[] = [];
    if (err && /compile-time constant|symbolic|still symbolic/.test(err)) {
      const names2 = shapeInputs(loadModel(info.dir)).map((v) => v.name);
      if (names2.length && writeCase(info.dir, dest, names2)) {
        frozen = names2;
        err = compileError(dest);
      }
    }
    if (frozen.length === 0) writeCase(info.dir, dest, []);
    const pd = planDtype(loadModel(dest));
    cases.push({ name, ops: info.ops, frozen, dtype: pd === 'f32' ? 'fp32' : pd === 'f16' ? 'fp16' : 'bf16', ...(err ? { compileError: err } : {}) });
    log(`${err ? 'FAIL' : 'ok  '} ${name}${frozen.length ? ` (frozen: ${frozen.join(', ')})` : ''}${err ? `: ${err.slice(0, 160)}` : ''}`);
  }
  const report: PackReport = { total: names.length, interpreterPasses: cases.length, notInterpreter, cases };
  fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify(report, null, 1));
  return report;
}
