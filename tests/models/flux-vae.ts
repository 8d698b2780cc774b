/**
 * diffusers' AutoencoderKL decoder with FLUX.1-dev's VAE structure, built in code the way the
 * exporters spell it (bench/vae/full_decode.py has the config): conv_in, a mid block (resnet,
 * single-head attention over the h*w tokens, resnet), up blocks of `layersPerBlock + 1` resnets
 * with a nearest-2x upsample + conv after all but the last, GroupNorm + SiLU, conv_out. GroupNorm
 * is Reshape -> InstanceNormalization -> Reshape -> Mul/Add, SiLU is x * Sigmoid(x), and the
 * attention is the fused `attention` op on [B, 1, h*w, C] (what the importer fuses the
 * exporters' MatMul/Softmax into). Weights are lazy seeded random constants (ConstData, source
 * 'random'), so the full size (84 M parameters) compiles without materializing them.
 */
import { ConstData, GraphBuilder, Module, Tensor, Value, randomTensor, tensorSeed, tensorType } from '@paradit/ir';

export interface FluxVaeConfig {
  readonly latentChannels: number;
  /** Up-block widths, first (mid-block) to last: diffusers' reversed block_out_channels. */
  readonly widths: readonly number[];
  readonly layersPerBlock: number;
  readonly groups: number;
  /** Latent rows and columns (128 for a 1024x1024 image). */
  readonly latent: number;
  readonly seed: number;
}

/** FLUX.1-dev's VAE decoder at 1024x1024: latent 1x16x128x128 -> image 1x3x1024x1024. */
export const FLUX_VAE_FULL: FluxVaeConfig = { latentChannels: 16, widths: [512, 512, 256, 128], layersPerBlock: 2, groups: 32, latent: 128, seed: 1501 };

export function buildFluxVaeDecoder(cfg: FluxVaeConfig): Module {
  const b = new GraphBuilder(17);
  let counter = 0;
  const op = (o: string, ins: (Value | null)[], attrs = {}, prefix = o): Value => b.add(o, ins, attrs, { name: `${prefix}_${counter++}` })[0]!;
  const weight = (name: string, shape: number[]): Value => b.lazyConstant(new ConstData(tensorType('f32', shape), { kind: 'random', seed: tensorSeed(cfg.seed, name) }, () => randomTensor('f32', shape, tensorSeed(cfg.seed, name))), name);
  const i64 = (xs: number[]): Value => b.constant(Tensor.from('i64', [xs.length], xs));
  const ints = (value: number[]) => ({ kind: 'ints' as const, value });
  const dims: { c: number; h: number } = { c: cfg.latentChannels, h: cfg.latent };
  const conv = (x: Value, name: string, cin: number, cout: number, k: number): Value => {
    const p = (k - 1) / 2;
    return op('Conv', [x, weight(`${name}.weight`, [cout, cin, k, k]), weight(`${name}.bias`, [cout])], { kernel_shape: ints([k, k]), pads: ints([p, p, p, p]) }, name);
  };
  const groupNorm = (x: Value, name: string, c: number, h: number, silu: boolean): Value => {
    const g = cfg.groups;
    const r = op('Reshape', [x, i64([1, g, -1])], {}, `${name}/reshape`);
    const ones = b.constant(Tensor.from('f32', [g], new Array<number>(g).fill(1)));
    const zeros = b.constant(Tensor.from('f32', [g], new Array<number>(g).fill(0)));
    const n = op('InstanceNormalization', [r, ones, zeros], { epsilon: { kind: 'float', value: 1e-6 } }, `${name}/in`);
    const back = op('Reshape', [n, i64([1, c, h, h])], {}, `${name}/reshape`);
    const y = op('Add', [op('Mul', [back, weight(`${name}.weight`, [c, 1, 1])], {}, name), weight(`${name}.bias`, [c, 1, 1])], {}, name);
    return silu ? op('Mul', [y, op('Sigmoid', [y], {}, `${name}/silu`)], {}, `${name}/silu`) : y;
  };
  const resnet = (x: Value, name: string, cin: number, cout: number, h: number): Value => {
    let t = conv(groupNorm(x, `${name}.norm1`, cin, h, true), `${name}.conv1`, cin, cout, 3);
    t = conv(groupNorm(t, `${name}.norm2`, cout, h, true), `${name}.conv2`, cout, cout, 3);
    const skip = cin === cout ? x : conv(x, `${name}.conv_shortcut`, cin, cout, 1);
    return op('Add', [skip, t], {}, `${name}/add`);
  };
  const attention = (x: Value, name: string, c: number, h: number): Value => {
    const n = groupNorm(x, `${name}.group_norm`, c, h, false);
    const tokens = op('Transpose', [op('Reshape', [n, i64([1, c, h * h])], {}, name)], { perm: ints([0, 2, 1]) }, name);
    const linear = (t: Value, l: string): Value => op('Add', [op('MatMul', [t, weight(`${name}.${l}.weight`, [c, c])], {}, `${name}.${l}`), weight(`${name}.${l}.bias`, [c])], {}, `${name}.${l}`);
    const head = (t: Value): Value => op('Reshape', [t, i64([1, 1, h * h, c])], {}, name);
    const o = op('attention', [head(linear(tokens, 'to_q')), head(linear(tokens, 'to_k')), head(linear(tokens, 'to_v'))], { scale: { kind: 'float', value: 1 / Math.sqrt(c) }, numHeads: { kind: 'int', value: 1 }, kvHeads: { kind: 'int', value: 1 } }, `${name}/attention`);
    const out = linear(op('Reshape', [o, i64([1, h * h, c])], {}, name), 'to_out.0');
    const img = op('Reshape', [op('Transpose', [out], { perm: ints([0, 2, 1]) }, name), i64([1, c, h, h])], {}, name);
    return op('Add', [img, x], {}, `${name}/residual`);
  };
  const z = b.input('z', tensorType('f32', [1, cfg.latentChannels, cfg.latent, cfg.latent]));
  const w0 = cfg.widths[0]!;
  let x = conv(z, 'decoder.conv_in', cfg.latentChannels, w0, 3);
  dims.c = w0;
  x = resnet(x, 'decoder.mid_block.resnets.0', w0, w0, dims.h);
  x = attention(x, 'decoder.mid_block.attentions.0', w0, dims.h);
  x = resnet(x, 'decoder.mid_block.resnets.1', w0, w0, dims.h);
  cfg.widths.forEach((w, i) => {
    for (let j = 0; j <= cfg.layersPerBlock; j++) {
      x = resnet(x, `decoder.up_blocks.${i}.resnets.${j}`, dims.c, w, dims.h);
      dims.c = w;
    }
    if (i < cfg.widths.length - 1) {
      const scales = b.constant(Tensor.from('f32', [4], [1, 1, 2, 2]));
      x = op('Resize', [x, null, scales], { mode: { kind: 'string', value: 'nearest' }, nearest_mode: { kind: 'string', value: 'floor' }, coordinate_transformation_mode: { kind: 'string', value: 'asymmetric' } }, `decoder.up_blocks.${i}.upsamplers.0/resize`);
      dims.h *= 2;
      x = conv(x, `decoder.up_blocks.${i}.upsamplers.0.conv`, w, w, 3);
    }
  });
  x = groupNorm(x, 'decoder.conv_norm_out', dims.c, dims.h, true);
  x = conv(x, 'decoder.conv_out', dims.c, 3, 3);
  return new Module(b.build([x], 'flux_vae_decoder'), { '': 17 }, { irVersion: 10, producerName: 'paradit-tests', producerVersion: '0.1.0', randomWeights: true });
}
