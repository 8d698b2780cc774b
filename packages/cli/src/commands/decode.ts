/**
 * `paradit decode PLAN --latents FILE.pb -o image.png [--backend cpu|cuda]`: a VAE decoder (a
 * compiled plan, or a model folder) run on one latent, written as PNG. The latent gets FLUX's
 * pipeline transform first (latents / scaling_factor + shift_factor; --no-latent-scaling for a
 * latent already in the decoder's scale) and may be FLUX's packed [B, HW/4, 4C] form; the image is
 * the pipeline's postprocess ((x/2 + 0.5) clamped to [0, 1], * 255, rounded). A batch of B > 1
 * writes FILE-0.png ... FILE-(B-1).png. Exit 2 on bad input, with nothing half-written.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { IrError, readTensorFile } from '@paradit/ir';
import type { Tensor } from '@paradit/ir';
import { fsUserError } from '../errors';
import { parseCheckBackend } from './check-backend';
import { addScalingFlags, checkImagePath, openDecoder, prepareLatent, scalingFromFlags, writeDecodedImages } from './decode-image';

interface DecodeFlags {
  latents: string;
  output: string;
  backend?: string;
  dtype?: string;
  scalingFactor?: string;
  shiftFactor?: string;
  latentScaling?: boolean;
  json?: boolean;
}

export interface DecodeReport {
  readonly decoder: string;
  readonly ran: string;
  readonly latents: string;
  readonly latentScaling: { readonly scalingFactor: number; readonly shiftFactor: number } | null;
  readonly image: { readonly dtype: string; readonly shape: readonly number[] };
  readonly files: readonly string[];
  readonly seconds: number;
}

function readLatents(file: string): Tensor {
  const abs = path.resolve(file);
  try {
    return readTensorFile(abs);
  } catch (e) {
    const fsErr = fsUserError(e, `--latents ${file}`);
    if (fsErr) throw fsErr;
    throw new IrError('E_INPUT', `--latents ${file}: not a readable ONNX TensorProto (.pb) file (${e instanceof Error ? e.message : String(e)}); write the latent with \`denoise --save-latents\` or onnx.numpy_helper.from_array`);
  }
}

export async function runDecode(target: string, flags: DecodeFlags): Promise<DecodeReport> {
  const t0 = performance.now();
  const backend = parseCheckBackend(flags.backend);
  const scaling = scalingFromFlags(flags);
  checkImagePath(flags.output);
  const latents = readLatents(flags.latents);
  const d = await openDecoder(target, { flag: 'decode', ...(backend ? { backend } : {}), ...(flags.dtype !== undefined ? { dtype: flags.dtype } : {}) });
  try {
    const z = prepareLatent(latents, d, scaling, `--latents ${flags.latents}`);
    const image = await d.decode(z);
    const files = writeDecodedImages(flags.output, image);
    return { decoder: target, ran: d.what, latents: flags.latents, latentScaling: scaling ?? null, image: { dtype: image.dtype, shape: [...image.shape] }, files, seconds: (performance.now() - t0) / 1000 };
  } finally {
    d.dispose();
  }
}

export function formatDecode(r: DecodeReport): string {
  const s = r.latentScaling ? `latents / ${r.latentScaling.scalingFactor} + ${r.latentScaling.shiftFactor}` : 'latents unscaled (--no-latent-scaling)';
  return [`decode ${r.decoder} on ${r.ran}: ${s}; image ${r.image.dtype}[${r.image.shape.join(',')}] in ${r.seconds.toFixed(2)} s`, ...r.files.map((f) => `  wrote ${f}`)].join('\n');
}

export function decodeCommand(program: Command, _setCode: (c: number) => void): void {
  const cmd = program
    .command('decode')
    .description('decode a latent with a VAE decoder (plan or model folder) and write it as PNG')
    .argument('<decoder>', 'the VAE decoder: a plan directory from `paradit compile`, or a model folder (model.onnx)')
    .requiredOption('--latents <file>', 'the latent as an ONNX TensorProto (.pb): NCHW, or FLUX\'s packed [B, HW/4, 4C]')
    .requiredOption('-o, --output <file>', 'the PNG to write (a batch of B > 1 writes FILE-0.png, FILE-1.png, ...)')
    .option('--backend <name>', 'cpu or cuda (default: cpu for a plan, the reference interpreter for a model folder)')
    .option('--dtype <dtype>', 'for a model folder with --backend: plan dtype bf16, fp16 or fp32');
  addScalingFlags(cmd).option('--json', 'print one JSON object');
  cmd.action(async (target: string, flags: DecodeFlags) => {
    const r = await runDecode(target, flags);
    process.stdout.write(flags.json ? `${JSON.stringify(r)}\n` : `${formatDecode(r)}\n`);
  });
}
