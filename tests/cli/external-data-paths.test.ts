/**
 * Issue 14 item 5 (security): an external-data `location` may not leave the model's folder. An
 * absolute path, a `../` escape or a symbolic link to a file outside is refused with exit 2
 * naming the initializer, before any byte of that file is read (as ONNX's loader does since
 * CVE-2022-25882); a relative location inside the folder (also through a subfolder or a link
 * that stays inside) still loads.
 */
import fs from 'node:fs';
import path from 'node:path';
import { decodeModel, encodeModel } from '../../packages/ir/src/onnx/proto';
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { ensureCli, expectUserError, removeTempDirs, runCli, tempDir, writeModelDir } from './cli-helpers';

const CFG = { ...TINY_DIT, blocks: 1 };
let base: string;

beforeAll(() => {
  ensureCli();
  base = writeModelDir(buildTinyDit(CFG), tinyDitInputs(CFG), 'ext', true);
});
afterAll(() => removeTempDirs());

/** A copy of the model whose every external location is `loc` (the data file copied as `dataAs`). */
function withLocation(tag: string, loc: string, dataAs?: string): string {
  const dir = tempDir(tag);
  const m = decodeModel(fs.readFileSync(path.join(base, 'model.onnx')), 'model.onnx');
  let n = 0;
  for (const t of m.graph?.initializer ?? []) {
    for (const e of t.externalData ?? []) if (e.key === 'location') (e.value = loc), n++;
  }
  expect(n).toBeGreaterThan(0);
  fs.writeFileSync(path.join(dir, 'model.onnx'), encodeModel(m));
  if (dataAs) {
    fs.mkdirSync(path.dirname(path.join(dir, dataAs)), { recursive: true });
    fs.copyFileSync(path.join(base, 'model.onnx.data'), path.join(dir, dataAs));
  }
  fs.cpSync(path.join(base, 'test_data_set_0'), path.join(dir, 'test_data_set_0'), { recursive: true });
  return dir;
}

describe('external data locations that leave the model folder are refused', () => {
  for (const cmd of ['inspect', 'check'] as const) {
    test(`${cmd}: '../' escape to /usr/bin/node`, () => {
      const dir = withLocation(`esc-${cmd}`, '../../../../../../../../usr/bin/node');
      const msg = expectUserError(runCli([cmd, dir]));
      expect(msg).toMatch(/^initializer '[^']+': external_data location '(\.\.\/)+usr\/bin\/node' resolves to \/usr\/bin\/node, outside the model's folder .*; ParaDiT reads external data only from inside the model's folder \(as ONNX does since CVE-2022-25882\)/);
    });
  }

  test('an absolute location', () => {
    const dir = withLocation('abs', process.execPath);
    expect(expectUserError(runCli(['check', dir]))).toMatch(/external_data location '\/[^']*' is an absolute path;/);
  });

  test('a symbolic link inside the folder pointing outside it', () => {
    const dir = withLocation('link-out', 'model.onnx.data');
    const outside = path.join(tempDir('outside'), 'weights.data');
    fs.copyFileSync(path.join(base, 'model.onnx.data'), outside);
    fs.symlinkSync(outside, path.join(dir, 'model.onnx.data'));
    expect(expectUserError(runCli(['check', dir]))).toMatch(/external_data location 'model\.onnx\.data' is a symbolic link to .*weights\.data, outside the model's folder/);
  });

  test('inside the folder: a subfolder, and a link that stays inside, still load and check', () => {
    const sub = withLocation('sub', 'weights/w.bin', 'weights/w.bin');
    expect(runCli(['check', sub]).code).toBe(0);
    const linked = withLocation('link-in', 'alias.data', 'real.data');
    fs.symlinkSync('real.data', path.join(linked, 'alias.data'));
    expect(runCli(['check', linked]).code).toBe(0);
  });
});
