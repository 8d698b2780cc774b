/**
 * `--rows-parallel W` through the bundled CLI (subprocesses) on both tiny VAE decoders
 * (tests/vae/*): `check` on the SPMD interpreter's simulated ranks and on compiled plans run by the
 * CPU backend's simulated ranks (fp32 and bf16) matches PyTorch's decode at W = 2 and 4 and says
 * which mesh ran; `inspect --json` reports per rank exactly the halo and all-reduce volumes counted
 * by hand below from the fixture's conv shapes; `compile` writes a sharded plan (with nvcc kernels)
 * that `run` executes within tolerance, in one process and as 2 launched processes; bad combinations exit 2 with one paragraph and leave no
 * plan behind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { buildTinyDit, tinyDitInputs } from '../models/tiny-dit';
import { ensureCli, expectUserError, removeTempDirs, runCli, tempDir, writeModelDir } from '../cli/cli-helpers';

const FOLDERS = ['flux_vae_tiny_dynamo', 'flux_vae_tiny_ts'];
const HAS_NVCC = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).status === 0;
const dirOf = (f: string): string => path.join(__dirname, f);

beforeAll(ensureCli);
afterAll(removeTempDirs);

interface CheckJson {
  ok: boolean;
  checks: { relL2: number; tolerance: number }[];
  mesh: { ring: number; ulysses: number; cfg: number } | null;
  rowsParallel: number | null;
  dtype?: string;
}

function checkJson(args: string[]): CheckJson {
  const r = runCli(['check', ...args, '--json']);
  if (r.code !== 0) throw new Error(`paradit check ${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as CheckJson;
}

describe.each(FOLDERS)('%s: check --rows-parallel', (folder) => {
  test.each([2, 4])('W = %i on the SPMD interpreter: within 1e-4 of PyTorch, and the text says which mesh ran', (w) => {
    const j = checkJson([dirOf(folder), '--rows-parallel', String(w)]);
    expect([j.ok, j.rowsParallel, j.mesh?.ring, j.mesh?.ulysses, j.mesh?.cfg]).toEqual([true, w, w, 1, 1]);
    expect(j.checks[0]!.relL2).toBeLessThan(1e-4);
    const text = runCli(['check', dirOf(folder), '--rows-parallel', String(w)]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`on rows-parallel ${w} (image rows split over mesh axis ring, ${w} ranks): ranks simulated by the SPMD interpreter`);
  });

  test.each([
    [2, 'fp32', 1e-5],
    [4, 'fp32', 1e-5],
    [2, 'bf16', 5e-2],
    [4, 'bf16', 5e-2],
  ] as const)('W = %i, %s plan on the CPU backend\'s simulated ranks: rel L2 < %s', (w, dtype, tol) => {
    const j = checkJson([dirOf(folder), '--rows-parallel', String(w), '--backend', 'cpu', '--dtype', dtype]);
    expect([j.ok, j.rowsParallel, j.mesh?.ring]).toEqual([true, w, w]);
    expect(j.checks[0]!.relL2).toBeLessThan(tol);
    expect(j.checks[0]!.tolerance).toBe(dtype === 'bf16' ? 5e-2 : 1e-3);
  });
});

/**
 * Hand count (f32, B = 1). All 15 convs are 3x3, pad 1, stride 1: one halo row from each
 * neighbour, a row of the conv's input being Cin x width x 4 bytes:
 *   conv_in (16 ch, 8 wide): 512; mid block 4 convs + up_blocks.0 4 convs (32 ch, 8 wide): 1024;
 *   upsampler conv + up_blocks.1 4 convs + conv_out (32 ch, 16 wide): 2048.
 * Rank 0 gets a row from below only, the last rank from above only, the others both. GroupNorm:
 * 14 norms, 8 groups: (mean, centred sum of squares) x 8 x 4 bytes = 64 per rank each; 9 at 8 rows
 * (mid block 4 + attention 1 + up_blocks.0 4) and 5 at 16 rows. The mid-block attention (64 tokens,
 * one head of 32): K and V of the other ranks' (W-1)/W x 64 tokens x (32 + 32) x 4 bytes.
 */
const ROW_BYTES = [512, ...new Array<number>(8).fill(1024), ...new Array<number>(6).fill(2048)];
const CONV_ROWS = [...new Array<number>(9).fill(8), ...new Array<number>(6).fill(16)];
const NORM_ROWS = [...new Array<number>(9).fill(8), ...new Array<number>(5).fill(16)];
const HALO_ROWS: Record<number, number[]> = { 2: [1, 1], 4: [1, 2, 2, 1] };

interface RowsJson {
  world: number;
  collectives: { op: string; count: number; bytesPerRank: number; bytesByRank: number[] }[];
  rowsParallel: {
    degree: number;
    meshAxis: string;
    dtype: string;
    convs: { node: string; op: string; rows: number; rowsPerRank: number; haloTop: number; haloBottom: number; haloRowsByRank: number[]; haloBytesByRank: number[] }[];
    groupNorms: { op: string; rows: number; allReduceBytesByRank: number[] }[];
    attention: { tokens: number; gatherBytesByRank: number[] }[];
    upsamples: { op: string; rows: number }[];
    totals: { haloRowsByRank: number[]; haloBytesByRank: number[]; allReduceBytesByRank: number[]; gatherBytesByRank: number[] };
  };
}

describe.each(FOLDERS)('%s: inspect --rows-parallel --json equals the hand count', (folder) => {
  test.each([2, 4])('W = %i', (w) => {
    const r = runCli(['inspect', dirOf(folder), '--rows-parallel', String(w), '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as RowsJson;
    const p = j.rowsParallel;
    expect([j.world, p.degree, p.meshAxis, p.dtype]).toEqual([w, w, 'ring', 'f32']);
    expect(p.convs.map((c) => [c.op, c.rows, c.rowsPerRank, c.haloTop, c.haloBottom])).toEqual(CONV_ROWS.map((h) => ['Conv', h, h / w, 1, 1]));
    expect(p.convs.map((c) => c.haloRowsByRank)).toEqual(CONV_ROWS.map(() => HALO_ROWS[w]));
    expect(p.convs.map((c) => c.haloBytesByRank)).toEqual(ROW_BYTES.map((b) => HALO_ROWS[w]!.map((n) => n * b)));
    expect(p.groupNorms.map((g) => [g.op, g.rows, g.allReduceBytesByRank])).toEqual(NORM_ROWS.map((h) => ['InstanceNormalization', h, new Array<number>(w).fill(64)]));
    expect(p.upsamples).toEqual([expect.objectContaining({ op: 'Resize', rows: 8 })]);
    const kv = ((w - 1) / w) * 64 * (32 + 32) * 4;
    expect(p.attention.map((a) => [a.tokens, a.gatherBytesByRank])).toEqual([[64, new Array<number>(w).fill(kv)]]);
    // Totals: edge ranks 512 + 8*1024 + 6*2048 = 20992, interior ranks twice that; 14 * 64 = 896.
    const edge = 20992;
    expect(p.totals).toEqual({
      haloRowsByRank: w === 2 ? [15, 15] : [15, 30, 30, 15],
      haloBytesByRank: w === 2 ? [edge, edge] : [edge, 2 * edge, 2 * edge, edge],
      allReduceBytesByRank: new Array<number>(w).fill(896),
      gatherBytesByRank: new Array<number>(w).fill(kv),
    });
    // What the compiled module sends: 30 non-cyclic ppermutes (15 from above, 15 from below);
    // an interior rank receives both halo sides, 2 * 20992 bytes, an edge rank only the side it
    // has a neighbour on, 20992 (rank 0 nothing from above, rank W-1 nothing from below), the
    // same as the halo plan's totals. 28 all-reduces of 8 fp32 values (ring all-reduce receives
    // 2(W-1)/W of 32 bytes each); 3 all_gathers: K, V ((W-1) x 64/W x 32 x 4 each) and the image
    // ((W-1) x 3 x 16/W x 16 x 4). Those two are the same on every rank.
    const gathers = 2 * (w - 1) * (64 / w) * 32 * 4 + (w - 1) * 3 * (16 / w) * 16 * 4;
    const reduce = Math.round(28 * ((2 * (w - 1)) / w) * 32);
    const halo = w === 2 ? [edge, edge] : [edge, 2 * edge, 2 * edge, edge];
    expect(j.collectives).toEqual([
      { op: 'all_gather', count: 3, bytesPerRank: gathers, bytesByRank: new Array<number>(w).fill(gathers) },
      { op: 'all_reduce', count: 28, bytesPerRank: reduce, bytesByRank: new Array<number>(w).fill(reduce) },
      { op: 'ppermute', count: 30, bytesPerRank: Math.max(...halo), bytesByRank: halo },
    ]);
    expect(j.collectives.find((c) => c.op === 'ppermute')!.bytesByRank).toEqual(p.totals.haloBytesByRank);
  });

  test('text form: one line per conv and GroupNorm, and the totals per rank', () => {
    const r = runCli(['inspect', dirOf(folder), '--rows-parallel', '4']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('rows-parallel 4 over mesh axis ring (f32 activations, fp32 GroupNorm statistics); per rank 0..3:');
    expect(r.stdout.match(/^ {2}conv Conv '[^']+': rows \d+ \(\d\/rank\), halo 1 above \+ 1 below; halo rows 1,2,2,1, bytes \d+,\d+,\d+,\d+$/gm)).toHaveLength(15);
    expect(r.stdout.match(/^ {2}groupnorm InstanceNormalization '[^']+': all-reduce bytes 64,64,64,64$/gm)).toHaveLength(14);
    expect(r.stdout).toContain('  total: halo rows 15,30,30,15; halo 20.5 KiB, 41.0 KiB, 41.0 KiB, 20.5 KiB; all-reduce 896 B, 896 B, 896 B, 896 B; K/V gather 12.0 KiB, 12.0 KiB, 12.0 KiB, 12.0 KiB');
  });
});

describe('compile --rows-parallel', () => {
  test('writes a sharded plan (nvcc kernels) that run executes on the CPU backend within 1e-3', () => {
    const plan = path.join(tempDir('rows-plan'), 'plan');
    const dir = dirOf('flux_vae_tiny_dynamo');
    const c = runCli(['compile', dir, '-o', plan, '--rows-parallel', '2', '--dtype', 'fp32', '--no-progress', '--json']);
    if (c.code !== 0) throw new Error(c.stderr);
    const j = JSON.parse(c.stdout) as { target: { mesh: { ring: number; ulysses: number; cfg: number } }; rowsParallel: number; stats: Record<string, number>; cubin: string | null };
    expect([j.target.mesh, j.rowsParallel]).toEqual([{ cfg: 1, ring: 2, ulysses: 1 }, 2]);
    // 30 halo send_recvs + 28 all-reduces + 3 all_gathers; only the latent is a shard slice (the
    // halos are non-cyclic, so there are no edge masks to slice).
    expect([j.stats['collectives'], j.stats['shardSlices']]).toEqual([61, 1]);
    const instrs = (JSON.parse(fs.readFileSync(path.join(plan, 'plan.json'), 'utf8')) as { program: { op: string; collective?: string; shift?: number; cyclic?: boolean }[] }).program;
    const halos = instrs.filter((i) => i.collective === 'send_recv');
    expect(halos).toHaveLength(30);
    expect(halos.every((i) => i.cyclic === false)).toBe(true);
    expect(halos.map((i) => i.shift).sort()).toEqual([...new Array<number>(15).fill(-1), ...new Array<number>(15).fill(1)]);
    // The sharded kernels (the halo'd convs included) compile with nvcc where it is installed.
    if (HAS_NVCC) expect(j.cubin).toBe('kernels/module.fatbin');
    else console.log('compile --rows-parallel: nvcc not found here; the plan holds module.cu only');
    const text = runCli(['compile', dir, '-o', plan, '--rows-parallel', '2', '--dtype', 'fp32', '--no-progress', '--no-nvcc']);
    expect(text.stdout).toMatch(/^plan .* \(cuda sm_90a, f32, rows-parallel 2: image rows split over mesh axis ring, 2 ranks\)/);
    const run = runCli(['run', plan, '--inputs', path.join(dir, 'test_data_set_0'), '--compare', '--json']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/"ok":true/);
    // The same plan as 2 processes (CPU ranks, collectives over TCP), as torchrun would start it.
    const launched = runCli(['launch', '--nproc', '2', '--', 'run', plan, '--inputs', path.join(dir, 'test_data_set_0'), '--compare', '--backend', 'cpu']);
    expect(launched.code).toBe(0);
    expect(launched.stdout).toMatch(/2 ranks launched by paradit .*\n[^]*compare sample: .* ok/);
  });

  test('refusals: a degree that does not divide the rows, a mixed mesh, --fbcache; no plan is left behind', () => {
    const out = path.join(tempDir('rows-bad'), 'plan');
    const dir = dirOf('flux_vae_tiny_ts');
    const rows16 = expectUserError(runCli(['compile', dir, '-o', out, '--rows-parallel', '16', '--no-progress']));
    expect(rows16).toMatch(/rows-parallel: Conv '[^']+': 8 rows are not divisible by rows-parallel degree 16; use a degree that divides 8/);
    expect(fs.existsSync(out)).toBe(false);
    expect(expectUserError(runCli(['check', dir, '--rows-parallel', '2', '--ulysses', '2']))).toMatch(/--rows-parallel cannot be combined with --ulysses, --ring or --cfg/);
    expect(expectUserError(runCli(['inspect', dir, '--rows-parallel', '2', '--ring', '2']))).toMatch(/--rows-parallel cannot be combined/);
    expect(expectUserError(runCli(['compile', dir, '-o', out, '--rows-parallel', '2', '--fbcache', '0.1', '--no-progress']))).toMatch(/--rows-parallel with --fbcache/);
    expect(expectUserError(runCli(['check', dir, '--rows-parallel', '0']))).toMatch(/--rows-parallel must be a positive integer .* got '0'/);
    expect(fs.existsSync(out)).toBe(false);
  });

  test('a transformer is refused with a pointer to sequence parallelism', () => {
    const dit = writeModelDir(buildTinyDit(), tinyDitInputs(), 'rows-dit');
    expect(expectUserError(runCli(['check', dit, '--rows-parallel', '2']))).toMatch(/rows-parallel 2: the module has no NCHW \(rank-4\) model input and has attention: it looks like a transformer; use --ulysses\/--ring/);
  });
});
