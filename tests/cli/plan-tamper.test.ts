/**
 * Issue 14 item 6: `paradit run` validates a plan at load. A buffer whose bytes disagree with its
 * dtype and shape, a changed dtype, a flipped byte in kernels/module.cu or the kernel binary, a
 * broken ref fragment or an undeclared buffer id is refused with exit 2 in one paragraph naming
 * the plan, the instruction and its ONNX origin (never exit 3 later). A plan without file
 * checksums (older writers) is refused with a recompile hint. The kernel binary comes from a
 * stand-in nvcc on PATH (there is no CUDA here).
 */
import fs from 'node:fs';
import path from 'node:path';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { ensureCli, expectUserError, removeTempDirs, runCli, tempDir, writeModelDir } from './cli-helpers';

const CFG = { ...TINY_DIT, blocks: 1 };
let model: string;
let good: string;

interface PlanJson {
  buffers: { id: number; name: string; dtype: string; shape: number[]; bytes: number }[];
  program: { op: string; kernel?: string; origin: string[]; ref?: { text: string; inputs: number[] }; src?: number; args?: { buf?: number }[] }[];
  files?: Record<string, string>;
  kernels: { cubin: string | null };
}

beforeAll(() => {
  ensureCli();
  model = writeModelDir(buildTinyDit(CFG), tinyDitInputs(CFG), 'tamper-model');
  // A stand-in nvcc that writes a small "fat binary", so the plan lists kernels/module.fatbin.
  const bin = tempDir('fake-nvcc');
  fs.writeFileSync(path.join(bin, 'nvcc'), '#!/bin/sh\nprintf "FATBIN-stand-in-0123456789" > module.fatbin\n', { mode: 0o755 });
  good = path.join(tempDir('tamper-good'), 'plan');
  const r = runCli(['compile', model, '-o', good, '--dtype', 'fp32'], { PATH: `${bin}:${process.env['PATH']}` });
  expect(r.code).toBe(0);
  expect(runCli(['run', good, '--inputs', model, '--compare']).code).toBe(0);
});
afterAll(() => removeTempDirs());

/** A copy of the good plan with plan.json edited by `edit`, or a file changed by `file`. */
function variant(tag: string, edit?: (j: PlanJson) => void, file?: (dir: string) => void): string {
  const dir = path.join(tempDir(`tamper-${tag}`), 'plan');
  fs.cpSync(good, dir, { recursive: true });
  if (edit) {
    const p = path.join(dir, 'plan.json');
    const j = JSON.parse(fs.readFileSync(p, 'utf8')) as PlanJson;
    edit(j);
    fs.writeFileSync(p, JSON.stringify(j));
  }
  file?.(dir);
  return dir;
}

const run = (dir: string): string => expectUserError(runCli(['run', dir, '--inputs', model]));
const flip = (file: string, at = 7): void => {
  const b = fs.readFileSync(file);
  b[at] = b[at]! ^ 0x10;
  fs.writeFileSync(file, b);
};

/** The first kernel instruction with a ref that has inputs, and its index. */
function firstKernel(j: PlanJson): [number, PlanJson['program'][number]] {
  const k = j.program.findIndex((i) => i.op === 'kernel' && (i.ref?.inputs.length ?? 0) > 0);
  return [k, j.program[k]!];
}

describe('plans are validated at load', () => {
  test('the good plan lists sha256s of module.cu and module.fatbin', () => {
    const j = JSON.parse(fs.readFileSync(path.join(good, 'plan.json'), 'utf8')) as PlanJson;
    expect(j.kernels.cubin).toBe('kernels/module.fatbin');
    expect(Object.keys(j.files ?? {}).sort()).toEqual(['kernels/module.cu', 'kernels/module.fatbin']);
  });

  test('buffer bytes that are not elements x dtype size', () => {
    const dir = variant('bytes', (j) => (j.buffers[2]!.bytes += 4));
    expect(run(dir)).toMatch(new RegExp(`^cannot load plan .*plan: buffer \\d+ '[^']*' is f32\\[[\\d,]*\\], which is \\d+ bytes, but it declares \\d+; plan.json was edited or is corrupt; recompile it`));
  });

  test('a changed dtype (same size) is caught by the instruction reading it, named with its origin', () => {
    let label = '';
    const dir = variant('dtype', (j) => {
      const [k, ins] = firstKernel(j);
      const id = ins.ref!.inputs[0]!;
      j.buffers.find((b) => b.id === id)!.dtype = 'i32';
      label = `instruction ${k} (kernel '${ins.kernel}', from ${ins.origin.join(', ')})`;
    });
    const msg = run(dir);
    expect(msg.startsWith(`cannot load plan ${dir}: ${label}: ref input 0 is f32[`)).toBe(true);
    expect(msg).toMatch(/but its buffer \d+ '[^']*' is i32\[[\d,]*\]; plan.json was edited/);
  });

  test('a flipped byte in kernels/module.cu and in kernels/module.fatbin', () => {
    expect(run(variant('cu', undefined, (d) => flip(path.join(d, 'kernels/module.cu'))))).toMatch(/: kernels\/module\.cu has sha256 [0-9a-f]{16}…, plan\.json says [0-9a-f]{16}… \(the file was modified or is corrupt\); recompile/);
    expect(run(variant('fatbin', undefined, (d) => flip(path.join(d, 'kernels/module.fatbin'), 3)))).toMatch(/: kernels\/module\.fatbin has sha256 .* \(the file was modified or is corrupt\)/);
  });

  test('a ref fragment that no longer parses names the instruction and the parse error', () => {
    let k = 0;
    const dir = variant('ref', (j) => {
      const [i, ins] = firstKernel(j);
      k = i;
      ins.ref!.text = ins.ref!.text.replace(/return %\d+/, 'return %9999');
    });
    expect(run(dir)).toMatch(new RegExp(`: instruction ${k} \\(kernel '[^']+', from [^)]*\\): its ref fragment is not valid IR text \\(.*%9999`));
  });

  test('an undeclared buffer id in an instruction', () => {
    const dir = variant('undeclared', (j) => {
      const [, ins] = firstKernel(j);
      ins.args!.find((a) => a.buf !== undefined)!.buf = 99999;
    });
    expect(run(dir)).toMatch(/: instruction \d+ \(kernel '[^']+', from [^)]+\): it names buffer 99999, which is not declared/);
  });

  test('a plan without file checksums (an older writer) is refused with a recompile hint', () => {
    const dir = variant('old', (j) => delete j.files);
    expect(run(dir)).toMatch(/plan\.json records no checksums of its kernel files \(it was written before plans carried them\); recompile it with `paradit compile/);
  });
});
