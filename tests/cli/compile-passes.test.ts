/**
 * Every IR-to-IR step of `compile` is a named pass (packages/compiler/src/lowering-pipeline.ts):
 * `--after NAME` prints the module after it, `--time-passes` times each, and an unknown name is
 * refused before any work with the list of names. Subprocess tests of the bundled CLI.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { compilePassNames } from '@paradit/compiler';
import { ensureCli, expectUserError, removeTempDirs, runCli, tempDir, writeModelDir } from './cli-helpers';

const CFG = { ...TINY_DIT, blocks: 2 };
let model = '';

beforeAll(() => {
  ensureCli();
  model = writeModelDir(buildTinyDit(CFG), tinyDitInputs(CFG), 'compile-passes');
});
afterAll(removeTempDirs);

test('the pipelines list the lowering steps in order, each once at top level', () => {
  const names = compilePassNames({ fbcache: true, sharded: true, dtype: 'bf16', flash: true });
  const at = (n: string): number => names.indexOf(n);
  for (const n of ['mask-token-selection', 'specialize-shapes', 'insert-cache-gate', 'dtype-policy', 'patchify-conv', 'einsum-to-matmul', 'decompose-attention', 'lower-collectives']) expect(at(n)).toBeGreaterThanOrEqual(0);
  expect(at('mask-token-selection')).toBeLessThan(at('specialize-shapes'));
  expect(at('insert-cache-gate')).toBeLessThan(at('dtype-policy'));
  expect(at('dtype-policy')).toBeLessThan(at('patchify-conv'));
  expect(at('einsum-to-matmul')).toBeLessThan(at('decompose-attention'));
  expect(at('decompose-attention')).toBeLessThan(at('lower-collectives'));
  // Without a mesh and a gate, those passes are not in the list.
  const plain = compilePassNames({ fbcache: false, sharded: false, dtype: 'f32', flash: true });
  expect(plain).not.toContain('insert-cache-gate');
});

test('--after dtype-policy prints the bf16 module; --time-passes times every lowering pass', () => {
  const out = path.join(tempDir('compile-after'), 'plan');
  const r = runCli(['compile', model, '-o', out, '--no-nvcc', '--no-progress', '--after', 'dtype-policy', '--time-passes']);
  expect(r.code).toBe(0);
  // The policy casts the f32 activations to bf16 before the first contraction.
  expect(r.stdout).toMatch(/bf16\[/);
  expect(r.stdout).toMatch(/= Cast\(/);
  expect(r.stdout).toContain(`plan ${out}`);
  for (const n of ['specialize-shapes', 'dtype-policy', 'patchify-conv', 'einsum-to-matmul', 'decompose-attention', 'lower-collectives']) expect(r.stderr).toMatch(new RegExp(`^\\s*${n}\\s+1\\s`, 'm'));
  expect(fs.existsSync(path.join(out, 'plan.json'))).toBe(true);
});

test('--after with a name compile never runs is refused before any work, listing the passes', () => {
  const out = path.join(tempDir('compile-after-bad'), 'plan');
  const r = runCli(['compile', model, '-o', out, '--no-nvcc', '--after', 'no-such-pass']);
  const msg = expectUserError(r);
  expect(msg).toContain('--after no-such-pass');
  expect(msg).toContain('dtype-policy');
  expect(fs.existsSync(out)).toBe(false);
});
