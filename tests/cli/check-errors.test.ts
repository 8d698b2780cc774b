/**
 * `paradit check` and `paradit inspect` as a user runs them (node packages/cli/dist/paradit.cjs in
 * a subprocess): bad input exits 2 with one paragraph that says what is wrong and where, never a
 * stack trace; an output that disagrees with its reference exits 1. Models are the tiny DiT built
 * in code (tests/models/tiny-dit.ts) written by the ONNX exporter, then damaged one way per test.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Tensor, readTensorFile, writeTensorFile } from '@paradit/ir';
import { encodeModel } from '../../packages/ir/src/onnx/proto';
import type { GraphP } from '../../packages/ir/src/onnx/proto';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { ensureCli, expectUserError, removeTempDirs, runCli, tempDir, writeModelDir } from './cli-helpers';

const CFG = { ...TINY_DIT, blocks: 1 };

/** A fresh copy of the tiny DiT's folder (weights external when asked). */
function modelDir(tag: string, externalData = false): string {
  return writeModelDir(buildTinyDit(CFG), tinyDitInputs(CFG), tag, externalData);
}

beforeAll(() => ensureCli());
afterAll(() => removeTempDirs());

describe('paradit check: bad input exits 2 with one paragraph', () => {
  test('a truncated model.onnx', () => {
    const dir = modelDir('truncated');
    const file = path.join(dir, 'model.onnx');
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const msg = expectUserError(runCli(['check', dir]));
    expect(msg).toMatch(/model\.onnx is not a valid ONNX model: .+; the file may be truncated or not an ONNX protobuf/);
  });

  test('a corrupt model.onnx (not a protobuf)', () => {
    const dir = modelDir('corrupt');
    fs.writeFileSync(path.join(dir, 'model.onnx'), Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]));
    expect(expectUserError(runCli(['check', dir]))).toMatch(/model\.onnx is not a valid ONNX model/);
    fs.writeFileSync(path.join(dir, 'model.onnx'), '{"not": "onnx"}\n');
    expect(expectUserError(runCli(['inspect', dir]))).toMatch(/not a valid ONNX model/);
  });

  test('unsupported ops: every one is listed at once, with its nodes', () => {
    const vi = (name: string) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 2 }] } } } });
    const g: GraphP = {
      input: [vi('x')],
      output: [vi('z')],
      node: [
        { opType: 'FooBar', input: ['x'], output: ['y'], attribute: [], name: 'foo_1', domain: '' },
        { opType: 'NotAnOp', input: ['y'], output: ['w'], attribute: [], name: 'bad_2', domain: '' },
        { opType: 'Relu', input: ['w'], output: ['z'], attribute: [], name: 'relu', domain: '' },
      ],
    };
    const dir = tempDir('unsupported');
    fs.writeFileSync(path.join(dir, 'model.onnx'), encodeModel({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], producerName: 'test', graph: g, functions: [] }));
    fs.mkdirSync(path.join(dir, 'test_data_set_0'));
    writeTensorFile(path.join(dir, 'test_data_set_0', 'input_0.pb'), Tensor.from('f32', [2], [1, 2]), 'x');
    const msg = expectUserError(runCli(['check', dir]));
    expect(msg).toMatch(/ops FooBar, NotAnOp are not supported/);
    expect(msg).toContain("'foo_1'");
    expect(msg).toContain("'bad_2'");
    expect(expectUserError(runCli(['inspect', dir, '--json']))).toMatch(/ops FooBar, NotAnOp are not supported/);
  });

  test('a missing folder or file', () => {
    const gone = path.join(tempDir('missing'), 'nothing-here');
    expect(expectUserError(runCli(['check', gone]))).toContain(`${gone} is not a folder`);
    expect(expectUserError(runCli(['inspect', `${gone}.onnx`]))).toContain('nothing-here');
  });

  test('missing external data names the file it needs', () => {
    const dir = modelDir('external', true);
    expect(fs.existsSync(path.join(dir, 'model.onnx.data'))).toBe(true);
    fs.rmSync(path.join(dir, 'model.onnx.data'));
    expect(expectUserError(runCli(['check', dir]))).toContain('model.onnx.data');
  });

  test('test data whose shape does not match the model input', () => {
    const dir = modelDir('shapes');
    const file = path.join(dir, 'test_data_set_0', 'input_0.pb');
    writeTensorFile(file, Tensor.from('f32', [1, 3, CFG.inChannels], new Array<number>(3 * CFG.inChannels).fill(0.5)), 'hidden_states');
    const msg = expectUserError(runCli(['check', dir]));
    expect(msg).toContain("input 'hidden_states' of the model is f32[1,16,8], but the file holds f32[1,3,8]");
    expect(msg).toContain('input_0.pb');
  });

  test('a bad --tolerance', () => {
    expect(expectUserError(runCli(['check', modelDir('tolerance'), '--tolerance', 'tiny']))).toMatch(/--tolerance must be a non-negative number/);
  });
});

describe('paradit check: an output mismatch exits 1', () => {
  test('a reference output off by 10% is reported as MISMATCH, with its error', () => {
    const dir = modelDir('mismatch');
    const file = path.join(dir, 'test_data_set_0', 'output_0.pb');
    const ref = readTensorFile(file);
    writeTensorFile(file, Tensor.from(ref.dtype, ref.shape, Array.from(ref.data, (x) => x * 1.1)), 'sample');
    const r = runCli(['check', dir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/test_data_set_0 sample f32\[1,16,8\]: max \|err\| .*rel L2 9\.\d+e-2 .*MISMATCH/);
    expect(r.stdout).toMatch(/1 of 1 outputs out of tolerance/);
    expect(r.stderr).toBe('');
    // --json says the same in one object.
    const j = runCli(['check', dir, '--json']);
    expect(j.code).toBe(1);
    const rep = JSON.parse(j.stdout) as { ok: boolean; checks: { ok: boolean; relL2: number }[] };
    expect(rep.ok).toBe(false);
    expect(rep.checks[0]!.relL2).toBeGreaterThan(0.05);
  });

  test('the unchanged folder passes (exit 0)', () => {
    const r = runCli(['check', modelDir('ok')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/all 1 outputs within tolerance/);
  });
});
