/**
 * Issue 14 item 7: input checks through the CLI. `--shape` naming no model input is refused (it
 * used to be ignored); a ring x ulysses degree above the token count is refused (it used to run,
 * splitting padding); `run` refuses an input file of a dtype the plan cannot take (f64 for an f32
 * plan), the same rule `check` applies, while f32 data for a bf16 plan is still converted.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tensor, readNamedTensorFile, writeTensorFile } from '@paradit/ir';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { ensureCli, expectUserError, removeTempDirs, runCli, tempDir, writeModelDir } from './cli-helpers';

const CFG = { ...TINY_DIT, blocks: 1 };
let model: string;

beforeAll(() => {
  ensureCli();
  model = writeModelDir(buildTinyDit(CFG), tinyDitInputs(CFG), 'inputs');
});
afterAll(() => removeTempDirs());

test('--shape with a name that is not a model input', () => {
  const out = path.join(tempDir('shape'), 'plan');
  const msg = expectUserError(runCli(['compile', model, '-o', out, '--no-nvcc', '--shape', 'hiden_states=1,16,8']));
  expect(msg).toMatch(/^--shape hiden_states=1,16,8: the model has no input 'hiden_states'; its inputs are hidden_states f32\[/);
  expect(fs.existsSync(out)).toBe(false);
});

test('a sequence degree above the token count', () => {
  const tokens = CFG.imageTokens + CFG.textTokens;
  const msg = expectUserError(runCli(['check', model, '--ring', String(tokens + 2)]));
  expect(msg).toContain(`splits the sequence over ${tokens + 2} ranks (ring x ulysses), but the model has only ${tokens} tokens`);
  expect(msg).toMatch(new RegExp(`use a ring x ulysses degree of at most ${tokens}$`));
  // At the token count it is accepted (every rank holds one token).
  expect(runCli(['check', model, '--ring', String(tokens)]).code).toBe(0);
});

test('run refuses an f64 input for an f32 plan, as check does; f32 data for a bf16 plan is converted', () => {
  const f32 = path.join(tempDir('f32plan'), 'plan');
  const bf16 = path.join(tempDir('bf16plan'), 'plan');
  expect(runCli(['compile', model, '-o', f32, '--no-nvcc', '--dtype', 'fp32']).code).toBe(0);
  expect(runCli(['compile', model, '-o', bf16, '--no-nvcc', '--dtype', 'bf16']).code).toBe(0);
  const copy = tempDir('f64data');
  fs.cpSync(model, copy, { recursive: true });
  const file = path.join(copy, 'test_data_set_0', 'input_0.pb');
  const t = readNamedTensorFile(file);
  writeTensorFile(file, new Tensor('f64', t.tensor.shape, Float64Array.from(t.tensor.data)), t.name);
  const msg = expectUserError(runCli(['run', f32, '--inputs', copy]));
  expect(msg).toMatch(/input_0\.pb: input 'hidden_states' of the plan is f32\[1,16,\d+\], but the file holds f64\[1,16,\d+\]; write the input in the model's dtype \(f32, f16 or bf16\), as check requires too$/);
  expect(expectUserError(runCli(['check', copy]))).toMatch(/input_0\.pb: input 'hidden_states' of the model is f32\[1,16,\d+\], but the file holds f64/);
  expect(runCli(['run', bf16, '--inputs', model, '--compare']).code).toBe(0);
});

test('a compile whose stderr is not a terminal prints one line per phase (none with --no-progress or --json)', () => {
  const out = path.join(tempDir('progress'), 'plan');
  const r = runCli(['compile', model, '-o', out, '--no-nvcc']);
  expect(r.code).toBe(0);
  const phases = [...r.stderr.matchAll(/^paradit: compile: ([a-z-]+) \(\d+\.\d s\)$/gm)].map((m) => m[1]);
  expect(phases).toEqual(['load', 'specialize', 'passes', 'dtype', 'lower', 'memory', 'weights']);
  expect(runCli(['compile', model, '-o', out, '--no-nvcc', '--no-progress']).stderr).toBe('');
  expect(runCli(['compile', model, '-o', out, '--no-nvcc', '--json']).stderr).toBe('');
});
