/**
 * The mesh flags of `paradit check` and `paradit inspect` in a subprocess: `check DIR --ulysses U
 * --ring R --cfg C` compiles for the mesh and runs simulated ranks (exit 0 on the tiny DiT built
 * in code, written by the exporter, with a text padding mask and a CFG batch of 2); bad degrees
 * and meshes that cannot apply exit 2 with one paragraph naming the flag, or the attention node
 * and the degrees that work; `inspect --json` reports world and collectives.
 */
import { TINY_DIT, buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { ensureCli, expectUserError, removeTempDirs, runCli, writeModelDir } from './cli-helpers';

// 4 heads, batch 2 ([uncond; cond]), 13 image + 6 text tokens (uneven at degree 4), text mask.
const CFG = { ...TINY_DIT, heads: 4, batch: 2, mask: true, imageTokens: 13, blocks: 1 };
const ONE = { ...CFG, batch: 1 };
let dir = '';
let single = '';

beforeAll(() => {
  ensureCli();
  dir = writeModelDir(buildTinyDit(CFG), tinyDitInputs(CFG), 'mesh', true);
  single = writeModelDir(buildTinyDit(ONE), tinyDitInputs(ONE), 'mesh-b1');
});
afterAll(() => removeTempDirs());

describe('paradit check with a mesh', () => {
  test.each([
    [['--ulysses', '2']],
    [['--ring', '4']],
    [['--ulysses', '2', '--ring', '2', '--cfg', '2']],
  ])('%j: every rank simulated, within tolerance (exit 0)', (flags) => {
    const r = runCli(['check', dir, ...flags, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout) as { ok: boolean; checks: { relL2: number; tolerance: number }[] };
    expect(rep.ok).toBe(true);
    expect(rep.checks).toHaveLength(1);
    expect(rep.checks[0]!.relL2).toBeLessThan(1e-5);
  });

  test.each([
    [['--ulysses', '0'], "--ulysses must be a positive integer (the number of ranks on that mesh axis), got '0'"],
    [['--ring', 'two'], "--ring must be a positive integer (the number of ranks on that mesh axis), got 'two'"],
    [['--cfg', '-1'], "--cfg must be a positive integer (the number of ranks on that mesh axis), got '-1'"],
    [['--ulysses', '1.5'], "--ulysses must be a positive integer (the number of ranks on that mesh axis), got '1.5'"],
  ])('bad degree %j exits 2 naming the flag', (flags, message) => {
    expect(expectUserError(runCli(['check', dir, ...flags]))).toContain(message);
  });

  test('heads not divisible by --ulysses: the message names the attention node and the degrees that work', () => {
    const msg = expectUserError(runCli(['check', dir, '--ulysses', '3']));
    expect(msg).toMatch(/attention '[^']+': 4 heads are not divisible by ulysses degree 3; use --ring or a degree that divides 4 \(1, 2, 4\)/);
  });

  test('--cfg 2 on a batch of 1 says why and what works', () => {
    expect(expectUserError(runCli(['check', single, '--cfg', '2']))).toMatch(/--cfg 2 splits an \[uncond; cond\] batch over 2 ranks, but attention '.*' runs on batch 1.*use --cfg 1/);
  });
});

describe('paradit inspect with a mesh', () => {
  test('--json adds world and the collectives of one step', () => {
    const r = runCli(['inspect', dir, '--ulysses', '2', '--cfg', '2', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { world: number; mesh: object; collectives: { op: string; count: number; bytesPerRank: number }[] };
    expect(out.world).toBe(4);
    expect(out.mesh).toEqual({ cfg: 2, ring: 1, ulysses: 2 });
    const ops = out.collectives.map((c) => c.op);
    expect(ops).toContain('all_to_all');
    expect(ops).toContain('all_gather');
    for (const c of out.collectives) expect(c.bytesPerRank).toBeGreaterThan(0);
    // 4 all-to-alls per attention layer (q, k, v in, output back), one layer.
    expect(out.collectives.find((c) => c.op === 'all_to_all')!.count).toBe(4);
  });

  test('a bad degree exits 2 naming the flag', () => {
    expect(expectUserError(runCli(['inspect', dir, '--ring', '0', '--json']))).toContain("--ring must be a positive integer");
  });
});
