/**
 * The pipeline-side latent transforms between a denoising loop and a VAE decoder, as FLUX's
 * pipeline does them (diffusers FluxPipeline): the transformer works on packed 2x2 patches and on
 * scaled latents; the decoder takes NCHW latents in its own scale.
 *
 * Shape letters: B batch, C latent channels, H, W latent rows and columns (the VAE's input).
 */
import { IrError, Tensor } from '@paradit/ir';

/** `decode` receives `latents / scalingFactor + shiftFactor` (the pipeline's inverse of encode's scaling). */
export interface LatentScaling {
  readonly scalingFactor: number;
  readonly shiftFactor: number;
}

/** FLUX.1-dev's VAE config (vae/config.json: scaling_factor, shift_factor). */
export const FLUX_VAE_SCALING: LatentScaling = Object.freeze({ scalingFactor: 0.3611, shiftFactor: 0.1159 });

/** x / scalingFactor + shiftFactor, elementwise in fp32 (torch's fp32 div then add), as an f32 tensor. */
export function unscaleLatents(x: Tensor, s: LatentScaling): Tensor {
  if (!Number.isFinite(s.scalingFactor) || s.scalingFactor === 0) {
    throw new IrError('E_INPUT', `latent scaling factor must be a finite non-zero number, got ${s.scalingFactor}`);
  }
  if (!Number.isFinite(s.shiftFactor)) throw new IrError('E_INPUT', `latent shift factor must be a finite number, got ${s.shiftFactor}`);
  const scale = Math.fround(s.scalingFactor);
  const shift = Math.fround(s.shiftFactor);
  const out = new Float32Array(x.size);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(Math.fround(x.data[i]! / scale) + shift);
  return new Tensor('f32', x.shape, out);
}

const fmt = (s: readonly number[]): string => `[${s.join(',')}]`;

/**
 * FLUX's `_unpack_latents`: [B, (H/2)(W/2), C*4] -> [B, C, H, W], where packed channel
 * c*4 + dy*2 + dx of token i*(W/2) + j is pixel (2i+dy, 2j+dx) of channel c.
 */
export function unpackFluxLatents(x: Tensor, target: readonly number[]): Tensor {
  const [B, C, H, W] = target as [number, number, number, number];
  const hp = H / 2;
  const wp = W / 2;
  const out = new Float32Array(B * C * H * W);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < hp; i++) {
      for (let j = 0; j < wp; j++) {
        const tok = ((b * hp + i) * wp + j) * C * 4;
        for (let c = 0; c < C; c++) {
          for (let dy = 0; dy < 2; dy++) {
            for (let dx = 0; dx < 2; dx++) {
              out[((b * C + c) * H + 2 * i + dy) * W + 2 * j + dx] = x.data[tok + c * 4 + dy * 2 + dx]!;
            }
          }
        }
      }
    }
  }
  return new Tensor('f32', target, out);
}

/**
 * The transformer's output latent as the VAE's input [B, C, H, W]: passed through when it already
 * has that shape, unpacked when it is FLUX's packed [B, (H/2)(W/2), 4C]; anything else is refused,
 * naming both shapes. `what` names the two sides for the message.
 */
export function toVaeLatent(x: Tensor, target: readonly number[], what = 'the latent'): Tensor {
  if (target.length !== 4 || target.some((d) => !Number.isInteger(d) || d <= 0)) {
    throw new IrError('E_INPUT', `the VAE decoder's latent input must be a static NCHW shape [B,C,H,W], got ${fmt(target)}`);
  }
  const [B, C, H, W] = target as [number, number, number, number];
  const same = x.rank === 4 && x.shape.every((d, i) => d === target[i]);
  if (same) return x.dtype === 'f32' ? x : new Tensor('f32', x.shape, Float32Array.from(x.data));
  const packable = H % 2 === 0 && W % 2 === 0;
  const packed = [B, (H / 2) * (W / 2), C * 4];
  if (packable && x.rank === 3 && x.shape.every((d, i) => d === packed[i])) return unpackFluxLatents(x, target);
  const expect = packable ? `${fmt(target)} (NCHW) or FLUX's packed ${fmt(packed)} (2x2 patches)` : fmt(target);
  throw new IrError('E_INPUT', `${what} is ${x.dtype}${fmt(x.shape)}, but the VAE decoder takes ${expect}; use a VAE whose latent shape matches the transformer's output (same batch, channels and resolution)`);
}
