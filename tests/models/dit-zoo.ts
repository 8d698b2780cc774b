/**
 * DiT families beyond tiny-dit.ts, built in code the way torch.onnx.export spells them (MatMul +
 * Add linears, LayerNormalization, AdaLN modulation x*(1+scale)+shift, Reshape/Transpose head
 * splits, explicit Softmax attention with an additive or Where mask, tanh GELU), for the block
 * discovery and held-out fusion tests:
 *
 * - 'joint':       MMDiT double-stream block (FLUX/SD3): image and text streams, one joint attention
 *                  over both, per-stream AdaLN, output projections and feed-forwards;
 * - 'joint-dual':  'joint' plus a second self-attention on the image stream that reads the block's
 *                  input (SD3's first block);
 * - 'joint-last':  'joint' that reads the text stream but does not update it (SD3's last block:
 *                  the text gets a shift/scale norm only, no output projection, no feed-forward);
 * - 'single':      FLUX single-stream block on the concatenated stream: attention and an MLP side by
 *                  side, one output projection over both;
 * - 'cross':       PixArt/Wan-like block on the image stream: self-attention, cross-attention over
 *                  the text (masked when `mask`), feed-forward; modulation from a shared table;
 * - 'linear-cross': 'cross' with a ReLU linear self-attention (no Softmax; Sana-like).
 *
 * Text enters the stream only through 'joint*' blocks; the first 'single' block concatenates the
 * streams (text first), and the head keeps the image tokens. With `dynamic`, batch and sequence
 * dims are symbolic (`batch`, `image_seq`, `text_seq`) and every head split/merge and the text/image
 * split compute their shapes with Shape/Gather/Concat, as a dynamic-shape export does.
 */
import { GraphBuilder, Module, Tensor, Value } from '@paradit/ir';
import type { AttrValue, Dim } from '@paradit/ir';
import { randomTensor, rng } from './tiny-dit';

export type ZooBlock = 'joint' | 'joint-dual' | 'joint-last' | 'single' | 'cross' | 'linear-cross';

export interface ZooConfig {
  readonly blocks: readonly ZooBlock[];
  readonly batch: number;
  readonly imageTokens: number;
  readonly textTokens: number;
  readonly inChannels: number;
  readonly textDim: number;
  readonly heads: number;
  readonly headDim: number;
  /** A bool text padding mask input `encoder_attention_mask` [B, T], applied to every attention that reads text keys. */
  readonly mask: boolean;
  /** Symbolic batch and sequence dims with Shape-driven reshapes. */
  readonly dynamic: boolean;
  readonly seed: number;
  /**
   * How attention is spelled (default 'scores'): scale on the scores; 'qk-sqrt' scales q and k by
   * sqrt(scale) (dynamo's SDPA decomposition); 'div' divides the scores by sqrt(H); 'batched'
   * folds heads into the batch ([B*N, S, H], diffusers' head_to_batch_dim + bmm).
   */
  readonly attention?: 'scores' | 'qk-sqrt' | 'div' | 'batched';
  /**
   * Text token refiner blocks (HunyuanVideo's context embedder) run on the text alone before the
   * main blocks: masked self-attention and a feed-forward, both gated. Default 0.
   */
  readonly refiner?: number;
  /** How the text mask becomes a bias (default 'where'): Where(keep, 0, -1e9), or 'float': (1 - keep) * -10000. */
  readonly maskStyle?: 'where' | 'float';
}

export const ZOO_BASE: ZooConfig = {
  blocks: ['joint', 'joint', 'single', 'single'],
  batch: 2,
  imageTokens: 12,
  textTokens: 5,
  inChannels: 8,
  textDim: 10,
  heads: 2,
  headDim: 8,
  mask: false,
  dynamic: false,
  seed: 3,
};

const int = (value: number): AttrValue => ({ kind: 'int', value });
const ints = (value: number[]): AttrValue => ({ kind: 'ints', value });

export function buildZooDit(cfg: ZooConfig): Module {
  const rand = rng(cfg.seed);
  const b = new GraphBuilder(18);
  const { heads: N, headDim: H } = cfg;
  const D = N * H;
  let counter = 0;
  const op = (o: string, ins: (Value | null)[], attrs: Record<string, AttrValue> = {}): Value => b.add(o, ins, attrs, { name: `node_${o}_${counter++}` })[0]!;
  const i64 = (xs: number[]): Value => b.constant(Tensor.from('i64', [xs.length], xs), `c${counter++}`);
  const f32 = (x: number): Value => b.constant(Tensor.from('f32', [], [x]), `c${counter++}`);
  const linear = (x: Value, din: number, dout: number): Value =>
    op('Add', [op('MatMul', [x, b.constant(randomTensor([din, dout], rand, 1 / Math.sqrt(din)), `w${counter++}`)]), b.constant(randomTensor([dout], rand, 0.1), `b${counter++}`)]);
  const silu = (x: Value): Value => op('Mul', [x, op('Sigmoid', [x])]);
  const gelu = (x: Value): Value => {
    const inner = op('Mul', [op('Add', [x, op('Mul', [op('Pow', [x, f32(3)]), f32(0.044715)])]), f32(Math.sqrt(2 / Math.PI))]);
    return op('Mul', [op('Mul', [x, f32(0.5)]), op('Add', [op('Tanh', [inner]), f32(1)])]);
  };
  const ln = (x: Value): Value =>
    op('LayerNormalization', [x, b.constant(Tensor.from('f32', [D], new Array<number>(D).fill(1)), `ln${counter++}`)], { axis: int(-1), epsilon: { kind: 'float', value: 1e-6 } });
  const modulate = (x: Value, shift: Value, scale: Value): Value => op('Add', [op('Mul', [x, op('Add', [scale, f32(1)])]), shift]);
  const unsq1 = (x: Value): Value => op('Unsqueeze', [x, i64([1])]);
  /** AdaLN: k chunks of linear(silu(temb)), each [B, 1, D]. */
  const adaLN = (temb: Value, k: number): Value[] =>
    b.add('Split', [linear(silu(temb), D, k * D), i64(new Array<number>(k).fill(D))], { axis: int(1) }, { name: `node_Split_${counter++}`, numOutputs: k }).map(unsq1);
  /** Dim `i` of x as a 1-element i64 vector (dynamic) or constant. */
  const dimOf = (x: Value, i: number): Value => {
    const d = x.shape[i]!;
    if (!cfg.dynamic && typeof d === 'number') return i64([d]);
    return op('Unsqueeze', [op('Gather', [op('Shape', [x]), b.constant(Tensor.from('i64', [], [i]), `c${counter++}`)], { axis: int(0) }), i64([0])]);
  };
  const splitHeads = (x: Value): Value => op('Transpose', [op('Reshape', [x, op('Concat', [dimOf(x, 0), dimOf(x, 1), i64([N]), i64([H])], { axis: int(0) })])], { perm: ints([0, 2, 1, 3]) });
  const mergeHeads = (o: Value): Value => {
    const t = op('Transpose', [o], { perm: ints([0, 2, 1, 3]) });
    return op('Reshape', [t, op('Concat', [dimOf(t, 0), dimOf(t, 1), i64([D])], { axis: int(0) })]);
  };
  const attend = (q: Value, k: Value, v: Value, bias?: Value): Value => {
    const style = cfg.attention ?? 'scores';
    if (style === 'batched') return attendBatched(q, k, v, bias);
    const kt = op('Transpose', [k], { perm: ints([0, 1, 3, 2]) });
    let s: Value;
    if (style === 'qk-sqrt') s = op('MatMul', [op('Mul', [q, f32(H ** -0.25)]), op('Mul', [kt, f32(H ** -0.25)])]);
    else if (style === 'div') s = op('Div', [op('MatMul', [q, kt]), f32(Math.sqrt(H))]);
    else s = op('Mul', [op('MatMul', [q, kt]), f32(1 / Math.sqrt(H))]);
    if (bias) s = op('Add', [s, bias]);
    return op('MatMul', [op('Softmax', [s], { axis: int(-1) }), v]);
  };
  /** [B, N, S, H] operands as [B*N, S, H], the bias expanded to [B*N, 1, Skv] (shapes from Shape when dynamic). */
  const attendBatched = (q: Value, k: Value, v: Value, bias?: Value): Value => {
    const cat = (parts: Value[]): Value => op('Concat', parts, { axis: int(0) });
    const bn = (x: Value): Value => op('Mul', [dimOf(x, 0), i64([N])]);
    const flat = (x: Value): Value => op('Reshape', [x, cat([bn(x), dimOf(x, 2), i64([H])])]);
    let s = op('Mul', [op('MatMul', [flat(q), op('Transpose', [flat(k)], { perm: ints([0, 2, 1]) })]), f32(1 / Math.sqrt(H))]);
    if (bias) {
      const wide = op('Expand', [bias, cat([dimOf(k, 0), i64([N, 1]), dimOf(k, 2)])]);
      s = op('Add', [s, op('Reshape', [wide, cat([bn(k), i64([1]), dimOf(k, 2)])])]);
    }
    const o = op('MatMul', [op('Softmax', [s], { axis: int(-1) }), flat(v)]);
    return op('Reshape', [o, cat([dimOf(q, 0), i64([N]), dimOf(q, 2), i64([H])])]);
  };
  const selfAttention = (x: Value, bias?: Value): Value => {
    const [q, k, v] = [0, 1, 2].map(() => splitHeads(linear(x, D, D))) as [Value, Value, Value];
    return linear(mergeHeads(attend(q, k, v, bias)), D, D);
  };
  /** ReLU linear attention: relu(q) (relu(k)^T v) / (relu(q) sum_s relu(k) + eps). */
  const linearAttention = (x: Value): Value => {
    const [q, k, v] = [0, 1, 2].map((i) => {
      const h = splitHeads(linear(x, D, D));
      return i < 2 ? op('Relu', [h]) : h;
    }) as [Value, Value, Value];
    const kv = op('MatMul', [op('Transpose', [k], { perm: ints([0, 1, 3, 2]) }), v]);
    const den = op('MatMul', [q, op('Transpose', [op('ReduceSum', [k, i64([2])], { keepdims: int(1) })], { perm: ints([0, 1, 3, 2]) })]);
    return linear(mergeHeads(op('Div', [op('MatMul', [q, kv]), op('Add', [den, f32(1e-6)])])), D, D);
  };
  const ff = (x: Value): Value => linear(gelu(linear(x, D, 4 * D)), 4 * D, D);
  /** x[:, :n] and x[:, n:] along axis 1, with n the length of `like` along axis 1. */
  const splitSeq = (x: Value, like: Value): [Value, Value] => {
    const n = dimOf(like, 1);
    return [op('Slice', [x, i64([0]), n, i64([1])]), op('Slice', [x, n, i64([2 ** 31 - 1]), i64([1])])];
  };
  const seq = (name: 'image_seq' | 'text_seq', n: number): Dim => (cfg.dynamic ? name : n);
  const batch: Dim = cfg.dynamic ? 'batch' : cfg.batch;

  const hidden = b.input('hidden_states', { dtype: 'f32', shape: [batch, seq('image_seq', cfg.imageTokens), cfg.inChannels] });
  const text = b.input('encoder_hidden_states', { dtype: 'f32', shape: [batch, seq('text_seq', cfg.textTokens), cfg.textDim] });
  const timestep = b.input('timestep', { dtype: 'f32', shape: [batch] });
  const maskIn = cfg.mask ? b.input('encoder_attention_mask', { dtype: 'bool', shape: [batch, seq('text_seq', cfg.textTokens)] }) : undefined;

  // Sinusoidal timestep embedding -> MLP.
  const half = 8;
  const freqs = b.constant(Tensor.from('f32', [1, half], Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / half))), 'freqs');
  const tf = op('Mul', [unsq1(op('Mul', [timestep, f32(1000)])), freqs]);
  const temb = linear(silu(linear(op('Concat', [op('Sin', [tf]), op('Cos', [tf])], { axis: int(-1) }), 2 * half, D)), D, D);

  let img = linear(hidden, cfg.inChannels, D);
  let txt: Value = linear(text, cfg.textDim, D);
  // Additive bias over text keys [B, 1, 1, T], and over joint keys (text first) [B, 1, 1, T + S].
  const toBias = (keep: Value): Value =>
    cfg.maskStyle === 'float'
      ? op('Mul', [op('Sub', [f32(1), op('Cast', [keep], { to: int(1) })]), f32(-10000)])
      : op('Where', [keep, f32(0), f32(-1e9)]);
  const textBias = maskIn ? toBias(op('Unsqueeze', [maskIn, i64([1, 2])])) : undefined;
  let jointBias: Value | undefined;
  if (maskIn) {
    // Image tokens are always kept: a constant, or ConstantOfShape([B, S]) when shapes are dynamic.
    const imgKeep = cfg.dynamic
      ? op('ConstantOfShape', [op('Concat', [dimOf(img, 0), dimOf(img, 1)], { axis: int(0) })], { value: { kind: 'tensor', value: Tensor.from('bool', [1], [1]) } })
      : b.constant(Tensor.from('bool', [cfg.batch, cfg.imageTokens], new Array<number>(cfg.batch * cfg.imageTokens).fill(1)), 'img_keep');
    jointBias = toBias(op('Unsqueeze', [op('Concat', [maskIn, imgKeep], { axis: int(1) }), i64([1, 2])]));
  }
  for (let i = 0; i < (cfg.refiner ?? 0); i++) {
    const [sh1, sc1, g1, sh2, sc2, g2] = adaLN(temb, 6) as [Value, Value, Value, Value, Value, Value];
    txt = op('Add', [txt, op('Mul', [g1, selfAttention(modulate(ln(txt), sh1, sc1), textBias)])]);
    txt = op('Add', [txt, op('Mul', [g2, ff(modulate(ln(txt), sh2, sc2))])]);
  }
  const context = txt;
  let stream: Value | undefined = txt; // the text stream of joint blocks (gone after 'joint-last')
  let joint: Value | undefined; // the concatenated stream of single blocks
  for (const kind of cfg.blocks) {
    if (kind === 'single') {
      if (!joint) {
        if (!stream) throw new Error("a 'single' block needs the text stream: put it before any 'joint-last' block");
        joint = op('Concat', [stream, img], { axis: int(1) });
      }
      const [shift, scale, gate] = adaLN(temb, 3) as [Value, Value, Value];
      const n = modulate(ln(joint), shift, scale);
      const [q, k, v] = [0, 1, 2].map(() => splitHeads(linear(n, D, D))) as [Value, Value, Value];
      const attn = mergeHeads(attend(q, k, v, jointBias));
      const mlp = gelu(linear(n, D, 4 * D));
      joint = op('Add', [joint, op('Mul', [gate, linear(op('Concat', [attn, mlp], { axis: int(-1) }), 5 * D, D)])]);
    } else if (kind === 'cross' || kind === 'linear-cross') {
      const [sh1, sc1, g1, sh2, sc2, g2] = adaLN(temb, 6) as [Value, Value, Value, Value, Value, Value];
      const mixer = kind === 'cross' ? selfAttention : linearAttention;
      img = op('Add', [img, op('Mul', [g1, mixer(modulate(ln(img), sh1, sc1))])]);
      const q = splitHeads(linear(ln(img), D, D));
      const k = splitHeads(linear(context, D, D));
      const v = splitHeads(linear(context, D, D));
      img = op('Add', [img, linear(mergeHeads(attend(q, k, v, textBias)), D, D)]);
      img = op('Add', [img, op('Mul', [g2, ff(modulate(ln(img), sh2, sc2))])]);
    } else {
      if (!stream || joint) throw new Error(`a '${kind}' block needs separate image and text streams`);
      const last = kind === 'joint-last';
      const mi = adaLN(temb, kind === 'joint-dual' ? 9 : 6);
      const mt = adaLN(temb, last ? 2 : 6);
      const ni = modulate(ln(img), mi[0]!, mi[1]!);
      const nt = modulate(ln(stream), mt[0]!, mt[1]!);
      const qkv = [0, 1, 2].map(() => op('Concat', [splitHeads(linear(nt, D, D)), splitHeads(linear(ni, D, D))], { axis: int(2) })) as [Value, Value, Value];
      const [ot, oi] = splitSeq(mergeHeads(attend(...qkv, jointBias)), stream);
      const img0 = img;
      img = op('Add', [img, op('Mul', [mi[2]!, linear(oi, D, D)])]);
      if (kind === 'joint-dual') img = op('Add', [img, op('Mul', [mi[8]!, selfAttention(modulate(ln(img0), mi[6]!, mi[7]!))])]);
      img = op('Add', [img, op('Mul', [mi[5]!, ff(modulate(ln(img), mi[3]!, mi[4]!))])]);
      if (last) stream = undefined;
      else {
        stream = op('Add', [stream, op('Mul', [mt[2]!, linear(ot, D, D)])]);
        stream = op('Add', [stream, op('Mul', [mt[5]!, ff(modulate(ln(stream), mt[3]!, mt[4]!))])]);
      }
    }
  }
  if (joint) img = splitSeq(joint, text)[1];
  const [shF, scF] = adaLN(temb, 2) as [Value, Value];
  const out = linear(modulate(ln(img), shF, scF), D, cfg.inChannels);
  const sample = b.add('Identity', [out], {}, { name: 'node_Identity_out', outputNames: ['sample'] })[0]!;
  return new Module(b.build([sample]), { '': 18 }, { irVersion: 10, producerName: 'paradit-tests', producerVersion: '0.1.0' });
}

/** Seeded inputs in graph input order; `batch`/`image`/`text` override the sizes (for dynamic models). */
export function zooDitInputs(cfg: ZooConfig, seed = 1, sizes: { batch?: number; image?: number; text?: number } = {}): Tensor[] {
  const rand = rng(seed);
  const B = sizes.batch ?? cfg.batch;
  const S = sizes.image ?? cfg.imageTokens;
  const T = sizes.text ?? cfg.textTokens;
  const ins = [randomTensor([B, S, cfg.inChannels], rand), randomTensor([B, T, cfg.textDim], rand), Tensor.from('f32', [B], Array.from({ length: B }, () => rand()))];
  if (cfg.mask) {
    const m: number[] = [];
    for (let bi = 0; bi < B; bi++) for (let t = 0; t < T; t++) m.push(t < T - 1 - bi ? 1 : 0);
    ins.push(Tensor.from('bool', [B, T], m));
  }
  return ins;
}
