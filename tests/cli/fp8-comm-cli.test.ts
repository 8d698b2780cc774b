/**
 * --comm-dtype fp8 through the CLI (docs/fp8.md): `check` with the ranks simulated and with a CPU
 * plan passes within 0.1; `inspect --json` reports the bytes each rank receives before and after
 * (hand-checked for the tiny DiT); a flag without a sequence mesh, under rows-parallel, or with an
 * unknown dtype exits 2 saying what to do; compile --after quantize-comm-fp8 prints the rewrite.
 */
import { buildTinyDit, tinyDitInputs, TINY_DIT } from '../models/tiny-dit';
import { ensureCli, expectUserError, removeTempDirs, runCli, writeModelDir } from './cli-helpers';

let model = '';

beforeAll(() => {
  ensureCli();
  model = writeModelDir(buildTinyDit(), tinyDitInputs(), 'fp8-comm-cli');
});
afterAll(removeTempDirs);

describe('--comm-dtype fp8 through the CLI', () => {
  it('check: simulated ranks and a CPU plan pass within the fp8 bound', () => {
    const sim = runCli(['check', model, '--ulysses', '2', '--comm-dtype', 'fp8']);
    expect(sim.code).toBe(0);
    expect(sim.stdout).toMatch(/\(tol 1\.00e-1\) ok/);
    const plan = runCli(['check', model, '--backend', 'cpu', '--ring', '2', '--dtype', 'bf16', '--comm-dtype', 'fp8']);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/ring 2/);
  });

  it('inspect --json: bytes per rank before and after, hand-checked', () => {
    const r = JSON.parse(runCli(['inspect', model, '--ulysses', '2', '--comm-dtype', 'fp8', '--json']).stdout) as {
      collectives: { op: string; count: number; bytesPerRank: number; bytesByRank: number[] }[];
      commDtype: { dtype: string; payloads: number; bytesPerRankBefore: number; bytesPerRankAfter: number };
    };
    const { blocks, heads, headDim, imageTokens, textTokens } = TINY_DIT;
    // Per block 4 payloads (q, k, v, out), each [1, heads, tokens/2, headDim] f32 per rank; an
    // all_to_all over 2 ranks receives half of it: f32 4 B per element before, after 1 B plus a
    // 4 B scale per row of headDim.
    const elems = (heads * (imageTokens + textTokens) * headDim) / 2;
    const before = blocks * 4 * (elems / 2) * 4;
    const after = blocks * 4 * ((elems / 2) * 1 + (elems / headDim / 2) * 4);
    const a2a = r.collectives.find((c) => c.op === 'all_to_all')!;
    expect(r.commDtype.payloads).toBe(blocks * 4);
    // Both ranks of the Ulysses group receive the same (bytesByRank: per rank).
    expect(a2a).toEqual({ op: 'all_to_all', count: blocks * 8, bytesPerRank: after, bytesByRank: [after, after] });
    expect(r.commDtype.bytesPerRankBefore - r.commDtype.bytesPerRankAfter).toBe(before - after);
  });

  it('compile --after quantize-comm-fp8 prints the e4m3 transfers', () => {
    const r = runCli(['compile', model, '-o', `${model}-plan`, '--ulysses', '2', '--comm-dtype', 'fp8', '--stub-kernels', '--no-nvcc', '--after', 'quantize-comm-fp8']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/dequantize_fp8_rows/);
    expect(r.stdout).toMatch(/all_to_all\(%\d+\) .*: f8e4m3fn/);
  });

  it('refuses it without a sequence mesh, under rows-parallel and for another dtype (exit 2)', () => {
    expect(expectUserError(runCli(['check', model, '--comm-dtype', 'fp8']))).toMatch(/without --ulysses N or --ring N .* add one, or drop --comm-dtype/);
    expect(expectUserError(runCli(['inspect', model, '--cfg', '2', '--comm-dtype', 'fp8']))).toMatch(/--comm-dtype fp8 quantizes the Ulysses/);
    expect(expectUserError(runCli(['inspect', model, '--rows-parallel', '2', '--comm-dtype', 'fp8']))).toMatch(/rows-parallel moves conv halos/);
    expect(expectUserError(runCli(['compile', model, '-o', `${model}-bad`, '--ulysses', '2', '--comm-dtype', 'bf16']))).toMatch(/--comm-dtype bf16: expected fp8/);
  });
});
