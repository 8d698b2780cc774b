/**
 * Issue 14 item 2: a model whose external weights are absent (a graph-only export such as
 * flux-dev-2x4) can be inspected without --random-weights: `inspect` (and `inspect --target cuda`)
 * report the same shapes, ops, parameter counts and plan stats as with the weights present, and
 * say the weights are absent; commands that compute (check, compile) still demand the weights.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { FIXTURES, HAVE_FIXTURES, NO_FIXTURES_REASON } from '../fixtures';
import { ensureCli, expectUserError, removeTempDirs, runCli, tempDir, writeModelDir } from './cli-helpers';

const CFG = { ...TINY_DIT, blocks: 1 };
let withData: string;
let graphOnly: string;

beforeAll(() => {
  ensureCli();
  withData = writeModelDir(buildTinyDit(CFG), tinyDitInputs(CFG), 'weights', true);
  graphOnly = tempDir('graph-only');
  fs.copyFileSync(path.join(withData, 'model.onnx'), path.join(graphOnly, 'model.onnx'));
  fs.cpSync(path.join(withData, 'test_data_set_0'), path.join(graphOnly, 'test_data_set_0'), { recursive: true });
  expect(fs.existsSync(path.join(withData, 'model.onnx.data'))).toBe(true);
});
afterAll(() => removeTempDirs());

function json(args: string[]): Record<string, unknown> {
  const r = runCli(args);
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describe('inspect of a graph-only model', () => {
  test('reports what the model with its weights reports, and that the weights are absent', () => {
    const full = json(['inspect', withData, '--json', '--target', 'cuda']);
    const r = runCli(['inspect', graphOnly, '--json', '--target', 'cuda']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^paradit: note: the external weights are absent; inspecting the graph only/);
    const bare = JSON.parse(r.stdout) as Record<string, unknown>;
    expect(full['weights']).toBe('present');
    expect(bare['weights']).toBe('absent');
    expect(bare['randomWeights']).toBe(false);
    for (const k of ['inputs', 'outputs', 'nodeCount', 'opCounts', 'parameters', 'parameterBytes', 'blocks', 'plan']) expect(bare[k]).toEqual(full[k]);
    expect(bare['parameters']).toBeGreaterThan(0);
  });

  test('the text form says so on the parameters line', () => {
    const r = runCli(['inspect', graphOnly]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^parameters: [\d,]+ \([\d.]+ KiB\) \[weights absent: graph only\]$/m);
  });

  test('--random-weights still means seeded random weights', () => {
    expect(json(['inspect', graphOnly, '--json', '--random-weights', '3'])['weights']).toBe('random');
  });

  test('check and compile still demand the weights (exit 2 naming the file and --random-weights)', () => {
    expect(expectUserError(runCli(['check', graphOnly]))).toMatch(/model\.onnx\.data', which does not exist; put the weights file next to the model, or pass --random-weights/);
    const out = path.join(tempDir('go-plan'), 'plan');
    expect(expectUserError(runCli(['compile', graphOnly, '-o', out, '--no-nvcc']))).toMatch(/which does not exist/);
    expect(fs.existsSync(out)).toBe(false);
  });
});

const flux = path.join(FIXTURES, 'flux-dev-2x4');
(HAVE_FIXTURES && fs.existsSync(flux) ? describe : describe.skip)(`flux-dev-2x4 without --random-weights${HAVE_FIXTURES ? '' : ` (${NO_FIXTURES_REASON})`}`, () => {
  test('inspect --json works and reports 2 double-stream and 4 single-stream blocks', () => {
    const s = json(['inspect', flux, '--json']);
    expect(s['weights']).toBe('absent');
    expect(s['blocks']).toEqual([
      { kind: 'double-stream', count: 2 },
      { kind: 'single-stream', count: 4 },
    ]);
    expect(s['parameters']).toBe(1310192897);
  });
});
