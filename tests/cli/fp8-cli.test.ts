/**
 * The fp8 flags through the CLI: `check --backend cpu --dtype fp8` on the tiny DiT passes with the
 * fp8 tolerance (0.1, printed); `inspect --dtype fp8 --json` counts fp8 and kept layers with their
 * reasons and `--keep-bf16` moves layers over; `--after quantize-linears-fp8` prints the rewrite;
 * bad input (--keep-bf16 without fp8, a broken /regex/, an unknown dtype) exits 2 with what to do.
 */
import { buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { ensureCli, expectUserError, removeTempDirs, runCli, writeModelDir } from './cli-helpers';

let model = '';

beforeAll(() => {
  ensureCli();
  model = writeModelDir(buildTinyDit(), tinyDitInputs(), 'fp8-cli');
});
afterAll(removeTempDirs);

describe('fp8 through the CLI', () => {
  it('check --backend cpu --dtype fp8 passes within the fp8 tolerance', () => {
    const r = runCli(['check', model, '--backend', 'cpu', '--dtype', 'fp8']);
    expect(r.stderr).toContain('(fp8)');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/plan fp8 on cpu/);
    expect(r.stdout).toMatch(/\(tol 1\.00e-1\) ok/);
  });

  it('inspect --dtype fp8 lists fp8 and kept layers; --keep-bf16 keeps more', () => {
    const plain = JSON.parse(runCli(['inspect', model, '--dtype', 'fp8', '--json']).stdout) as { fp8: { fp8: number; bf16: number; kept: { reason: string }[] } };
    expect([plain.fp8.fp8, plain.fp8.bf16]).toEqual([14, 6]);
    expect(plain.fp8.kept.map((k) => k.reason)).toContain('final projection (after the last transformer block)');
    const kept = JSON.parse(runCli(['inspect', model, '--dtype', 'fp8', '--keep-bf16', '*blocks.0.*', '--json']).stdout) as typeof plain;
    expect([kept.fp8.fp8, kept.fp8.bf16]).toEqual([7, 13]);
    const text = runCli(['inspect', model, '--dtype', 'fp8']).stdout;
    expect(text).toMatch(/fp8 linears: 14 fp8, 6 kept in bf16/);
    const after = runCli(['inspect', model, '--dtype', 'fp8', '--after', 'quantize-linears-fp8']);
    expect(after.code).toBe(0);
    expect(after.stdout).toMatch(/quantize_fp8_rows/);
    expect(after.stdout).toMatch(/linear_fp8/);
  });

  it('rejects --keep-bf16 without fp8, a broken regex and an unknown dtype (exit 2)', () => {
    expect(expectUserError(runCli(['inspect', model, '--keep-bf16', 'x']))).toMatch(/--keep-bf16 x: only fp8 plans have layers to keep in bf16; add --dtype fp8/);
    expect(expectUserError(runCli(['check', model, '--backend', 'cpu', '--dtype', 'bf16', '--keep-bf16', 'x']))).toMatch(/only fp8 plans/);
    expect(expectUserError(runCli(['inspect', model, '--dtype', 'fp8', '--keep-bf16', '/a(/']))).toMatch(/not a valid regular expression/);
    expect(expectUserError(runCli(['check', model, '--backend', 'cpu', '--dtype', 'fp4']))).toMatch(/--dtype fp4: expected bf16, fp16, fp32 or fp8/);
  });
});
