/**
 * `paradit compile` and `paradit run` as a user runs them (the bundled CLI in a subprocess):
 * compile a tiny DiT folder, run it on the CPU backend with --compare (exit 0), tampered weights
 * and bad flags exit 2 with one paragraph, a mesh > 1 is refused clearly, and a failed compile
 * leaves no directory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { ensureCli, expectUserError, removeTempDirs, runCli, tempDir, writeModelDir } from '../cli/cli-helpers';

let model = '';

beforeAll(() => {
  ensureCli();
  model = writeModelDir(buildTinyDit(), tinyDitInputs(), 'plan-model', true);
});
afterAll(removeTempDirs);

describe('paradit compile / run', () => {
  it('compiles (bf16) and runs with --compare on the CPU backend', () => {
    const out = path.join(tempDir('plan-out'), 'plan');
    const c = runCli(['compile', model, '-o', out, '--dtype', 'bf16', '--no-nvcc', '--json']);
    expect({ code: c.code, stderr: c.stderr }).toEqual({ code: 0, stderr: '' });
    const j = JSON.parse(c.stdout) as { stats: Record<string, number> };
    expect(j.stats['peakActivationBytes']).toBeGreaterThan(0);
    expect(fs.readdirSync(out).sort()).toEqual(['kernels', 'plan.json', 'weights.bin']);
    const saved = path.join(tempDir('plan-save'), 'outs');
    const r = runCli(['run', out, '--inputs', model, '--compare', '--json', '--save', saved]);
    expect(fs.readdirSync(saved)).toEqual(['output_0.pb']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    const checks = (JSON.parse(r.stdout) as { checks: { ok: boolean; relL2: number; tolerance: number }[] }).checks;
    expect(checks).toHaveLength(1);
    expect(checks[0]!.ok).toBe(true);
    expect(checks[0]!.tolerance).toBe(5e-2);
  });

  it('refuses tampered weights with exit 2 and one paragraph naming the checksum', () => {
    const out = path.join(tempDir('plan-tamper'), 'plan');
    expect(runCli(['compile', model, '-o', out, '--dtype', 'fp32', '--no-nvcc']).code).toBe(0);
    const w = path.join(out, 'weights.bin');
    const b = fs.readFileSync(w);
    b[0] = b[0]! ^ 1;
    fs.writeFileSync(w, b);
    const msg = expectUserError(runCli(['run', out, '--inputs', model]));
    expect(msg).toMatch(/weights\.bin has sha256 .* \(the weights were modified\); recompile it/);
  });

  it('refuses a bad mesh, an unknown dtype and a missing model, leaving nothing behind', () => {
    const parent = tempDir('plan-refuse');
    const out = path.join(parent, 'plan');
    expect(expectUserError(runCli(['compile', model, '-o', out, '--ulysses', '0']))).toMatch(/--ulysses/);
    expect(expectUserError(runCli(['compile', model, '-o', out, '--dtype', 'int4']))).toMatch(/--dtype int4: expected bf16, fp16, fp32 or fp8/);
    expectUserError(runCli(['compile', path.join(parent, 'nope'), '-o', out]));
    expect(fs.readdirSync(parent)).toEqual([]);
  });
});
