/**
 * A small DiT built directly from ParaDiT's fused ops (linear, layer_norm, modulate, attention,
 * rope, gated_residual), with the options the context-parallel tests need: odd token counts, a
 * CFG batch of 2, text padding masks (bool or additive), rotary tables computed from a position
 * input, grouped-query heads, a cross-attention over the (unsplit) text, and a pooled output that
 * reduces over the sequence. Built directly so the sharding tests do not depend on fusion; the
 * ONNX-style tiny-dit.ts covers the fused-from-ONNX path.
 */
import { GraphBuilder, Module, Tensor, Value } from '@paradit/ir';
import type { AttrValue } from '@paradit/ir';
import { randomTensor, rng } from './tiny-dit';

export interface CpDitConfig {
  readonly batch: number;
  readonly imageTokens: number;
  readonly textTokens: number;
  readonly inChannels: number;
  readonly textDim: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly blocks: number;
  /** Text padding mask input `encoder_attention_mask` [B, T] (bool), used as a bool or additive mask. */
  readonly mask: 'none' | 'bool' | 'float';
  /** Rotary embedding of q and k from a `positions` input [L] (f32). */
  readonly rope: boolean;
  /** A cross-attention of the joint stream over the text embedding in every block. */
  readonly crossAttention: boolean;
  /** A second output: the mean over all tokens of the last hidden state ([B, D]). */
  readonly pooled: boolean;
  readonly seed: number;
}

export const CP_DIT: CpDitConfig = {
  batch: 1,
  imageTokens: 16,
  textTokens: 6,
  inChannels: 8,
  textDim: 12,
  heads: 4,
  kvHeads: 4,
  headDim: 8,
  blocks: 2,
  mask: 'none',
  rope: false,
  crossAttention: false,
  pooled: false,
  seed: 11,
};

const int = (value: number): AttrValue => ({ kind: 'int', value });
const i64 = (xs: number[]): Tensor => Tensor.from('i64', [xs.length], xs);
const f32s = (x: number): Tensor => Tensor.from('f32', [], [x]);

export function buildCpDit(cfg: CpDitConfig = CP_DIT): Module {
  const rand = rng(cfg.seed);
  const b = new GraphBuilder(18);
  const { batch: B, heads: N, kvHeads: Nkv, headDim: H } = cfg;
  const D = N * H;
  const L = cfg.textTokens + cfg.imageTokens;
  let counter = 0;
  const op = (o: string, ins: (Value | null)[], attrs: Record<string, AttrValue> = {}, outs = 1): Value[] =>
    b.add(o, ins, attrs, { name: `${o}_${counter++}`, numOutputs: outs });
  const one = (o: string, ins: (Value | null)[], attrs: Record<string, AttrValue> = {}): Value => op(o, ins, attrs)[0]!;
  const linear = (x: Value, din: number, dout: number, name: string): Value =>
    one('linear', [x, b.constant(randomTensor([din, dout], rand, 1 / Math.sqrt(din)), `${name}.weight`), b.constant(randomTensor([dout], rand, 0.1), `${name}.bias`)]);
  const heads = (x: Value, n: number): Value =>
    one('Transpose', [one('Reshape', [x, b.constant(i64([B, -1, n, H]))])], { perm: { kind: 'ints', value: [0, 2, 1, 3] } });
  const merge = (x: Value): Value => one('Reshape', [one('Transpose', [x], { perm: { kind: 'ints', value: [0, 2, 1, 3] } }), b.constant(i64([B, -1, D]))]);
  const unsq1 = (x: Value): Value => one('Unsqueeze', [x, b.constant(i64([1]))]);

  const hidden = b.input('hidden_states', { dtype: 'f32', shape: [B, cfg.imageTokens, cfg.inChannels] });
  const text = b.input('encoder_hidden_states', { dtype: 'f32', shape: [B, cfg.textTokens, cfg.textDim] });
  const timestep = b.input('timestep', { dtype: 'f32', shape: [B] });
  const maskIn = cfg.mask !== 'none' ? b.input('encoder_attention_mask', { dtype: 'bool', shape: [B, cfg.textTokens] }) : undefined;
  const positions = cfg.rope ? b.input('positions', { dtype: 'f32', shape: [L] }) : undefined;

  const freqs = Tensor.from('f32', [1, 8], Array.from({ length: 8 }, (_, i) => Math.exp((-Math.log(1000) * i) / 8)));
  const tf = one('Mul', [unsq1(timestep), b.constant(freqs)]);
  const temb = one('silu', [linear(one('Concat', [one('Sin', [tf]), one('Cos', [tf])], { axis: int(-1) }), 16, D, 'time')]);

  const txt = linear(text, cfg.textDim, D, 'context_embedder');
  let x = one('Concat', [txt, linear(hidden, cfg.inChannels, D, 'x_embedder')], { axis: int(1) });

  let mask: Value | null = null;
  if (maskIn) {
    const ones = b.constant(Tensor.from('bool', [B, cfg.imageTokens], new Array<number>(B * cfg.imageTokens).fill(1)));
    const keep = one('Reshape', [one('Concat', [maskIn, ones], { axis: int(1) }), b.constant(i64([B, 1, 1, L]))]);
    mask = cfg.mask === 'bool' ? keep : one('Where', [keep, b.constant(f32s(0)), b.constant(f32s(-1e4))]);
  }
  let cos: Value | undefined;
  let sin: Value | undefined;
  if (positions) {
    const inv = Tensor.from('f32', [1, H / 2], Array.from({ length: H / 2 }, (_, i) => Math.pow(100, (-2 * i) / H)));
    const ang = one('Mul', [one('Unsqueeze', [positions, b.constant(i64([1]))]), b.constant(inv)]);
    cos = one('Cos', [ang]);
    sin = one('Sin', [ang]);
  }
  const textKv = cfg.crossAttention ? [heads(linear(txt, D, Nkv * H, 'cross.k'), Nkv), heads(linear(txt, D, Nkv * H, 'cross.v'), Nkv)] : [];
  const attn = (q: Value, k: Value, v: Value, m: Value | null): Value =>
    one('attention', [q, k, v, m], { scale: { kind: 'float', value: 1 / Math.sqrt(H) }, numHeads: int(N), kvHeads: int(Nkv) });

  for (let blk = 0; blk < cfg.blocks; blk++) {
    const p = `blocks.${blk}`;
    const mods = op('Split', [linear(temb, D, 6 * D, `${p}.mod`), b.constant(i64(new Array<number>(6).fill(D)))], { axis: int(1) }, 6).map(unsq1);
    const [sh1, sc1, g1, sh2, sc2, g2] = mods as [Value, Value, Value, Value, Value, Value];
    const h = one('modulate', [one('layer_norm', [x], { eps: { kind: 'float', value: 1e-6 } }), sh1, sc1]);
    let q = heads(linear(h, D, D, `${p}.q`), N);
    let k = heads(linear(h, D, Nkv * H, `${p}.k`), Nkv);
    const v = heads(linear(h, D, Nkv * H, `${p}.v`), Nkv);
    if (cos && sin) {
      const rope = { style: { kind: 'string', value: 'rotate_half' } as AttrValue, layout: { kind: 'string', value: 'BNSH' } as AttrValue };
      q = one('rope', [q, cos, sin], rope);
      k = one('rope', [k, cos, sin], rope);
    }
    x = one('gated_residual', [x, g1, linear(merge(attn(q, k, v, mask)), D, D, `${p}.out`)]);
    if (cfg.crossAttention) {
      const cq = heads(linear(one('layer_norm', [x], { eps: { kind: 'float', value: 1e-6 } }), D, D, `${p}.cross.q`), N);
      x = one('Add', [x, linear(merge(attn(cq, textKv[0]!, textKv[1]!, null)), D, D, `${p}.cross.out`)]);
    }
    const m = one('modulate', [one('layer_norm', [x], { eps: { kind: 'float', value: 1e-6 } }), sh2, sc2]);
    x = one('gated_residual', [x, g2, linear(one('gelu', [linear(m, D, 2 * D, `${p}.ff0`)], { approximate: { kind: 'string', value: 'tanh' } }), 2 * D, D, `${p}.ff2`)]);
  }
  const out = linear(one('layer_norm', [x], { eps: { kind: 'float', value: 1e-6 } }), D, cfg.inChannels, 'proj_out');
  const sample = b.add('Slice', [out, b.constant(i64([cfg.textTokens])), b.constant(i64([L])), b.constant(i64([1]))], {}, { name: 'slice_out', outputNames: ['sample'] })[0]!;
  const outputs = [sample];
  if (cfg.pooled) outputs.push(b.add('ReduceMean', [x, b.constant(i64([1]))], { keepdims: int(0) }, { name: 'pool', outputNames: ['pooled'] })[0]!);
  return new Module(b.build(outputs), { '': 18 }, { irVersion: 10, producerName: 'paradit-tests', producerVersion: '0.1.0' });
}

/** Seeded inputs in graph input order. */
export function cpDitInputs(cfg: CpDitConfig = CP_DIT, seed = 5): Tensor[] {
  const rand = rng(seed);
  const L = cfg.textTokens + cfg.imageTokens;
  const ins = [
    randomTensor([cfg.batch, cfg.imageTokens, cfg.inChannels], rand),
    randomTensor([cfg.batch, cfg.textTokens, cfg.textDim], rand),
    Tensor.from('f32', [cfg.batch], Array.from({ length: cfg.batch }, () => rand())),
  ];
  if (cfg.mask !== 'none') {
    // Sample b keeps its first textTokens - 1 - b text tokens (at least one).
    const m: number[] = [];
    for (let bi = 0; bi < cfg.batch; bi++) for (let t = 0; t < cfg.textTokens; t++) m.push(t < Math.max(1, cfg.textTokens - 1 - bi) ? 1 : 0);
    ins.push(Tensor.from('bool', [cfg.batch, cfg.textTokens], m));
  }
  if (cfg.rope) ins.push(Tensor.from('f32', [L], Array.from({ length: L }, (_, i) => i)));
  return ins;
}
