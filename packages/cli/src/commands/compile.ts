/**
 * `paradit compile MODEL -o PLAN --target cuda [--dtype bf16|fp16|fp32] [--random-weights [seed]] [--materialize-random-weights]
 *  [--shape name=d0,d1,..]... [--ulysses U --ring R --cfg C | --rows-parallel W] [--fbcache T] [--no-nvcc] [--after PASS] [--time-passes] [--json]`:
 * compiles an ONNX model into a plan directory (docs/plan-format.md). A failed compile leaves no
 * directory behind; bad input exits 2 with one paragraph.
 */
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { IrError, worldSize } from '@paradit/ir';
import { parseKeepPattern } from '@paradit/passes';
import { checkPlanOutput, parsePrecision, parseShapeOption } from '@paradit/codegen-cuda';
import { compilePassNames, compileToPlan } from '@paradit/compiler';
import { PassReport } from '@paradit/passes';
import { fsUserError } from '../errors';
import type { CompileResult } from '@paradit/compiler';
import { addCommDtypeFlag, addMeshFlags, addRowsParallelFlag, commDtypeFromFlags, parallelFromFlags } from '../mesh-flags';
import { randomOption } from './inspect';
import { fmtBytes } from './inspect';

interface CompileFlags {
  output: string;
  target: string;
  dtype: string;
  keepBf16: string[];
  randomWeights?: string | boolean;
  shape: string[];
  ulysses?: string;
  ring?: string;
  cfg?: string;
  rowsParallel?: string;
  commDtype?: string;
  fbcache?: string;
  nvcc: boolean;
  json?: boolean;
  progress: boolean;
  stubKernels?: boolean;
  materializeRandomWeights?: boolean;
  after?: string;
  timePasses?: boolean;
}

const mib = fmtBytes;

function formatCompile(out: string, r: CompileResult, rows: number | undefined): string {
  const s = r.plan.stats;
  const t = r.seconds;
  const lines = [
    `plan ${out} (${r.plan.target.backend} ${r.plan.target.arch}, ${r.plan.target.dtype}, ${meshLine(r.plan.target.mesh, rows)})`,
    `  instructions: ${s['kernels']} kernels (${s['kernelEntries']} entries${s['stubKernels'] ? `, ${s['stubKernels']} without CUDA body` : ''}), ${s['gemms']} gemms, ${s['copies']} copies, ${s['branches']} branches` +
      (s['collectives'] || s['shardSlices'] ? `, ${s['collectives']} collectives, ${s['shardSlices']} shard slices` : ''),
    `  memory: peak activations ${mib(s['peakActivationBytes'] ?? 0)}, weights ${mib(s['weightsBytes'] ?? 0)}${s['generatedWeights'] ? ` (${mib(s['weightsFileBytes'] ?? 0)} in weights.bin, ${s['generatedWeights']} tensors generated at load)` : ''}, io ${mib(s['ioBytes'] ?? 0)}, state ${mib(s['stateBytes'] ?? 0)}`,
    `  kernels: ${r.plan.kernels.cubin ? `${r.plan.kernels.cubin} (nvcc: sm_90a cubin + PTX)` : 'kernels/module.cu only (NVRTC at load)'}`,
    `  time: ${Object.entries(t).map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(', ')}`,
  ];
  return lines.join('\n');
}

function meshLine(m: { cfg: number; ring: number; ulysses: number }, rows: number | undefined): string {
  const w = m.cfg * m.ring * m.ulysses;
  if (w > 1 && rows !== undefined) return `rows-parallel ${rows}: image rows split over mesh axis ring, ${w} ranks`;
  return w === 1 ? 'one GPU' : `mesh ulysses ${m.ulysses} x ring ${m.ring} x cfg ${m.cfg}: ${w} ranks`;
}

/**
 * Library errors that describe unsupported input (not bugs) become IrErrors: exit 2; so do file
 * system errors, named after -o (ENOSPC from a write carries no path of its own).
 */
function asUserError(e: unknown, output: string): unknown {
  if (e instanceof Error && (e.name === 'CodegenError' || e.name === 'AttentionError')) return new IrError('E_UNSUPPORTED', e.message);
  return fsUserError(e, `-o ${output}`) ?? e;
}

/** --keep-bf16 values as patterns; only meaningful for fp8 plans. */
export function keepPatterns(values: readonly string[] | undefined, dtype: string): ReturnType<typeof parseKeepPattern>[] {
  const v = values ?? [];
  if (v.length > 0 && dtype !== 'fp8') throw new IrError('E_INPUT', `--keep-bf16 ${v[0]}: only fp8 plans have layers to keep in bf16; add --dtype fp8 or drop --keep-bf16`);
  return v.map(parseKeepPattern);
}

export function compileCommand(program: Command, _setCode: (c: number) => void): void {
  const cmd = program
    .command('compile')
    .description('compile an ONNX DiT into a plan directory (plan.json, weights.bin, kernels/)')
    .argument('<model>', 'a .onnx file, or a folder holding model.onnx')
    .requiredOption('-o, --output <dir>', 'plan directory to write (replaced atomically)')
    .option('--target <backend>', 'code generation target (cuda)', 'cuda')
    .option('--dtype <dtype>', 'storage dtype of weights and activations: bf16, fp16, fp32, or fp8 (bf16 with e4m3 linear layers in the transformer blocks; docs/fp8.md)', 'bf16')
    .option('--keep-bf16 <pattern>', 'with --dtype fp8: keep layers whose ONNX node or weight name matches in bf16; a glob (*proj_out*) or a /regex/ (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--random-weights [seed]', 'replace missing external weights with seeded random data (benchmarking)')
    .option('--materialize-random-weights', 'write --random-weights data to weights.bin instead of letting the runtime generate it at load')
    .option('--shape <name=dims>', 'static size of an input with symbolic dims, e.g. hidden_states=1,4096,64 (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--fbcache <threshold>', 'First Block Cache with this residual threshold')
    .option('--no-nvcc', 'do not compile kernels/module.fatbin (the runtime compiles module.cu with NVRTC)')
    .option('--no-progress', 'no progress bar')
    .option('--stub-kernels', 'emit kernels without CUDA bodies (a plan for `run --backend cpu` only; debugging)')
    .option('--after <pass>', "print the IR text after this pass of compile's pipelines (the last run of it) before the summary")
    .option('--time-passes', 'print the wall time of every pass to stderr')
    .option('--json', 'print one JSON object (stats and timings)');
  addMeshFlags(cmd, 'one plan that every rank of the mesh runs (world = ulysses x ring x cfg)');
  addRowsParallelFlag(cmd);
  addCommDtypeFlag(cmd);
  cmd.action(async (model: string, flags: CompileFlags) => {
    if (flags.target !== 'cuda') throw new IrError('E_INPUT', `--target ${flags.target}: only 'cuda' plans exist (the CPU backend runs cuda plans through their IR refs)`);
    const dtype = parsePrecision(flags.dtype);
    const keepBf16 = keepPatterns(flags.keepBf16, dtype);
    const parallel = parallelFromFlags(flags);
    const { mesh, rowsParallel } = parallel;
    const commDtype = commDtypeFromFlags(flags.commDtype, parallel);
    if (rowsParallel !== undefined && flags.fbcache !== undefined) throw new IrError('E_INPUT', '--rows-parallel with --fbcache: the First Block Cache gates transformer blocks, and a rows-parallel VAE decoder has none; drop --fbcache');
    let fbcache: number | undefined;
    if (flags.fbcache !== undefined) {
      fbcache = Number(flags.fbcache);
      if (!Number.isFinite(fbcache) || fbcache < 0) throw new IrError('E_INPUT', `--fbcache ${flags.fbcache}: expected a threshold >= 0 such as 0.08`);
    }
    if (flags.after !== undefined) {
      const names = compilePassNames({ fbcache: fbcache !== undefined, sharded: mesh !== undefined && worldSize(mesh) > 1, rowsParallel: rowsParallel !== undefined, commFp8: commDtype === 'fp8', dtype, flash: true });
      if (!names.includes(flags.after)) throw new IrError('E_INPUT', `--after ${flags.after}: compile runs no pass of that name; its passes are, in order: ${[...new Set(names)].join(', ')}`);
    }
    let afterText: string | undefined;
    const report = flags.timePasses ? new PassReport() : undefined;
    // The output path is checked before any work (an unwritable -o fails now, not after minutes).
    checkPlanOutput(flags.output);
    const random = randomOption(flags.randomWeights);
    if (random.randomWeights) process.stderr.write(`paradit: note: weights are seeded random data (seed ${random.randomWeights.seed}), not the model's own\n`);
    const showBar = flags.progress && !flags.json && process.stderr.isTTY === true;
    const bar = showBar ? new cliProgress.SingleBar({ format: 'compile {phase} [{bar}] {value}/{total}', stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic) : undefined;
    let started = false;
    // Not a terminal (a log file, CI): one line per phase instead of a bar, with the elapsed time.
    const lines = flags.progress && !flags.json && !showBar;
    const t0 = performance.now();
    let lastPhase = '';
    const phaseLine = (phase: string): void => {
      if (!lines || phase === lastPhase) return;
      lastPhase = phase;
      process.stderr.write(`paradit: compile: ${phase} (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
    };
    phaseLine('load');
    let r: CompileResult;
    try {
      r = await compileToPlan(model, flags.output, {
        dtype,
        keepBf16,
        shapes: parseShapeOption(flags.shape),
        ...random,
        ...(mesh ? { mesh } : {}),
        ...(rowsParallel !== undefined ? { rowsParallel: true } : {}),
        ...(commDtype ? { commDtype } : {}),
        ...(fbcache !== undefined ? { fbcache } : {}),
        nvcc: flags.nvcc ? 'auto' : false,
        stubKernels: flags.stubKernels === true,
        generateRandomWeights: flags.materializeRandomWeights !== true,
        onPhase: phaseLine,
        ...(report ? { report } : {}),
        ...(flags.after !== undefined ? { printAfter: [flags.after], dump: (_p: string, text: string) => { afterText = text; } } : {}),
        onProgress: (phase, done, total) => {
          phaseLine(phase);
          if (!bar) return;
          if (!started) {
            bar.start(total, done, { phase });
            started = true;
          }
          bar.setTotal(total);
          bar.update(done, { phase });
        },
      });
    } catch (e) {
      throw asUserError(e, flags.output);
    } finally {
      if (started) bar?.stop();
    }
    if (report) process.stderr.write(`${report.format()}\n`);
    if (afterText !== undefined && !flags.json) process.stdout.write(`${afterText}\n`);
    if (flags.json) process.stdout.write(`${JSON.stringify({ plan: flags.output, target: r.plan.target, stats: r.plan.stats, seconds: r.seconds, cubin: r.plan.kernels.cubin, rowsParallel: rowsParallel ?? null, ...(afterText !== undefined ? { after: { pass: flags.after, text: afterText } } : {}) })}\n`);
    else process.stdout.write(`${formatCompile(flags.output, r, rowsParallel)}\n`);
  });
}
