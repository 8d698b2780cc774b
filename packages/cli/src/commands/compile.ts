/**
 * `paradit compile MODEL -o PLAN --target cuda [--dtype bf16|fp16|fp32] [--random-weights [seed]] [--materialize-random-weights]
 *  [--shape name=d0,d1,..]... [--ulysses U --ring R --cfg C | --rows-parallel W] [--fbcache T] [--no-nvcc] [--json]`:
 * compiles an ONNX model into a plan directory (docs/plan-format.md). A failed compile leaves no
 * directory behind; bad input exits 2 with one paragraph.
 */
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { IrError } from '@paradit/ir';
import { checkPlanOutput, compileToPlan, parsePrecision, parseShapeOption } from '@paradit/codegen-cuda';
import { fsUserError } from '../errors';
import type { CompileResult } from '@paradit/codegen-cuda';
import { addMeshFlags, addRowsParallelFlag, parallelFromFlags } from '../mesh-flags';
import { randomOption } from './inspect';
import { fmtBytes } from './inspect';

interface CompileFlags {
  output: string;
  target: string;
  dtype: string;
  randomWeights?: string | boolean;
  shape: string[];
  ulysses?: string;
  ring?: string;
  cfg?: string;
  rowsParallel?: string;
  fbcache?: string;
  nvcc: boolean;
  json?: boolean;
  progress: boolean;
  stubKernels?: boolean;
  materializeRandomWeights?: boolean;
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

export function compileCommand(program: Command, _setCode: (c: number) => void): void {
  const cmd = program
    .command('compile')
    .description('compile an ONNX DiT into a plan directory (plan.json, weights.bin, kernels/)')
    .argument('<model>', 'a .onnx file, or a folder holding model.onnx')
    .requiredOption('-o, --output <dir>', 'plan directory to write (replaced atomically)')
    .option('--target <backend>', 'code generation target (cuda)', 'cuda')
    .option('--dtype <dtype>', 'storage dtype of weights and activations: bf16, fp16 or fp32', 'bf16')
    .option('--random-weights [seed]', 'replace missing external weights with seeded random data (benchmarking)')
    .option('--materialize-random-weights', 'write --random-weights data to weights.bin instead of letting the runtime generate it at load')
    .option('--shape <name=dims>', 'static size of an input with symbolic dims, e.g. hidden_states=1,4096,64 (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--fbcache <threshold>', 'First Block Cache with this residual threshold')
    .option('--no-nvcc', 'do not compile kernels/module.fatbin (the runtime compiles module.cu with NVRTC)')
    .option('--no-progress', 'no progress bar')
    .option('--stub-kernels', 'emit kernels without CUDA bodies (a plan for `run --backend cpu` only; debugging)')
    .option('--json', 'print one JSON object (stats and timings)');
  addMeshFlags(cmd, 'one plan that every rank of the mesh runs (world = ulysses x ring x cfg)');
  addRowsParallelFlag(cmd);
  cmd.action(async (model: string, flags: CompileFlags) => {
    if (flags.target !== 'cuda') throw new IrError('E_INPUT', `--target ${flags.target}: only 'cuda' plans exist (the CPU backend runs cuda plans through their IR refs)`);
    const dtype = parsePrecision(flags.dtype);
    const { mesh, rowsParallel } = parallelFromFlags(flags);
    if (rowsParallel !== undefined && flags.fbcache !== undefined) throw new IrError('E_INPUT', '--rows-parallel with --fbcache: the First Block Cache gates transformer blocks, and a rows-parallel VAE decoder has none; drop --fbcache');
    let fbcache: number | undefined;
    if (flags.fbcache !== undefined) {
      fbcache = Number(flags.fbcache);
      if (!Number.isFinite(fbcache) || fbcache < 0) throw new IrError('E_INPUT', `--fbcache ${flags.fbcache}: expected a threshold >= 0 such as 0.08`);
    }
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
        shapes: parseShapeOption(flags.shape),
        ...random,
        ...(mesh ? { mesh } : {}),
        ...(rowsParallel !== undefined ? { rowsParallel: true } : {}),
        ...(fbcache !== undefined ? { fbcache } : {}),
        nvcc: flags.nvcc ? 'auto' : false,
        stubKernels: flags.stubKernels === true,
        generateRandomWeights: flags.materializeRandomWeights !== true,
        onPhase: phaseLine,
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
    if (flags.json) process.stdout.write(`${JSON.stringify({ plan: flags.output, target: r.plan.target, rowsParallel: rowsParallel ?? null, stats: r.plan.stats, seconds: r.seconds, cubin: r.plan.kernels.cubin })}\n`);
    else process.stdout.write(`${formatCompile(flags.output, r, rowsParallel)}\n`);
  });
}
