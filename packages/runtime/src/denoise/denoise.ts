/**
 * The flow-matching Euler denoising loop over a StepExecutor:
 *
 *   sigma[i] = 1 - i/N (i < N), sigma[N] = 0
 *   x <- x + (sigma[i+1] - sigma[i]) * model(x, t = sigma[i] * scale)
 *
 * in fp32 (sigmas, the step and the update, as diffusers' FlowMatchEulerDiscreteScheduler does),
 * with the result rounded back to the latent's dtype each step. Other inputs stay as given.
 *
 * With a cache gate in the step (fbcache-signature.ts), the loop sets its controls every step:
 * the threshold, `must_compute` for warm-up steps and (optionally) the last step, and the limit
 * on consecutive cached steps; it records each step's decision and diff and the blocks skipped.
 * Defaults keep ParaAttention's behaviour: no warm-up, no limit, the last step may be cached.
 */
import { IrError, Tensor, roundTo } from '@paradit/ir';
import type { StepExecutor } from './step-executor';
import { FBCACHE_NAMES } from './fbcache-signature';

export interface CacheOptions {
  /** Cache a step when diff < threshold; <= 0 never caches. */
  readonly threshold: number;
  /** The first `warmup` steps always compute (default 0). */
  readonly warmup?: number;
  /** At most this many consecutive cached steps (default: no limit). */
  readonly maxCached?: number;
  /** Always compute the last step (default false). */
  readonly computeLastStep?: boolean;
}

interface DenoiseOptions {
  readonly steps: number;
  /** The model inputs of the first step (test_data_set_0); the latent and timestep get replaced. */
  readonly inputs: ReadonlyMap<string, Tensor>;
  readonly latentInput?: string;
  readonly timestepInput?: string;
  readonly timestepScale?: number;
  /** The model output holding the velocity (default: the first output that is not fbcache.*). */
  readonly velocityOutput?: string;
  /** Cache controls; without them a gated step runs with threshold 0 (always computes). */
  readonly cache?: CacheOptions;
  /** Called after every step (progress bars). */
  readonly onStep?: (record: StepRecord, total: number) => void;
}

export interface StepRecord {
  readonly index: number;
  readonly sigma: number;
  readonly cached: boolean;
  /** mean|r1 - r_ref| / mean|r_ref|; null without a gate or while there is no r_ref. */
  readonly diff: number | null;
  readonly seconds: number;
}

export interface DenoiseResult {
  readonly latents: Tensor;
  readonly steps: StepRecord[];
  /** Steps that ran every block. */
  readonly computed: number;
  readonly cachedSteps: number;
  /** Blocks of the model (0 when the step has no gate, which does not report them). */
  readonly totalBlocks: number;
  /** Blocks not run over the whole loop (cached steps x blocks a cached step skips). */
  readonly skippedBlocks: number;
  /** skippedBlocks / (steps x totalBlocks). */
  readonly skippedFraction: number;
  readonly seconds: number;
}

/** sigma[i] for i = 0..N, in fp32. */
export function sigmaSchedule(steps: number): number[] {
  return Array.from({ length: steps + 1 }, (_, i) => (i === steps ? 0 : Math.fround(1 - i / steps)));
}

/** A tensor of `like`'s dtype and shape filled with `x` (integers rounded to nearest). */
function filled(like: Tensor, x: number): Tensor {
  const v = like.dtype === 'f32' || like.dtype === 'bf16' || like.dtype === 'f16' || like.dtype === 'f64' ? x : Math.round(x);
  return Tensor.from(like.dtype, like.shape, new Array<number>(like.size).fill(v));
}

/** x + dt * v in fp32, rounded to x's dtype. */
function eulerUpdate(x: Tensor, v: Tensor, dt: number): Tensor {
  const d = Math.fround(dt);
  const out = new Float32Array(x.size);
  for (let i = 0; i < x.size; i++) out[i] = Math.fround(x.data[i]! + Math.fround(d * v.data[i]!));
  const data = x.data instanceof Float32Array ? out : Float64Array.from(out);
  if (x.dtype !== 'f32') for (let i = 0; i < data.length; i++) data[i] = roundTo(x.dtype, data[i]!);
  return new Tensor(x.dtype, x.shape, data);
}

const scalar = (dtype: 'f32' | 'bool', x: number): Tensor => Tensor.from(dtype, [], [x]);

export async function denoise(executor: StepExecutor, opts: DenoiseOptions): Promise<DenoiseResult> {
  const N = opts.steps;
  if (!Number.isInteger(N) || N < 1) throw new IrError('E_INPUT', `--steps must be a positive integer, got ${N}`);
  const latentName = opts.latentInput ?? 'hidden_states';
  const timestepName = opts.timestepInput ?? 'timestep';
  const scale = opts.timestepScale ?? 1;
  const names = new Set(executor.inputNames);
  for (const [flag, name] of [['--latent-input', latentName], ['--timestep-input', timestepName]] as const) {
    if (!names.has(name) || !opts.inputs.has(name)) {
      const available = executor.inputNames.filter((n) => !n.startsWith('fbcache.')).join(', ');
      throw new IrError('E_INPUT', `the model has no input '${name}' (inputs: ${available}); name it with ${flag}`);
    }
  }
  const gated = names.has(FBCACHE_NAMES.threshold);
  if (opts.cache && !gated) throw new IrError('E_INPUT', 'cache options were given, but the step has no cache gate; compile it with insert-cache-gate');
  const velocityName = opts.velocityOutput ?? executor.outputNames.find((n) => !n.startsWith('fbcache.'));
  if (!velocityName || !executor.outputNames.includes(velocityName)) throw new IrError('E_INPUT', `the step has no output '${velocityName ?? ''}' to use as the velocity`);

  if (gated) {
    const missing = [FBCACHE_NAMES.cached, FBCACHE_NAMES.diff].filter((n) => !executor.outputNames.includes(n));
    if (missing.length > 0) {
      throw new IrError('E_INPUT', `the step has a cache gate but no output ${missing.map((n) => `'${n}'`).join(' or ')} (outputs: ${executor.outputNames.join(', ')}); recompile it with insert-cache-gate`);
    }
  }
  const sigmas = sigmaSchedule(N);
  let x = opts.inputs.get(latentName)!;
  const timestepLike = opts.inputs.get(timestepName)!;
  const warmup = opts.cache?.warmup ?? 0;
  const maxCached = opts.cache?.maxCached ?? Infinity;
  executor.resetState();
  const records: StepRecord[] = [];
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const s0 = performance.now();
    const inputs = new Map(opts.inputs);
    inputs.set(latentName, x);
    inputs.set(timestepName, filled(timestepLike, Math.fround(sigmas[i]! * scale)));
    if (gated) {
      const must = i < warmup || (opts.cache?.computeLastStep === true && i === N - 1);
      inputs.set(FBCACHE_NAMES.threshold, scalar('f32', opts.cache?.threshold ?? 0));
      inputs.set(FBCACHE_NAMES.mustCompute, scalar('bool', must ? 1 : 0));
      inputs.set(FBCACHE_NAMES.maxCached, scalar('f32', maxCached));
    }
    const outs = await executor.step(inputs);
    const v = outs.get(velocityName)!;
    if (v.dtype !== x.dtype || v.size !== x.size) {
      throw new IrError('E_INPUT', `output '${velocityName}' is ${v.dtype}[${v.shape.join(',')}], but the latent '${latentName}' is ${x.dtype}[${x.shape.join(',')}]; the velocity must match the latent`);
    }
    x = eulerUpdate(x, v, sigmas[i + 1]! - sigmas[i]!);
    const cached = gated ? outs.get(FBCACHE_NAMES.cached)!.data[0] !== 0 : false;
    const d = gated ? outs.get(FBCACHE_NAMES.diff)!.data[0]! : NaN;
    // The first step (or any step before a computed one) has no r_ref: its diff means nothing.
    const diff = gated && Number.isFinite(d) && records.some((r) => !r.cached) ? d : null;
    const record: StepRecord = { index: i, sigma: sigmas[i]!, cached, diff, seconds: (performance.now() - s0) / 1000 };
    records.push(record);
    opts.onStep?.(record, N);
  }
  const cachedSteps = records.filter((r) => r.cached).length;
  const totalBlocks = executor.blocks?.total ?? 0;
  const skippedBlocks = cachedSteps * (executor.blocks?.skippedWhenCached ?? 0);
  return {
    latents: x,
    steps: records,
    computed: N - cachedSteps,
    cachedSteps,
    totalBlocks,
    skippedBlocks,
    skippedFraction: totalBlocks > 0 ? skippedBlocks / (N * totalBlocks) : 0,
    seconds: (performance.now() - t0) / 1000,
  };
}
