/**
 * `paradit denoise DIR --steps N [--fbcache T] ...`: the flow-matching Euler loop over the
 * compiled step (default pipeline, context parallelism for a mesh, the First Block Cache gate),
 * starting from test_data_set_0's inputs. The CLI compiles and builds the executor; the loop
 * itself is @paradit/runtime's `denoise` (which never imports the compiler). With `--vae DECODER
 * -o image.png` the final latent is unpacked to the decoder's NCHW latent (FLUX's 2x2 patches),
 * scaled as FLUX's pipeline does and decoded to a PNG (decode-image.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import { IrError, Tensor, loadModel, mulberry32, worldSize, writeTensorFile } from '@paradit/ir';
import type { Mesh, Module } from '@paradit/ir';
import { compileDenoiseStep } from '@paradit/passes';
import { InterpreterStepExecutor, SimulatedStepExecutor, denoise, listTestDataSets, readTestDataSet, validateTestData } from '@paradit/runtime';
import type { DenoiseResult, StepExecutor, StepRecord } from '@paradit/runtime';
import { addMeshFlags, meshFromFlags } from '../mesh-flags';
import { randomOption } from './inspect';
import { openPlanStep, parseCheckBackend, parsePrecision, planDtypeFor, requireGpu } from './check-backend';
import type { PlanBackend } from './check-backend';
import { DEFAULT_TIMEOUT_S, withRank } from '../launched';
import type { RankContext } from '../launched';
import { addScalingFlags, checkImagePath, openDecoder, prepareLatent, scalingFromFlags, writeDecodedImages } from './decode-image';
import type { Decoder } from './decode-image';

interface DenoiseFlags {
  steps?: string;
  fbcache?: string;
  warmup?: string;
  maxCached?: string;
  computeLastStep?: boolean;
  latentInput?: string;
  timestepInput?: string;
  timestepScale?: string;
  json?: boolean;
  saveLatents?: string;
  randomWeights?: string | boolean;
  progress?: boolean;
  ulysses?: string;
  ring?: string;
  cfg?: string;
  backend?: string;
  dtype?: string;
  keepPlan?: string;
  timeout?: string;
  vae?: string;
  output?: string;
  scalingFactor?: string;
  shiftFactor?: string;
  latentScaling?: boolean;
}

function bad(message: string): never {
  throw new IrError('E_INPUT', message);
}

function intFlag(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) bad(`${name} must be an integer >= ${min}, got '${v}'`);
  return n;
}

function numberFlag(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) bad(`${name} must be a number, got '${v}'`);
  return n;
}

/** Seeded inputs for a model folder without test data (benchmark models with --random-weights). */
function randomInputs(m: Module, seed: number): Tensor[] {
  const rand = mulberry32(seed ^ 0x9e3779b9);
  return m.graph.inputs.map((v) => {
    const shape = v.shape.map((d) => (typeof d === 'number' ? d : bad(`input '${v.name}' has a symbolic dimension '${d}'; provide test_data_set_0 with its data`)));
    const n = shape.reduce((x, y) => x * y, 1);
    const isFloat = v.dtype === 'f32' || v.dtype === 'bf16' || v.dtype === 'f16' || v.dtype === 'f64';
    return Tensor.from(v.dtype, shape, Array.from({ length: n }, () => (isFloat ? rand() * 2 - 1 : 0)));
  });
}

function modelInputs(dir: string, m: Module, randomSeed: number | undefined): Map<string, Tensor> {
  const sets = listTestDataSets(dir);
  let inputs: Tensor[];
  if (sets.length > 0) {
    const set = readTestDataSet(sets[0]!);
    validateTestData(set, m.graph.inputs, m.graph.outputs);
    inputs = set.inputs;
  } else if (randomSeed !== undefined) {
    process.stderr.write(`paradit: note: ${dir} has no test_data_set_0; starting from seeded random inputs (seed ${randomSeed})\n`);
    inputs = randomInputs(m, randomSeed);
  } else {
    bad(`${dir} has no test_data_set_0, whose inputs start the loop; add test_data_set_0/input_K.pb or pass --random-weights to start from seeded random inputs`);
  }
  return new Map(m.graph.inputs.map((v, i) => [v.name, inputs[i]!]));
}

interface DenoiseReport {
  readonly steps: { index: number; sigma: number; cached: boolean; diff: number | null }[];
  readonly computed: number;
  readonly cachedSteps: number;
  readonly totalBlocks: number;
  readonly skippedBlocks: number;
  readonly skippedFraction: number;
  readonly compileSeconds: number;
  readonly seconds: number;
  /** With --vae: what decoded the latent and the PNG files written. */
  readonly decoded?: { readonly ran: string; readonly files: readonly string[] };
  /** With --backend: the plan backend, its dtype and (cuda) the device. */
  readonly backend?: { readonly name: PlanBackend; readonly dtype: string; readonly device?: string };
}

function toReport(r: DenoiseResult, compileSeconds: number, backend?: DenoiseReport['backend']): DenoiseReport {
  return {
    ...(backend ? { backend } : {}),
    steps: r.steps.map((s) => ({ index: s.index, sigma: s.sigma, cached: s.cached, diff: s.diff })),
    computed: r.computed,
    cachedSteps: r.cachedSteps,
    totalBlocks: r.totalBlocks,
    skippedBlocks: r.skippedBlocks,
    skippedFraction: r.skippedFraction,
    compileSeconds,
    seconds: r.seconds,
  };
}

function formatReport(dir: string, r: DenoiseReport, header: string): string {
  const lines = [`denoise ${dir}: ${header}`, '  step  sigma   diff      decision'];
  for (const s of r.steps) {
    lines.push(`  ${String(s.index).padEnd(4)}  ${s.sigma.toFixed(4)}  ${(s.diff === null ? '-' : s.diff.toFixed(5)).padEnd(8)}  ${s.cached ? 'cached' : 'computed'}`);
  }
  const n = r.steps.length;
  lines.push(`computed ${r.computed} of ${n} steps (${r.cachedSteps} cached)`);
  if (r.totalBlocks > 0) {
    lines.push(`skipped ${r.skippedBlocks} of ${n * r.totalBlocks} block runs (${(100 * r.skippedFraction).toFixed(1)}%)`);
  }
  lines.push(`compile ${r.compileSeconds.toFixed(2)} s; loop ${r.seconds.toFixed(2)} s (${(r.seconds / n).toFixed(3)} s/step)`);
  return lines.join('\n');
}

/** Writes through a temporary file, so a failed write leaves nothing half-written. */
function saveLatents(file: string, t: Tensor, name: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    writeTensorFile(tmp, t, name);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    bad(`--save-latents ${file}: cannot write the latents (${e instanceof Error ? e.message : String(e)}); pass a path in a writable folder`);
  }
}

type DenoiseRun = { report: DenoiseReport; text: string; latents: Tensor };

export async function runDenoise(dirArg: string, flags: DenoiseFlags, rank?: RankContext): Promise<DenoiseRun> {
  // The --vae decoder (opened before the loop) is closed however the run ends.
  const opened: { vae?: OpenVae } = {};
  try {
    return await denoiseAndDecode(dirArg, flags, rank, opened);
  } finally {
    opened.vae?.decoder.dispose();
  }
}

async function denoiseAndDecode(dirArg: string, flags: DenoiseFlags, rank: RankContext | undefined, opened: { vae?: OpenVae }): Promise<DenoiseRun> {
  const steps = intFlag('--steps', flags.steps, 1) ?? bad('--steps N is required (the number of denoising steps)');
  const threshold = numberFlag('--fbcache', flags.fbcache);
  const warmup = intFlag('--warmup', flags.warmup, 0);
  const maxCached = intFlag('--max-cached', flags.maxCached, 1);
  const scale = numberFlag('--timestep-scale', flags.timestepScale);
  if (threshold === undefined && (warmup !== undefined || maxCached !== undefined || flags.computeLastStep)) {
    bad('--warmup, --max-cached and --compute-last-step configure First Block Cache; add --fbcache T');
  }
  const dir = path.resolve(dirArg);
  if (!fs.existsSync(dir)) bad(`${dirArg} does not exist; denoise expects a model folder (model.onnx and test_data_set_0/)`);
  const backend = parseCheckBackend(flags.backend);
  rank?.requirePlan('denoise', backend);
  if (backend === undefined && (flags.dtype !== undefined || flags.keepPlan !== undefined)) bad('--dtype and --keep-plan configure a compiled plan; add --backend cpu or --backend cuda');
  const mesh: Mesh | undefined = meshFromFlags(flags);
  if (backend === 'cuda') requireGpu('denoise');
  const random = randomOption(flags.randomWeights);
  const raw = loadModel(dir, random);
  if (raw.meta.randomWeights) process.stderr.write("paradit: note: weights are seeded random data, not the model's own\n");
  const inputs = modelInputs(dir, raw, random.randomWeights?.seed);
  const vae = await openVae(flags, backend, inputs.get(flags.latentInput ?? 'hidden_states'), rank);
  if (vae) opened.vae = vae;
  const timestep = inputs.get(flags.timestepInput ?? 'timestep');
  if (timestep && (timestep.dtype === 'i64' || timestep.dtype === 'i32') && (scale ?? 1) === 1) {
    process.stderr.write(`paradit: note: the timestep input is ${timestep.dtype}, so t = round(sigma) is 0 or 1; models trained on [0, 1000] need --timestep-scale 1000\n`);
  }
  const c0 = performance.now();
  let executor: StepExecutor;
  let dispose = (): void => undefined;
  let backendInfo: DenoiseReport['backend'];
  if (backend !== undefined) {
    // The gated step compiled into a plan (--fbcache T becomes the plan's default threshold; the
    // loop sets fbcache.threshold every step anyway); its cache state lives in the plan's state space.
    const dtype = flags.dtype === undefined ? planDtypeFor(raw) : parsePrecision(flags.dtype);
    const p = await openPlanStep(dir, { backend, dtype, ...(threshold !== undefined ? { fbcache: threshold } : {}), ...random, ...(flags.keepPlan ? { keepPlan: flags.keepPlan } : {}), ...(mesh ? { mesh } : {}), ...(rank ? { launched: rank.launchedOpen(dirArg, backend) } : {}) });
    executor = p.executor;
    if (rank) {
      const inner = p.executor;
      const before = rank.firstStepHook();
      executor = {
        ...inner,
        step: (x) => {
          before();
          return inner.step(x);
        },
        resetState: () => inner.resetState(),
      };
    }
    dispose = p.dispose;
    backendInfo = { name: backend, dtype, ...(p.device ? { device: p.device } : {}) };
  } else {
    const step = compileDenoiseStep(raw, { mesh, fbcache: threshold !== undefined });
    executor = mesh && worldSize(mesh) > 1 ? new SimulatedStepExecutor(step, mesh) : new InterpreterStepExecutor(step);
  }
  const compileSeconds = (performance.now() - c0) / 1000;

  const showProgress = flags.progress !== false && process.stderr.isTTY === true && steps > 1;
  const bar = showProgress
    ? new cliProgress.SingleBar({ stream: process.stderr, format: 'denoise [{bar}] {value}/{total} steps | {decision} | {eta_formatted} left', hideCursor: true }, cliProgress.Presets.shades_classic)
    : undefined;
  bar?.start(steps, 0, { decision: '' });
  let result: DenoiseResult;
  try {
    result = await denoise(executor, {
      steps,
      inputs,
      ...(flags.latentInput ? { latentInput: flags.latentInput } : {}),
      ...(flags.timestepInput ? { timestepInput: flags.timestepInput } : {}),
      ...(scale !== undefined ? { timestepScale: scale } : {}),
      ...(threshold !== undefined ? { cache: { threshold, warmup: warmup ?? 0, maxCached: maxCached ?? Infinity, computeLastStep: flags.computeLastStep === true } } : {}),
      onStep: (s: StepRecord) => bar?.increment(1, { decision: s.cached ? 'cached' : 'computed' }),
    });
  } finally {
    bar?.stop();
    dispose();
  }
  await rank?.checkOutputs(new Map([['latents', result.latents]]));
  if (flags.saveLatents && (!rank || rank.isRoot)) saveLatents(path.resolve(flags.saveLatents), result.latents, flags.latentInput ?? 'hidden_states');
  const decoded = vae ? await decodeLatents(vae, result.latents, flags.output!) : undefined;
  const report = { ...toReport(result, compileSeconds, backendInfo), ...(decoded ? { decoded } : {}) };
  const meshText = mesh && worldSize(mesh) > 1 ? `, mesh ulysses ${mesh.ulysses} ring ${mesh.ring} cfg ${mesh.cfg} (${rank && rank.env.world > 1 ? `${rank.env.world} processes launched by ${rank.env.launcher}` : backend === undefined ? 'simulated ranks' : 'ranks in this process'})` : '';
  const cacheText = threshold === undefined ? 'no cache' : `fbcache ${threshold} (warm-up ${warmup ?? 0}, max cached ${maxCached ?? 'unlimited'}${flags.computeLastStep ? ', last step computed' : ''})`;
  const backendText = backendInfo ? `, ${backendInfo.dtype} plan on ${backendInfo.name}${backendInfo.device ? ` (${backendInfo.device})` : ''}` : '';
  const text = formatReport(dirArg, report, `${steps} steps, ${cacheText}${meshText}${backendText}`);
  return { report, text: decoded ? `${text}\ndecoded with ${flags.vae} on ${decoded.ran}: ${decoded.files.map((f) => `wrote ${f}`).join(', ')}` : text, latents: result.latents };
}

interface OpenVae {
  readonly decoder: Decoder;
  readonly scaling: ReturnType<typeof scalingFromFlags>;
}

/**
 * --vae DECODER -o FILE: checked and opened before the loop runs, so a decoder whose latent does
 * not fit the transformer's (neither its shape nor FLUX's packed form of it) is refused at once.
 * A launched job decodes on rank 0 only.
 */
async function openVae(flags: DenoiseFlags, backend: PlanBackend | undefined, latent: Tensor | undefined, rank: RankContext | undefined): Promise<OpenVae | undefined> {
  const scalingSet = flags.scalingFactor !== undefined || flags.shiftFactor !== undefined || flags.latentScaling === false;
  if (flags.vae === undefined) {
    if (flags.output !== undefined || scalingSet) bad('-o, --scaling-factor, --shift-factor and --no-latent-scaling decode the final latent; add --vae DECODER (a VAE plan or model folder)');
    return undefined;
  }
  if (flags.output === undefined) bad('--vae decodes the final latent to an image; add -o image.png');
  const scaling = scalingFromFlags(flags);
  checkImagePath(flags.output);
  if (rank && !rank.isRoot) return undefined;
  if (!latent) bad(`--vae: the model has no latent input '${flags.latentInput ?? 'hidden_states'}'; name it with --latent-input`);
  const decoder = await openDecoder(flags.vae, { flag: '--vae', ...(backend ? { backend } : {}) });
  try {
    prepareLatent(latent, decoder, scaling, `the transformer's latent '${flags.latentInput ?? 'hidden_states'}'`);
  } catch (e) {
    decoder.dispose();
    throw e;
  }
  return { decoder, scaling };
}

async function decodeLatents(vae: OpenVae, latents: Tensor, output: string): Promise<{ ran: string; files: string[] }> {
  const image = await vae.decoder.decode(prepareLatent(latents, vae.decoder, vae.scaling, 'the denoised latent'));
  return { ran: vae.decoder.what, files: writeDecodedImages(output, image) };
}

export function denoiseCommand(program: Command, _setCode: (c: number) => void): void {
  const cmd = program
    .command('denoise')
    .description('run the flow-matching Euler loop on a model folder, optionally with First Block Cache and simulated context parallelism')
    .argument('<dir>', 'model folder (model.onnx and test_data_set_0/)')
    .option('--steps <n>', 'number of denoising steps')
    .option('--fbcache <threshold>', 'First Block Cache: reuse the cached blocks when diff < threshold (0 never caches)')
    .option('--warmup <k>', 'the first K steps always compute (with --fbcache)')
    .option('--max-cached <m>', 'at most M consecutive cached steps (with --fbcache)')
    .option('--compute-last-step', 'always compute the last step (with --fbcache)')
    .option('--latent-input <name>', 'the latent input (default hidden_states)')
    .option('--timestep-input <name>', 'the timestep input (default timestep)')
    .option('--timestep-scale <s>', 'timestep = sigma * S (default 1, for models that take sigma in [0, 1] such as FLUX; SD3, Wan and CogVideoX take timesteps in [0, 1000]: pass 1000)')
    .option('--json', 'print one JSON object')
    .option('--save-latents <file>', 'write the final latents as an ONNX TensorProto (.pb)')
    .option('--random-weights [seed]', 'replace missing external weights with seeded random data (benchmarking)')
    .option('--no-progress', 'no progress bar on stderr')
    .option('--backend <name>', 'run the step as a compiled plan: cpu (each instruction\'s IR ref) or cuda (the GPU, one CUDA graph per step); default: the reference interpreter')
    .option('--dtype <dtype>', 'with --backend: plan dtype bf16, fp16, fp32 or fp8 (default: fp32 for fp32 models, bf16 for bf16 models; fp8: docs/fp8.md)')
    .option('--keep-plan <dir>', 'with --backend: write the compiled plan here and keep it');
  cmd
    .option('--vae <decoder>', 'decode the final latent with this VAE decoder (plan directory or model folder; same backend) and write -o')
    .option('-o, --output <file>', 'with --vae: the PNG to write (a batch writes FILE-0.png, FILE-1.png, ...)');
  addScalingFlags(cmd);
  addMeshFlags(cmd, 'run simulated ranks');
  cmd.option('--timeout <s>', `launched ranks: how long a rank waits for its peers before giving up (default ${DEFAULT_TIMEOUT_S}, or PARADIT_TIMEOUT)`);
  cmd.action(async (dir: string, flags: DenoiseFlags) => {
    const print = ({ report, text }: { report: DenoiseReport; text: string }) => process.stdout.write(flags.json ? `${JSON.stringify(report)}\n` : `${text}\n`);
    // As one rank of a launched job: every rank runs the loop on its shard; rank 0 reports.
    const launched = await withRank(flags.timeout, async (rank) => {
      const r = await runDenoise(dir, flags, rank);
      if (rank.isRoot) print(r);
    });
    if (!launched) print(await runDenoise(dir, flags));
  });
}
