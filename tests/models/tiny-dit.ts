/**
 * Small DiT-like models built with GraphBuilder, the way torch.onnx.export spells them (MatMul +
 * Add linears, decomposed LayerNorm-free AdaLN modulation, Reshape/Transpose head splits, explicit
 * Softmax attention, tanh GELU, sinusoidal timestep embedding). The core suite, the ONNX Runtime
 * agreement test and the bundled example use them, so nothing here needs ../shared.
 */
import { GraphBuilder, Module, Tensor, Value, mulberry32 } from '@paradit/ir';
import { uniformTensor } from '../support/harness';

export interface TinyDitConfig {
  readonly batch: number;
  readonly imageTokens: number;
  readonly textTokens: number;
  readonly inChannels: number;
  readonly textDim: number;
  readonly heads: number;
  readonly headDim: number;
  readonly blocks: number;
  /** Adds a bool text padding mask input `encoder_attention_mask` [B, textTokens]. */
  readonly mask: boolean;
  readonly seed: number;
  readonly opset: number;
}

export const TINY_DIT: TinyDitConfig = {
  batch: 1,
  imageTokens: 16,
  textTokens: 6,
  inChannels: 8,
  textDim: 12,
  heads: 2,
  headDim: 8,
  blocks: 2,
  mask: false,
  seed: 7,
  opset: 18,
};

/** mulberry32: a tiny seeded PRNG, good enough for test weights. */
export const rng = mulberry32;

/** f32 values uniform in [-scale, scale) drawn from `rand` (the harness's uniformTensor). */
export const randomTensor = (shape: number[], rand: () => number, scale = 1): Tensor => uniformTensor(shape, rand, { scale });

const i64 = (xs: number[]): Tensor => Tensor.from('i64', [xs.length], xs);
const f32s = (x: number): Tensor => Tensor.from('f32', [], [x]);

/** Builds the model; weights are seeded, so the same config gives the same model. */
export function buildTinyDit(cfg: TinyDitConfig = TINY_DIT): Module {
  const rand = rng(cfg.seed);
  const b = new GraphBuilder(cfg.opset);
  const D = cfg.heads * cfg.headDim;
  const B = cfg.batch;
  const L = cfg.textTokens + cfg.imageTokens;
  let counter = 0;
  const nm = (s: string): string => `${s}_${counter++}`;
  const op = (o: string, ins: (Value | null)[], attrs = {}): Value => b.add(o, ins, attrs, { name: nm(`node_${o}`) })[0]!;
  const constant = (t: Tensor, name: string): Value => b.constant(t, name);
  const linear = (x: Value, din: number, dout: number, name: string): Value => {
    const w = constant(randomTensor([din, dout], rand, 1 / Math.sqrt(din)), `${name}.weight`);
    const bias = constant(randomTensor([dout], rand, 0.1), `${name}.bias`);
    return op('Add', [op('MatMul', [x, w]), bias]);
  };
  const silu = (x: Value): Value => op('Mul', [x, op('Sigmoid', [x])]);
  const geluTanh = (x: Value): Value => {
    const cube = op('Pow', [x, constant(f32s(3), 'three')]);
    const inner = op('Mul', [op('Add', [x, op('Mul', [cube, constant(f32s(0.044715), 'c_gelu')])]), constant(f32s(Math.sqrt(2 / Math.PI)), 'sqrt_2_pi')]);
    return op('Mul', [op('Mul', [x, constant(f32s(0.5), 'half')]), op('Add', [op('Tanh', [inner]), constant(f32s(1), 'one')])]);
  };
  const layerNorm = (x: Value): Value => {
    const ones = constant(Tensor.from('f32', [D], new Array<number>(D).fill(1)), nm('ln_ones'));
    return op('LayerNormalization', [x, ones], { axis: { kind: 'int', value: -1 }, epsilon: { kind: 'float', value: 1e-6 } });
  };
  const modulate = (x: Value, shift: Value, scale: Value): Value =>
    op('Add', [op('Mul', [x, op('Add', [scale, constant(f32s(1), 'one_mod')])]), shift]);
  const unsq1 = (x: Value): Value => op('Unsqueeze', [x, constant(i64([1]), 'axis1')]);

  const hidden = b.input('hidden_states', { dtype: 'f32', shape: [B, cfg.imageTokens, cfg.inChannels] });
  const text = b.input('encoder_hidden_states', { dtype: 'f32', shape: [B, cfg.textTokens, cfg.textDim] });
  const timestep = b.input('timestep', { dtype: 'f32', shape: [B] });
  const maskIn = cfg.mask ? b.input('encoder_attention_mask', { dtype: 'bool', shape: [B, cfg.textTokens] }) : undefined;

  // Timestep embedding: [sin(t f), cos(t f)] -> linear -> SiLU -> linear.
  const half = 8;
  const freqs = Tensor.from('f32', [1, half], Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / half)));
  const tf = op('Mul', [unsq1(op('Mul', [timestep, constant(f32s(1000), 't_scale')])), constant(freqs, 'freqs')]);
  const temb0 = op('Concat', [op('Sin', [tf]), op('Cos', [tf])], { axis: { kind: 'int', value: -1 } });
  const temb = linear(silu(linear(temb0, 2 * half, D, 'time.linear_1')), D, D, 'time.linear_2');

  const img = linear(hidden, cfg.inChannels, D, 'x_embedder');
  const txt = linear(text, cfg.textDim, D, 'context_embedder');
  let x = op('Concat', [txt, img], { axis: { kind: 'int', value: 1 } });

  // Additive attention bias from the text padding mask: [B, 1, 1, L].
  let bias: Value | undefined;
  if (maskIn) {
    const imgOnes = constant(Tensor.from('bool', [B, cfg.imageTokens], new Array<number>(B * cfg.imageTokens).fill(1)), 'img_mask');
    const full = op('Concat', [maskIn, imgOnes], { axis: { kind: 'int', value: 1 } });
    const keep = op('Reshape', [full, constant(i64([B, 1, 1, L]), 'mask_shape')]);
    bias = op('Where', [keep, constant(f32s(0), 'zero'), constant(f32s(-1e9), 'neg_inf')]);
  }

  const heads = (v: Value): Value =>
    op('Transpose', [op('Reshape', [v, constant(i64([B, L, cfg.heads, cfg.headDim]), 'heads_shape')])], { perm: { kind: 'ints', value: [0, 2, 1, 3] } });
  for (let blk = 0; blk < cfg.blocks; blk++) {
    const p = `blocks.${blk}`;
    const mods = b.add('Split', [linear(silu(temb), D, 6 * D, `${p}.norm.linear`), constant(i64([D, D, D, D, D, D]), 'split6')], { axis: { kind: 'int', value: 1 } }, { name: nm('node_Split'), numOutputs: 6 });
    const [sh1, sc1, g1, sh2, sc2, g2] = mods.map(unsq1) as [Value, Value, Value, Value, Value, Value];
    const h = modulate(layerNorm(x), sh1, sc1);
    const q = heads(linear(h, D, D, `${p}.attn.to_q`));
    const k = heads(linear(h, D, D, `${p}.attn.to_k`));
    const v = heads(linear(h, D, D, `${p}.attn.to_v`));
    const kt = op('Transpose', [k], { perm: { kind: 'ints', value: [0, 1, 3, 2] } });
    let scores = op('Mul', [op('MatMul', [q, kt]), constant(f32s(1 / Math.sqrt(cfg.headDim)), 'attn_scale')]);
    if (bias) scores = op('Add', [scores, bias]);
    const probs = op('Softmax', [scores], { axis: { kind: 'int', value: -1 } });
    const o = op('Transpose', [op('MatMul', [probs, v])], { perm: { kind: 'ints', value: [0, 2, 1, 3] } });
    const merged = op('Reshape', [o, constant(i64([B, L, D]), 'merge_shape')]);
    x = op('Add', [x, op('Mul', [g1, linear(merged, D, D, `${p}.attn.to_out`)])]);
    const m = modulate(layerNorm(x), sh2, sc2);
    const ff = linear(geluTanh(linear(m, D, 4 * D, `${p}.ff.0`)), 4 * D, D, `${p}.ff.2`);
    x = op('Add', [x, op('Mul', [g2, ff])]);
  }

  const [shF, scF] = b.add('Split', [linear(silu(temb), D, 2 * D, 'norm_out.linear'), constant(i64([D, D]), 'split2')], { axis: { kind: 'int', value: 1 } }, { name: nm('node_Split'), numOutputs: 2 }).map(unsq1) as [Value, Value];
  const out = linear(modulate(layerNorm(x), shF, scF), D, cfg.inChannels, 'proj_out');
  const ends = [constant(i64([cfg.textTokens]), 'txt_end'), constant(i64([L]), 'seq_end'), constant(i64([1]), 'axis1s')];
  const sample = b.add('Slice', [out, ...ends], {}, { name: 'node_Slice_out', outputNames: ['sample'] })[0]!;
  return new Module(b.build([sample]), { '': cfg.opset }, { irVersion: 10, producerName: 'paradit-tests', producerVersion: '0.1.0' });
}

/** Seeded inputs for a tiny DiT, in graph input order. */
export function tinyDitInputs(cfg: TinyDitConfig = TINY_DIT, seed = 1): Tensor[] {
  const rand = rng(seed);
  const ins = [
    randomTensor([cfg.batch, cfg.imageTokens, cfg.inChannels], rand),
    randomTensor([cfg.batch, cfg.textTokens, cfg.textDim], rand),
    Tensor.from('f32', [cfg.batch], Array.from({ length: cfg.batch }, () => rand())),
  ];
  if (cfg.mask) {
    const m: number[] = [];
    for (let bi = 0; bi < cfg.batch; bi++) for (let t = 0; t < cfg.textTokens; t++) m.push(t < cfg.textTokens - 2 - bi ? 1 : 0);
    ins.push(Tensor.from('bool', [cfg.batch, cfg.textTokens], m));
  }
  return ins;
}
