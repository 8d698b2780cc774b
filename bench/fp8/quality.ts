/**
 * The fp8 quality report (issue 16, item 4): a 28-step flow-matching denoise of one model from the
 * same noise with fp32, bf16 and fp8 plans, then the final-latent relative L2 of each pair, the
 * First Block Cache pattern at threshold 0.08 for each dtype, and the step time beside it.
 *
 *   node .gpu-work/fp8/quality.cjs MODEL [--backend cpu|cuda] [--steps 28] [--threshold 0.08]
 *        [--random-weights SEED] [--timestep-scale S] [--cli packages/cli/dist/paradit.cjs] [--json]
 *
 * Every run is `paradit denoise` (so the numbers are the CLI's): the same model inputs
 * (test_data_set_0, or the CLI's seeded inputs) and hence the same initial noise for each dtype.
 * Pattern: one character per step, C computed, . cached. Step time: wall seconds / steps of the
 * uncached run (the CPU backend interprets; on --backend cuda each step is one CUDA graph).
 * Bundle with `node bench/fp8/build.mjs`; a benchmark prints numbers, it asserts nothing.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readTensorFile } from '@paradit/ir';
import type { Tensor } from '@paradit/ir';
import { compareTensors } from '@paradit/runtime';

const DTYPES = ['fp32', 'bf16', 'fp8'] as const;
type D = (typeof DTYPES)[number];

interface Args {
  model: string;
  backend: string;
  steps: number;
  threshold: number;
  randomWeights?: string;
  timestepScale?: string;
  cli: string;
  json: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { model: '', backend: 'cpu', steps: 28, threshold: 0.08, cli: 'packages/cli/dist/paradit.cjs', json: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--backend') a.backend = v();
    else if (k === '--steps') a.steps = Number(v());
    else if (k === '--threshold') a.threshold = Number(v());
    else if (k === '--random-weights') a.randomWeights = v();
    else if (k === '--timestep-scale') a.timestepScale = v();
    else if (k === '--cli') a.cli = v();
    else if (k === '--json') a.json = true;
    else if (k.startsWith('--')) throw new Error(`unknown option ${k}`);
    else a.model = k;
  }
  if (!a.model) throw new Error('usage: quality.cjs MODEL [--backend cpu|cuda] [--steps 28] [--threshold 0.08] [--random-weights SEED] [--timestep-scale S] [--cli PATH] [--json]');
  return a;
}

interface DenoiseJson {
  readonly steps: { readonly cached: boolean }[];
  readonly cachedSteps: number;
  readonly skippedFraction: number;
  readonly seconds: number;
  readonly backend?: { readonly device?: string };
}

function denoise(a: Args, dtype: D, fbcache: boolean, save: string): DenoiseJson {
  const args = [a.cli, 'denoise', a.model, '--steps', String(a.steps), '--backend', a.backend, '--dtype', dtype, '--json', '--no-progress', '--save-latents', save];
  if (fbcache) args.push('--fbcache', String(a.threshold));
  if (a.randomWeights !== undefined) args.push('--random-weights', a.randomWeights);
  if (a.timestepScale !== undefined) args.push('--timestep-scale', a.timestepScale);
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`paradit denoise (${dtype}${fbcache ? ', fbcache' : ''}) exited ${r.status}:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as DenoiseJson;
}

function main(): void {
  const a = parseArgs(process.argv.slice(2));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-fp8-quality-'));
  const latents = new Map<D, Tensor>();
  const rows: { dtype: D; stepMs: number; pattern: string; cachedSteps: number; skipped: number; device?: string }[] = [];
  try {
    for (const d of DTYPES) {
      const plain = denoise(a, d, false, path.join(tmp, `${d}.pb`));
      latents.set(d, readTensorFile(path.join(tmp, `${d}.pb`)));
      const cached = denoise(a, d, true, path.join(tmp, `${d}-fbcache.pb`));
      rows.push({
        dtype: d,
        stepMs: (plain.seconds / a.steps) * 1000,
        pattern: cached.steps.map((s) => (s.cached ? '.' : 'C')).join(''),
        cachedSteps: cached.cachedSteps,
        skipped: cached.skippedFraction,
        ...(plain.backend?.device ? { device: plain.backend.device } : {}),
      });
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const rel = (x: D, y: D): number => compareTensors(latents.get(x)!, latents.get(y)!).relL2;
  const pairs = { fp8_vs_bf16: rel('fp8', 'bf16'), fp8_vs_fp32: rel('fp8', 'fp32'), bf16_vs_fp32: rel('bf16', 'fp32') };
  if (a.json) {
    process.stdout.write(`${JSON.stringify({ model: a.model, backend: a.backend, steps: a.steps, threshold: a.threshold, finalLatentRelL2: pairs, runs: rows })}\n`);
    return;
  }
  const lines = [
    `fp8 quality: ${a.model}, ${a.steps} steps, backend ${a.backend}${rows[0]?.device ? ` (${rows[0].device})` : ''}`,
    `final-latent rel. L2: fp8 vs bf16 ${pairs.fp8_vs_bf16.toExponential(3)}, fp8 vs fp32 ${pairs.fp8_vs_fp32.toExponential(3)}, bf16 vs fp32 ${pairs.bf16_vs_fp32.toExponential(3)}`,
    `dtype  step ms   FBCache@${a.threshold} pattern (C computed, . cached)  cached  skipped`,
    ...rows.map((r) => `${r.dtype.padEnd(5)}  ${r.stepMs.toFixed(2).padStart(8)}  ${r.pattern.padEnd(Math.max(40, a.steps))}  ${String(r.cachedSteps).padStart(6)}  ${(r.skipped * 100).toFixed(1)}%`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main();
