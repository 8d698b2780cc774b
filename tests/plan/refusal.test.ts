/**
 * The runtime refuses plans it cannot run, with a message that names the reason: tampered or
 * truncated weights, another format version, not a plan, a missing file, a plan for another
 * backend or architecture. And a compile that fails midway leaves no directory behind (atomicity).
 */
import fs from 'node:fs';
import path from 'node:path';
import { GraphBuilder, Module, Tensor, interpret, isIrError } from '@paradit/ir';
import { coverageError, refusedNodes, writePlan } from '@paradit/codegen-cuda';
import { compileModule } from '@paradit/compiler';
import { loadPlan } from '@paradit/runtime';
import { buildTinyDit } from '../models/tiny-dit';
import { compilePlanDir, planMeta, tempDir } from './helpers';

let good = '';

/** A fresh copy of a good plan directory, edited by `edit`. */
function variant(edit: (dir: string) => void): string {
  const dir = path.join(tempDir('paradit-refuse-'), 'plan');
  fs.cpSync(good, dir, { recursive: true });
  edit(dir);
  return dir;
}

const editJson = (dir: string, f: (j: Record<string, unknown>) => void): void => {
  const p = path.join(dir, 'plan.json');
  const j = JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>;
  f(j);
  fs.writeFileSync(p, JSON.stringify(j));
};

beforeAll(async () => {
  good = (await compilePlanDir(buildTinyDit(), 'f32')).dir;
});

describe('loadPlan refuses', () => {
  it('loads the untouched plan', () => {
    expect(loadPlan(good).plan.version).toBe(3);
  });

  it('tampered weights (one byte flipped): checksum mismatch', () => {
    const dir = variant((d) => {
      const p = path.join(d, 'weights.bin');
      const b = fs.readFileSync(p);
      b[100] = b[100]! ^ 0xff;
      fs.writeFileSync(p, b);
    });
    expect(() => loadPlan(dir)).toThrow(/weights\.bin has sha256 .* plan\.json says .*modified/);
    // Skipping the check is the caller's explicit choice.
    expect(() => loadPlan(dir, { verifyWeights: false })).not.toThrow();
  });

  it('truncated weights: size mismatch, even without the checksum', () => {
    const dir = variant((d) => fs.truncateSync(path.join(d, 'weights.bin'), 1000));
    expect(() => loadPlan(dir, { verifyWeights: false })).toThrow(/weights\.bin has 1000 bytes, plan\.json says \d+/);
  });

  it('another format version', () => {
    const dir = variant((d) => editJson(d, (j) => (j.version = 2)));
    expect(() => loadPlan(dir)).toThrow(/plan format version 2 is not supported \(this runtime reads version 3\)/);
  });

  it('another format', () => {
    const dir = variant((d) => editJson(d, (j) => (j.format = 'onnx')));
    expect(() => loadPlan(dir)).toThrow(/format "onnx", expected 'paradit-plan'/);
  });

  it('a plan.json that fails the schema', () => {
    const dir = variant((d) => editJson(d, (j) => delete j.buffers));
    expect(() => loadPlan(dir)).toThrow(/does not match the version 3 schema \(buffers/);
  });

  it('a directory without plan.json, and missing kernel source', () => {
    expect(() => loadPlan(tempDir())).toThrow(/no plan\.json/);
    const dir = variant((d) => fs.rmSync(path.join(d, 'kernels', 'module.cu')));
    expect(() => loadPlan(dir)).toThrow(/kernels\/module\.cu is missing/);
  });

  it('another architecture or backend for the cuda backend', () => {
    const stub = variant(() => undefined);
    expect(() => loadPlan(stub, { backend: 'cuda', arch: 'sm_80' })).toThrow(/compiled for sm_90a but this GPU is sm_80/);
    const cpu = variant((d) => editJson(d, (j) => ((j.target as { backend: string }).backend = 'cpu')));
    expect(() => loadPlan(cpu, { backend: 'cuda', arch: 'sm_90a' })).toThrow(/targets the cpu backend, not cuda/);
    // The CPU backend runs any plan through its refs.
    expect(() => loadPlan(cpu, { backend: 'cpu' })).not.toThrow();
  });
});

describe('atomic writes', () => {
  it('a compile that fails midway leaves no directory (and no temp dir) behind', async () => {
    const parent = tempDir('paradit-atomic-');
    const target = path.join(parent, 'plan');
    const c = compileModule(buildTinyDit(), { dtype: 'f32' });
    await expect(
      writePlan(target, c.built, c.memory, planMeta('f32'), {
        nvcc: false,
        beforeCommit: (tmp) => {
          expect(fs.existsSync(path.join(tmp, 'weights.bin'))).toBe(true);
          throw new Error('simulated failure after the weights were written');
        },
      }),
    ).rejects.toThrow(/simulated failure/);
    expect(fs.readdirSync(parent)).toEqual([]);
  });

  it('a failed recompile leaves the previous plan untouched', async () => {
    const parent = tempDir('paradit-atomic-');
    const target = path.join(parent, 'plan');
    const c = compileModule(buildTinyDit(), { dtype: 'f32' });
    await writePlan(target, c.built, c.memory, planMeta('f32'), { nvcc: false });
    const before = fs.readFileSync(path.join(target, 'plan.json'), 'utf8');
    await expect(writePlan(target, c.built, c.memory, planMeta('f32'), { nvcc: 'false-nvcc-that-does-not-exist' })).rejects.toThrow(/could not start nvcc/);
    expect(fs.readFileSync(path.join(target, 'plan.json'), 'utf8')).toBe(before);
    expect(fs.readdirSync(parent)).toEqual(['plan']);
  });

  it('refuses to replace a directory that is not a plan', async () => {
    const parent = tempDir('paradit-atomic-');
    const target = path.join(parent, 'precious');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'notes.txt'), 'keep me');
    const c = compileModule(buildTinyDit(), { dtype: 'f32' });
    await expect(writePlan(target, c.built, c.memory, planMeta('f32'), { nvcc: false })).rejects.toThrow(/exists and is not a plan directory/);
    expect(fs.readFileSync(path.join(target, 'notes.txt'), 'utf8')).toBe('keep me');
    expect(fs.readdirSync(parent)).toEqual(['precious']);
  });
});

describe('ops without a CUDA kernel', () => {
  function cumsum(): Module {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: [4, 8] });
    const [y] = b.add('CumSum', [x, b.constant(Tensor.from('i64', [], [1]))], {}, { name: 'node_cumsum', outputNames: ['y'] });
    return new Module(b.build([y!]), { '': 18 });
  }

  it('refuse to compile with one IrError naming every such node and the way out', () => {
    // A CumSum whose axis is a step input cannot get a kernel (its loop is fixed at compile time):
    // both nodes are listed, not just the first the fragment emitter meets.
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: [4, 8] });
    const ax = b.input('axis', { dtype: 'i64', shape: [] });
    const [y1] = b.add('CumSum', [x, ax], {}, { name: 'cs_a', outputNames: ['y1'] });
    const [y2] = b.add('CumSum', [b.add('Neg', [x], {}, { name: 'neg' })[0]!, ax], {}, { name: 'cs_b', outputNames: ['y2'] });
    let err: unknown;
    try {
      compileModule(new Module(b.build([y1!, y2!]), { '': 18 }), { dtype: 'f32' });
    } catch (e) {
      err = e;
    }
    expect(isIrError(err)).toBe(true);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^2 nodes have no CUDA kernel:/);
    expect(msg).toMatch(/CumSum 'cs_a': input 1 \(axis\) must be a compile-time constant/);
    expect(msg).toMatch(/CumSum 'cs_b': input 1 \(axis\) must be a compile-time constant/);
    expect(msg).toMatch(/--stub-kernels/);
  });

  it('ops the lowering table refuses are all listed before lowering (NonZero)', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: [4, 8] });
    const [a] = b.add('NonZero', [x], {}, { name: 'nz_a', outputNames: ['a'] });
    const [c] = b.add('NonZero', [b.add('Neg', [x], {}, { name: 'neg' })[0]!], {}, { name: 'nz_b', outputNames: ['c'] });
    const lines = refusedNodes(new Module(b.build([a!, c!]), { '': 18 }));
    expect(lines).toEqual([expect.stringMatching(/^NonZero 'nz_a': its output shape depends on the data/), expect.stringMatching(/^NonZero 'nz_b': /)]);
    expect(coverageError(lines)!.message).toMatch(/^2 nodes have no CUDA kernel:\n  NonZero 'nz_a'/);
  });

  it('CumSum, once refused, now compiles to a CUDA kernel (indexed path)', () => {
    expect(() => compileModule(cumsum(), { dtype: 'f32' })).not.toThrow();
  });

  it('compile with --stub-kernels into a plan the CPU backend runs (and the CUDA loader refuses)', async () => {
    const m = cumsum();
    const { backend, dir } = await compilePlanDir(m, 'f32', { stubKernels: true });
    const x = Tensor.from('f32', [4, 8], Array.from({ length: 32 }, (_, i) => i % 5));
    const got = (await backend.step(new Map([['x', x]]))).get('y')!;
    expect(Array.from(got.data)).toEqual(Array.from(interpret(m, [x])[0]!.data));
    expect(() => loadPlan(dir, { backend: 'cuda', arch: 'sm_90a' })).toThrow(/have no CUDA body/);
  });
});
