/**
 * Writes the GPU check cases (see gen.mjs): for each fragment, kernels.cu (all kernel sources),
 * case.txt (buffers, launches, outputs: read by driver.cpp) and meta.json (dtypes, shapes,
 * tolerances, bytes moved: read by compare.py). Small cases carry random inputs and the CPU
 * interpreter's outputs; the FLUX-sized bench cases let the driver fill inputs with random data
 * and are checked against PyTorch in compare.py (their data would not fit the transfer limit).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { DType, Graph, Value } from '@paradit/ir';
import { Module, Tensor, interpret, f32ToBf16Bits, f32ToF16Bits } from '@paradit/ir';
import { emitFragment } from '../../packages/codegen-cuda/src/kernels';
import { benchFragments, coverageFragments } from '../../packages/codegen-cuda/src/kernels/check-cases';
import type { CheckCase } from '../../packages/codegen-cuda/src/kernels/check-cases';
import { byteSizeOf } from '../../packages/codegen-cuda/src/kernels/c-types';
import { mulberry32 } from '../../packages/ir/src/prng';

const rng = mulberry32;

const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

function randomInput(v: Value, rand: () => number): Tensor {
  const shape = v.shape as number[];
  const n = numel(shape);
  const vals = new Array<number>(n);
  for (let k = 0; k < n; k++) {
    if (v.dtype === 'bool') vals[k] = rand() < 0.5 ? 1 : 0;
    else if (v.dtype === 'i64' || v.dtype === 'i32') vals[k] = 1 + Math.floor(rand() * 6);
    else vals[k] = rand() * 2 - 1;
  }
  return Tensor.from(v.dtype, shape, vals);
}

/** Raw little-endian device bytes of a tensor. */
function bytesOf(t: Tensor): Buffer {
  const n = t.size;
  const d = t.data;
  switch (t.dtype) {
    case 'f32':
      return Buffer.from(Float32Array.from(d).buffer);
    case 'f64':
      return Buffer.from(Float64Array.from(d).buffer);
    case 'bf16':
      return Buffer.from(Uint16Array.from(d, (x) => f32ToBf16Bits(x)).buffer);
    case 'f16':
      return Buffer.from(Uint16Array.from(d, (x) => f32ToF16Bits(x)).buffer);
    case 'i64':
      return Buffer.from(BigInt64Array.from(Array.from(d, (x) => BigInt(Math.trunc(x)))).buffer);
    case 'i32':
      return Buffer.from(Int32Array.from(d).buffer);
    case 'bool':
    case 'u8':
      return Buffer.from(Uint8Array.from(d));
    default:
      throw new Error(`no file encoding for ${t.dtype} (${n} elements)`);
  }
}

const TOL: Partial<Record<DType, number>> = { f32: 1e-4, f64: 1e-9, f16: 5e-3, bf16: 2e-2 };

function writeCase(dir: string, c: CheckCase, seed: number): void {
  fs.mkdirSync(dir, { recursive: true });
  const g: Graph = c.graph;
  const low = emitFragment(g, { namePrefix: c.name });
  const ids = new Map<Value, number>();
  const id = (v: Value): number => ids.get(v) ?? (ids.set(v, ids.size), ids.size - 1);
  const lines: string[] = ['cubin kernels.cubin'];
  const meta: Record<string, unknown> = { name: c.name, torch: c.torch ?? null, outputs: [], inputs: [], kernels: low.kernels.map((k) => k.entry) };
  const rand = rng(seed);
  const inputs = new Map<Value, Tensor>();
  const bench = c.torch !== undefined;
  let moved = 0;
  const declared = new Set<Value>();
  const declare = (v: Value): void => {
    if (declared.has(v)) return;
    declared.add(v);
    const alias = low.aliases.find((a) => a.value === v);
    const bytes = numel(v.shape as number[]) * byteSizeOf(v.dtype);
    if (alias) {
      declare(alias.of);
      lines.push(`buffer ${id(v)} ${bytes} alias ${id(alias.of)} ${alias.byteOffset}`);
      return;
    }
    if (g.inputs.includes(v) || v.constant) {
      if (bench && !v.constant) {
        lines.push(`buffer ${id(v)} ${bytes} random ${seed + id(v)} ${v.dtype}`);
        lines.push(`dump ${id(v)} in${id(v)}.bin`);
        (meta.inputs as unknown[]).push({ id: id(v), dtype: v.dtype, shape: v.shape, file: `in${id(v)}.bin` });
        return;
      }
      const t = v.constant ? v.constant.tensor() : randomInput(v, rand);
      if (!v.constant) inputs.set(v, t);
      fs.writeFileSync(path.join(dir, `in${id(v)}.bin`), bytesOf(t));
      lines.push(`buffer ${id(v)} ${bytes} file in${id(v)}.bin`);
      return;
    }
    lines.push(`buffer ${id(v)} ${bytes} zero`);
  };
  for (const v of g.inputs) declare(v);
  for (const k of low.kernels) {
    for (const v of [...k.reads, ...k.writes]) {
      declare(v);
      moved += numel(v.shape as number[]) * byteSizeOf(v.dtype);
    }
    const args = k.args.map((a) => {
      if (a.kind !== 'value') throw new Error('scalar kernel args are not used by these kernels');
      return id(a.value);
    });
    lines.push(`launch ${k.entry} ${k.grid.join(' ')} ${k.block.join(' ')} ${k.smem} ${args.length} ${args.join(' ')}`);
  }
  for (const v of g.outputs) declare(v);
  const expected = bench ? undefined : interpret(new Module(g, { '': 18 }), g.inputs.map((v) => inputs.get(v)!));
  g.outputs.forEach((v, k) => {
    lines.push(`output ${id(v)} out${k}.bin`);
    const o: Record<string, unknown> = { index: k, dtype: v.dtype, shape: v.shape, file: `out${k}.bin`, tol: TOL[v.dtype] ?? 0 };
    if (expected) {
      const t = expected[k]!;
      fs.writeFileSync(path.join(dir, `expected${k}.bin`), Buffer.from(Float64Array.from(t.data).buffer));
      o['expected'] = `expected${k}.bin`;
    }
    (meta.outputs as unknown[]).push(o);
  });
  lines.push(`iters ${bench ? 50 : 5}`);
  meta['bytes'] = moved;
  fs.writeFileSync(path.join(dir, 'case.txt'), lines.join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'meta.json'), JSON.stringify(meta, null, 1));
  fs.writeFileSync(path.join(dir, 'kernels.cu'), dedupeHeader(low.kernels.map((k) => k.source)));
}

/** One copy of the shared header (it is guarded anyway; this keeps files small). */
function dedupeHeader(sources: readonly string[]): string {
  const marker = '#endif\n';
  const first = sources[0] ?? '';
  const head = first.slice(0, first.indexOf(marker) + marker.length);
  return head + sources.map((s) => (s.startsWith(head) ? s.slice(head.length) : s)).join('\n');
}

export function generate(outDir: string): void {
  fs.rmSync(outDir, { recursive: true, force: true });
  const cases = [...coverageFragments(), ...benchFragments()];
  cases.forEach((c, k) => writeCase(path.join(outDir, c.name), c, 1000 + 17 * k));
  fs.writeFileSync(path.join(outDir, 'cases.txt'), cases.map((c) => c.name).join('\n') + '\n');
  console.log(`wrote ${cases.length} cases to ${outDir}`);
}
