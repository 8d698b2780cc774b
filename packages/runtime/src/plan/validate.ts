/**
 * Load-time checks of a plan against the invariants of its schema (docs/plan-format.md), so a
 * plan that was edited, corrupted or truncated is refused at once with the plan, the instruction
 * and its ONNX origin named (exit 2), never later as an internal error:
 *
 *   buffers      unique ids; bytes = elements x dtype size
 *   instructions every buffer id declared; copies between equal sizes; gemm views inside their
 *                buffers and of the m/n/k sizes; kernel args declared; a branch condition a
 *                one-element bool/u8 buffer
 *   refs         the IR text parses; its graph has one input/output per ref buffer, each of
 *                that buffer's dtype and shape
 *   files        every file in plan.json's `files` has the recorded sha256 (kernels/module.cu and
 *                the kernel binary must be listed); weights.bin has weights.sha256 (load.ts)
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { isIrError, numel, parseModule } from '@paradit/ir';
import { PLAN_DTYPE_BYTES } from './bytes';
import type { BufferDecl, Instr, MatrixView, Plan } from './schema';
import { walkInstrs } from './streams';

export type Refuse = (why: string, fix: string) => never;

const RECOMPILE = 'recompile it with `paradit compile MODEL -o PLAN --target cuda`';
const EDITED = `plan.json was edited or is corrupt; ${RECOMPILE}`;

/** How an instruction is named in messages: position, op (kernel name) and ONNX origin. */
export function instrLabel(ins: Instr, at: string): string {
  const what = ins.op === 'kernel' ? `kernel '${ins.kernel}'` : ins.op === 'collective' ? `collective ${ins.collective}` : ins.op;
  return `instruction ${at} (${what}, from ${ins.origin.length ? ins.origin.join(', ') : 'no ONNX node'})`;
}

export function checkBuffers(plan: Plan, refuse: Refuse): Map<number, BufferDecl> {
  const byId = new Map<number, BufferDecl>();
  for (const b of plan.buffers) {
    if (byId.has(b.id)) refuse(`buffer id ${b.id} is declared twice ('${byId.get(b.id)!.name}' and '${b.name}')`, EDITED);
    const want = numel(b.shape) * PLAN_DTYPE_BYTES[b.dtype];
    if (b.bytes !== want) refuse(`buffer ${b.id} '${b.name}' is ${b.dtype}[${b.shape.join(',')}], which is ${want} bytes, but it declares ${b.bytes}`, EDITED);
    byId.set(b.id, b);
  }
  return byId;
}

/** Buffer ids an instruction names in its own fields (its ref's are checked with the ref). */
function namedBuffers(ins: Instr): number[] {
  switch (ins.op) {
    case 'kernel':
      return ins.args.flatMap((a) => ('buf' in a ? [a.buf] : []));
    case 'gemm':
      return [ins.a.buf, ins.b.buf, ins.out.buf, ...(ins.bias === undefined ? [] : [ins.bias]), ...(ins.scaleA === undefined ? [] : [ins.scaleA]), ...(ins.scaleB === undefined ? [] : [ins.scaleB])];
    case 'copy':
      return [ins.src, ins.dst];
    case 'collective':
      return [ins.send, ins.recv];
    case 'shard_slice':
      return [ins.src, ins.dst];
    case 'branch':
      return [ins.cond];
  }
}

function checkView(v: MatrixView, name: string, batch: number, byId: Map<number, BufferDecl>, fail: (why: string) => never): void {
  const b = byId.get(v.buf)!;
  if (v.cols > v.ld) fail(`${name} view has ${v.cols} columns but leading dimension ${v.ld}`);
  const last = v.elemOffset + (batch - 1) * v.batchStride + (v.rows - 1) * v.ld + v.cols;
  const n = numel(b.shape);
  if (last > n) fail(`${name} view (offset ${v.elemOffset}, ${v.rows}x${v.cols}, ld ${v.ld}, batch ${batch} x ${v.batchStride}) reaches element ${last} of buffer ${b.id} '${b.name}', which has ${n}`);
}

function checkGemm(ins: Extract<Instr, { op: 'gemm' }>, byId: Map<number, BufferDecl>, fail: (why: string) => never): void {
  const dims = (v: MatrixView, t: boolean): [number, number] => (t ? [v.cols, v.rows] : [v.rows, v.cols]);
  const [am, ak] = dims(ins.a, ins.transA);
  const [bk, bn] = dims(ins.b, ins.transB);
  if (am !== ins.m || ak !== ins.k || bk !== ins.k || bn !== ins.n || ins.out.rows !== ins.m || ins.out.cols !== ins.n) {
    fail(`gemm m=${ins.m} n=${ins.n} k=${ins.k}, but op(a) is ${am}x${ak}, op(b) ${bk}x${bn} and out ${ins.out.rows}x${ins.out.cols}`);
  }
  checkView(ins.a, 'a', ins.batch, byId, fail);
  checkView(ins.b, 'b', ins.batch, byId, fail);
  checkView(ins.out, 'out', ins.batch, byId, fail);
  if (ins.bias !== undefined && numel(byId.get(ins.bias)!.shape) !== ins.n) fail(`the bias buffer ${ins.bias} has ${numel(byId.get(ins.bias)!.shape)} elements, expected n = ${ins.n}`);
  checkFp8Gemm(ins, byId, fail);
}

/** An FP8 gemm (docs/fp8.md) has both scales (f32, m and n values) and e4m3 operands; no other gemm has either. */
function checkFp8Gemm(ins: Extract<Instr, { op: 'gemm' }>, byId: Map<number, BufferDecl>, fail: (why: string) => never): void {
  const fp8 = byId.get(ins.a.buf)!.dtype === 'f8e4m3fn' || byId.get(ins.b.buf)!.dtype === 'f8e4m3fn';
  const scaled = ins.scaleA !== undefined || ins.scaleB !== undefined;
  if (!fp8 && !scaled) return;
  if (ins.scaleA === undefined || ins.scaleB === undefined) fail('an FP8 gemm needs both scaleA and scaleB (per-row and per-column f32 scales)');
  if (byId.get(ins.a.buf)!.dtype !== 'f8e4m3fn' || byId.get(ins.b.buf)!.dtype !== 'f8e4m3fn') fail('a gemm with scaleA/scaleB must read f8e4m3fn a and b');
  if (ins.batch !== 1) fail(`an FP8 gemm has batch 1, got ${ins.batch}`);
  for (const [id, want, what] of [[ins.scaleA, ins.m, 'scaleA'], [ins.scaleB, ins.n, 'scaleB']] as const) {
    const b = byId.get(id)!;
    if (b.dtype !== 'f32' || numel(b.shape) !== want) fail(`${what} buffer ${id} must be f32 with ${want} values, got ${b.dtype}[${b.shape.join(',')}]`);
  }
}

/** The ref fragment parses and its graph's inputs/outputs match the ref buffers. */
function checkRef(ins: Instr, byId: Map<number, BufferDecl>, fail: (why: string) => never): void {
  const ref = ins.ref;
  if (!ref) return;
  for (const id of [...ref.inputs, ...ref.outputs]) if (!byId.has(id)) fail(`its ref names buffer ${id}, which is not declared`);
  let g;
  try {
    g = parseModule(ref.text).graph;
  } catch (e) {
    if (!isIrError(e)) throw e;
    fail(`its ref fragment is not valid IR text (${e.message})`);
  }
  const side = (vals: typeof g.inputs, ids: readonly number[], kind: string): void => {
    if (vals.length !== ids.length) fail(`its ref graph has ${vals.length} ${kind}s but the ref lists ${ids.length} ${kind} buffers`);
    vals.forEach((v, k) => {
      const b = byId.get(ids[k]!)!;
      const sameShape = v.shape.length === b.shape.length && v.shape.every((d, j) => d === b.shape[j]);
      // Plan dtypes are IR dtypes of the same name (plan-builder's planDtypeOf keeps the value's).
      if (!sameShape || v.dtype !== b.dtype) {
        fail(`ref ${kind} ${k} is ${v.dtype}[${v.shape.join(',')}] but its buffer ${b.id} '${b.name}' is ${b.dtype}[${b.shape.join(',')}]`);
      }
    });
  };
  side(g.inputs, ref.inputs, 'input');
  side(g.outputs, ref.outputs, 'output');
}

export function checkInstructions(plan: Plan, byId: Map<number, BufferDecl>, refuse: Refuse): void {
  for (const [ins, at] of walkInstrs(plan.program)) {
    const fail = (why: string): never => refuse(`${instrLabel(ins, at)}: ${why}`, EDITED);
    for (const id of namedBuffers(ins)) if (!byId.has(id)) fail(`it names buffer ${id}, which is not declared`);
    if (ins.op === 'copy' && byId.get(ins.src)!.bytes !== byId.get(ins.dst)!.bytes) fail(`it copies ${byId.get(ins.src)!.bytes} bytes into a buffer of ${byId.get(ins.dst)!.bytes}`);
    if (ins.op === 'gemm') checkGemm(ins, byId, fail);
    if (ins.op === 'branch') {
      const c = byId.get(ins.cond)!;
      if (numel(c.shape) !== 1 || (c.dtype !== 'bool' && c.dtype !== 'u8')) fail(`its condition buffer ${c.id} '${c.name}' is ${c.dtype}[${c.shape.join(',')}], expected one bool or u8`);
    }
    checkRef(ins, byId, fail);
  }
}

function sha256Of(bytes: Uint8Array | string): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

/** Every file plan.json lists has its recorded sha256; the kernel source and binary must be listed. */
export function checkFiles(dir: string, plan: Plan, refuse: Refuse): void {
  const files = plan.files;
  for (const f of [plan.kernels.source, ...(plan.kernels.cubin ? [plan.kernels.cubin] : [])]) {
    if (!(f in files)) refuse(`plan.json records no sha256 of ${f}`, EDITED);
  }
  for (const [f, want] of Object.entries(files)) {
    const p = path.join(dir, f);
    const rel = path.relative(dir, p);
    if (rel.startsWith('..') || path.isAbsolute(rel)) refuse(`plan.json lists a file outside the plan, '${f}'`, EDITED);
    if (!fs.existsSync(p)) refuse(`${f} is missing`, `copy the whole plan directory, or ${RECOMPILE}`);
    const got = sha256Of(fs.readFileSync(p));
    if (got !== want) refuse(`${f} has sha256 ${got.slice(0, 16)}…, plan.json says ${want.slice(0, 16)}… (the file was modified or is corrupt)`, RECOMPILE);
  }
}

/** The `files` entry a writer records: sha256 of each file, relative to the plan directory. */
export function planFileChecksums(dir: string, files: readonly string[]): Record<string, string> {
  return Object.fromEntries(files.map((f) => [f, sha256Of(fs.readFileSync(path.join(dir, f)))]));
}
