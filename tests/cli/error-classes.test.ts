/**
 * Issue 14 item 1: the CLI keeps user errors and ParaDiT bugs apart. A bad model, flag or data
 * file exits 2 with one paragraph; a pass that throws, a pass that produces invalid IR, or an
 * interpreter rule that throws exits 3 with "this is a bug in ParaDiT" naming the pass or node;
 * --debug adds the stack, mapped to the TypeScript sources. Bugs are injected through the test
 * hook PARADIT_INJECT_FAULT (packages/cli/src/fault-injection.ts), through the real bundle.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { ensureCli, expectBug, expectUserError, removeTempDirs, runCli, tempDir, writeModelDir } from './cli-helpers';

const CFG = { ...TINY_DIT, blocks: 1 };
let dir: string;

beforeAll(() => {
  ensureCli();
  dir = writeModelDir(buildTinyDit(CFG), tinyDitInputs(CFG), 'classes');
});
afterAll(() => removeTempDirs());

describe('user errors exit 2', () => {
  test('a model file that is not ONNX', () => {
    const bad = tempDir('not-onnx');
    fs.writeFileSync(path.join(bad, 'model.onnx'), 'hello');
    expect(expectUserError(runCli(['inspect', bad]))).toMatch(/not a valid ONNX model/);
  });

  test('a usage error is one paragraph pointing at --help, not the whole help', () => {
    const r = runCli(['inspect', dir, '--no-such-flag']);
    const msg = expectUserError(r);
    expect(msg).toBe("unknown option '--no-such-flag'\n(run 'paradit inspect --help' for its options)");
    expect(r.stderr).not.toMatch(/Usage:/);
    expect(expectUserError(runCli(['compile', dir]))).toMatch(/^required option '-o, --output <dir>' not specified\n\(run 'paradit compile --help'/);
    expect(expectUserError(runCli(['frobnicate']))).toMatch(/^unknown command 'frobnicate'\n\(run 'paradit help'/);
  });

  test('an unknown fault kind is itself a user error', () => {
    expect(expectUserError(runCli(['inspect', dir], { PARADIT_INJECT_FAULT: 'nope' }))).toMatch(/PARADIT_INJECT_FAULT=nope: expected one of pass-throws/);
  });
});

describe('bugs in ParaDiT exit 3 and name the culprit', () => {
  test('a pass that throws a TypeError', () => {
    const msg = expectBug(runCli(['inspect', dir], { PARADIT_INJECT_FAULT: 'pass-throws' }));
    expect(msg).toMatch(/^pass 'inject-fault' failed: Cannot read properties of undefined/);
  });

  test('a pass that produces invalid IR (its input verified)', () => {
    const msg = expectBug(runCli(['inspect', dir], { PARADIT_INJECT_FAULT: 'pass-invalid-ir' }));
    expect(msg).toMatch(/^pass 'inject-fault' produced invalid IR \(its input verified; the pass is at fault\): IR verification failed/);
  });

  test("an interpreter rule that throws names the node and its op", () => {
    const msg = expectBug(runCli(['inspect', dir], { PARADIT_INJECT_FAULT: 'rule-throws' }));
    expect(msg).toMatch(/^\w+ '[^']*' \(the interpreter's \w+ rule\): injected fault in the rule$/);
  });

  test('--debug prints the stack, mapped to the TypeScript sources', () => {
    const r = runCli(['--debug', 'inspect', dir], { PARADIT_INJECT_FAULT: 'pass-throws' });
    expectBug(r, true);
    expect(r.stderr).toMatch(/packages\/cli\/src\/fault-injection\.ts:\d+/);
    expect(r.stderr).not.toMatch(/paradit\.cjs:\d+/);
  });
});
