/**
 * The VAE decoder behind `paradit decode` and `paradit denoise --vae`: opens a compiled plan (cpu or
 * cuda backend) or a model folder (the reference interpreter, or a plan compiled on the fly with
 * --backend), checks a latent against the decoder's input, applies FLUX's latent scaling, decodes,
 * and writes the image(s) as PNG through the runtime's image module.
 */
import fs from 'node:fs';
import path from 'node:path';
import { IrError, Tensor, interpret, loadModel } from '@paradit/ir';
import { FBCACHE_PREFIX, FLUX_VAE_SCALING, imageFileNames, imagesFromDecoded, openPlan, toVaeLatent, unscaleLatents, writePngFiles } from '@paradit/runtime';
import type { LatentScaling, StepExecutor } from '@paradit/runtime';
import type { PlanPrecision } from '@paradit/codegen-cuda';
import { isNoGpuError, openPlanStep, parsePrecision, planDtypeFor, requireGpu } from './check-backend';
import type { PlanBackend } from './check-backend';

function bad(message: string): never {
  throw new IrError('E_INPUT', message);
}

/** An opened decoder: its one latent input, and a decode call. */
export interface Decoder {
  /** What runs it, for the report: "plan bf16 on cuda (NVIDIA H100 ...)", "interpreter". */
  readonly what: string;
  readonly inputName: string;
  readonly latentShape: readonly number[];
  readonly latentDtype: string;
  decode(latent: Tensor): Promise<Tensor>;
  dispose(): void;
}

export interface DecoderOptions {
  /** cpu or cuda plan backend; undefined: a plan runs on cpu, a model folder on the interpreter. */
  readonly backend?: PlanBackend;
  /** Plan dtype when a model folder is compiled (default from the model). */
  readonly dtype?: string;
  /** The flag that named the decoder, for messages (`decode PLAN`, `--vae`). */
  readonly flag: string;
}

const FLOATS: ReadonlySet<string> = new Set(['f32', 'f16', 'bf16', 'f64']);

function staticShape(shape: readonly (number | string)[], name: string, flag: string): number[] {
  return shape.map((d) => (typeof d === 'number' ? d : bad(`${flag}: the decoder's latent input '${name}' has a symbolic dimension '${d}'; export the decoder with a static latent shape [B,C,H,W]`)));
}

function fromExecutor(executor: StepExecutor, inputName: string, outputName: string, latentShape: number[], latentDtype: string, what: string, dispose: () => void): Decoder {
  return {
    what,
    inputName,
    latentShape,
    latentDtype,
    decode: async (latent) => {
      executor.resetState();
      const outs = await executor.step(new Map([[inputName, latent]]));
      return outs.get(outputName)!;
    },
    dispose,
  };
}

function oneInput<T extends { name: string }>(inputs: readonly T[], flag: string, target: string): T {
  const model = inputs.filter((x) => !x.name.startsWith(FBCACHE_PREFIX));
  if (model.length !== 1) bad(`${flag} ${target}: a VAE decoder takes one input (the latent), but this one takes ${model.length} (${model.map((x) => x.name).join(', ')}); pass the decoder's plan or model folder`);
  return model[0]!;
}

function deviceText(executor: StepExecutor): string {
  const r = (executor as { report?: { device?: { name?: string } } }).report;
  return r?.device?.name ? ` (${r.device.name})` : '';
}

/** Opens `target`: a plan directory (plan.json) or a model folder (model.onnx). */
export async function openDecoder(target: string, opts: DecoderOptions): Promise<Decoder> {
  const dir = path.resolve(target);
  const isPlan = fs.existsSync(path.join(dir, 'plan.json'));
  const isModel = !isPlan && (fs.existsSync(path.join(dir, 'model.onnx')) || (dir.endsWith('.onnx') && fs.existsSync(dir)));
  if (!isPlan && !isModel) bad(`${opts.flag} ${target}: neither a plan directory (plan.json, from \`paradit compile\`) nor a model folder (model.onnx); pass the VAE decoder's plan or model`);
  if (isPlan && opts.dtype !== undefined) bad(`--dtype applies when a model folder is compiled; ${target} is a compiled plan (its dtype is fixed: recompile it to change it)`);
  if (opts.backend === 'cuda') requireGpu('decode');
  if (isPlan) {
    const backend = opts.backend ?? 'cpu';
    const opened = await openPlan(dir, { backend, verifyWeights: false }).catch((e: unknown) => {
      if (backend === 'cuda' && isNoGpuError(e)) requireGpu('decode');
      throw e;
    });
    const plan = opened.loaded.plan;
    const x = oneInput(plan.inputs, opts.flag, target);
    const buf = plan.buffers.find((b) => b.id === x.buf)!;
    const out = plan.outputs[0]!;
    return fromExecutor(opened.executor, x.name, out.name, [...buf.shape], buf.dtype, `plan ${plan.target.dtype} on ${backend}${deviceText(opened.executor)}`, () => opened.dispose());
  }
  const m = loadModel(dir);
  const x = oneInput(m.graph.inputs, opts.flag, target);
  const shape = staticShape(x.shape, x.name, opts.flag);
  if (opts.backend === undefined) {
    if (opts.dtype !== undefined) bad('--dtype configures a compiled plan; add --backend cpu or --backend cuda');
    return {
      what: 'the reference interpreter',
      inputName: x.name,
      latentShape: shape,
      latentDtype: x.dtype,
      decode: (latent) => {
        const t = x.dtype === latent.dtype ? latent : Tensor.from(x.dtype, latent.shape, latent.data);
        return Promise.resolve(interpret(m, [t])[0]!);
      },
      dispose: () => undefined,
    };
  }
  const dtype: PlanPrecision = opts.dtype === undefined ? planDtypeFor(m) : parsePrecision(opts.dtype);
  const p = await openPlanStep(dir, { backend: opts.backend, dtype });
  return fromExecutor(p.executor, x.name, p.plan.outputs[0]!.name, shape, x.dtype, `plan ${dtype} on ${opts.backend}${p.device ? ` (${p.device})` : ''}`, () => p.dispose());
}

/**
 * A latent for the decoder: float data of its shape (or FLUX's packed shape, unpacked), then
 * `latent / scalingFactor + shiftFactor` unless `scaling` is undefined (already scaled).
 */
export function prepareLatent(x: Tensor, d: Decoder, scaling: LatentScaling | undefined, what: string): Tensor {
  const expected = `${d.latentDtype}[${d.latentShape.join(',')}]`;
  if (!FLOATS.has(x.dtype)) bad(`${what} holds ${x.dtype}[${x.shape.join(',')}], but the decoder's input '${d.inputName}' is ${expected}; write the latent as float data (f32, f16 or bf16)`);
  const nchw = toVaeLatent(x, d.latentShape, what);
  return scaling ? unscaleLatents(nchw, scaling) : nchw;
}

/** Refuses an -o that cannot be written before the (long) decode runs. */
export function checkImagePath(file: string): void {
  if (file.trim() === '') bad('-o: the image path is empty; pass a file such as image.png');
  const abs = path.resolve(file);
  if (fs.existsSync(abs) && fs.statSync(abs).isDirectory()) bad(`-o ${file}: it is a folder; pass a file path such as ${path.join(file, 'image.png')}`);
  const parent = path.dirname(abs);
  if (!fs.existsSync(parent) || !fs.statSync(parent).isDirectory()) bad(`-o ${file}: the folder ${parent} does not exist; create it or pass a path in an existing folder`);
  try {
    fs.accessSync(parent, fs.constants.W_OK);
  } catch {
    bad(`-o ${file}: the folder ${parent} is not writable; pass a path in a writable folder`);
  }
}

/** Writes the decoded batch: FILE for one image, FILE-0.png, FILE-1.png, ... for a batch. */
export function writeDecodedImages(file: string, decoded: Tensor): string[] {
  const images = imagesFromDecoded(decoded);
  const files = imageFileNames(path.resolve(file), images.length);
  writePngFiles(files, images);
  return files;
}

interface ScalingFlags {
  scalingFactor?: string;
  shiftFactor?: string;
  /** commander's negated flag: false with --no-latent-scaling. */
  latentScaling?: boolean;
}

function numberFlag(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) bad(`${name} must be a number, got '${v}'`);
  return n;
}

/** The latent scaling from the flags (FLUX.1-dev's defaults); undefined with --no-latent-scaling. */
export function scalingFromFlags(f: ScalingFlags): LatentScaling | undefined {
  if (f.latentScaling === false) {
    if (f.scalingFactor !== undefined || f.shiftFactor !== undefined) bad('--no-latent-scaling and --scaling-factor/--shift-factor contradict each other; pass one or the other');
    return undefined;
  }
  const scalingFactor = numberFlag('--scaling-factor', f.scalingFactor, FLUX_VAE_SCALING.scalingFactor);
  if (scalingFactor === 0) bad('--scaling-factor must not be 0 (the latent is divided by it)');
  return { scalingFactor, shiftFactor: numberFlag('--shift-factor', f.shiftFactor, FLUX_VAE_SCALING.shiftFactor) };
}

/** Registers the scaling flags on a command (decode, denoise). */
export function addScalingFlags<C extends { option(flags: string, description: string): C }>(cmd: C): C {
  return cmd
    .option('--scaling-factor <s>', `the decoder receives latents / S + shift (default ${FLUX_VAE_SCALING.scalingFactor}, FLUX.1-dev's VAE)`)
    .option('--shift-factor <s>', `the shift added after the scaling (default ${FLUX_VAE_SCALING.shiftFactor}, FLUX.1-dev's VAE)`)
    .option('--no-latent-scaling', 'the latents are already in the decoder\'s scale: pass them through unchanged');
}
