/**
 * Dynamic-shape exports that fold heads into the batch (diffusers' AttnProcessor:
 * head_to_batch_dim [B,S,N*H] -> [B*N,S,H], baddbmm scores, bmm, batch_to_head_dim back to
 * [B,S,N*H]), with every shape computed by Shape/Gather/Mul/Div/Concat over symbolic batch and
 * sequence dims, as torch.onnx.export writes them with dynamic axes. Models are built in code,
 * written as ONNX (symbolic dims become dim_params) and read back.
 *
 * Guards against: the [B*N] dim getting a fresh symbol (Mul of a symbol by the head count was not
 * tracked), layout tracing giving up on symbolic sizes (so the attention stayed a Softmax), and a
 * folded B*N split guessed where nothing shows it (a graph input [bn,S,H] must not fuse).
 */
import { GraphBuilder, Module, Tensor, Value, interpret } from '@paradit/ir';
import type { AttrValue, Dim } from '@paradit/ir';
import { discoverBlocks } from '@paradit/passes';
import { divDims, mulDims, resolveReshape } from '../packages/passes/src/fold-symbolic-dims';
import { reshapePlan } from '../packages/passes/src/layout-trace';
import { ZOO_BASE, ZooConfig, buildZooDit, zooDitInputs } from './models/dit-zoo';
import { compile, count, relL2, roundTrip } from './models/pipeline-helpers';
import { randomTensor, rng } from './models/tiny-dit';

/** fp32 interpreter before/after the pipeline: relative L2. */
const TOL = 1e-5;



interface FoldedConfig {
  /** An encoder_attention_mask [B, T] (bool) turned into a -10000 bias and repeat_interleave'd over heads. */
  readonly mask: boolean;
  /** Cross-attention over `text` [B, T, D] after the self-attention. */
  readonly cross: boolean;
  /** baddbmm spelling of the scores: Add(Mul(MatMul, alpha), Mul(input, beta)); else Mul(MatMul, scale). */
  readonly baddbmm: boolean;
  /** Both products as Einsum ('bid,bjd->bij', 'bij,bjd->bid') instead of bmm. */
  readonly einsum?: boolean;
  /**
   * How the mask is repeated over heads: 'expand' (Expand to [B,N,1,T], Reshape to [B*N,1,T]), or
   * 'tile' as torch exports repeat_interleave(N, dim=0): Tile of Unsqueeze(mask, 1), Reshape to [-1,1,T].
   */
  readonly repeat?: 'expand' | 'tile';
}

const N = 4;
const H = 8;
const D = N * H;

/** diffusers-style attention block(s) over x [batch, seq, D] (and text [batch, text_seq, D]). */
function foldedHeadsModel(cfg: FoldedConfig): Module {
  const rand = rng(cfg.mask ? 7 : 5);
  const b = new GraphBuilder(17);
  let k = 0;
  const int = (value: number): AttrValue => ({ kind: 'int', value });
  const op = (o: string, ins: (Value | null)[], attrs: Record<string, AttrValue> = {}): Value => b.add(o, ins, attrs, { name: `node_${o}_${k++}` })[0]!;
  const i64 = (xs: number[]): Value => b.constant(Tensor.from('i64', [xs.length], xs), `c${k++}`);
  const f32 = (x: number): Value => b.constant(Tensor.from('f32', [], [x]), `c${k++}`);
  const cat = (parts: Value[]): Value => op('Concat', parts, { axis: int(0) });
  /** Dim i of x as an i64 scalar (Shape -> Gather), as the exporter writes `x.shape[i]`. */
  const dim = (x: Value, i: number): Value => op('Gather', [op('Shape', [x]), b.constant(Tensor.from('i64', [], [i]), `c${k++}`)], { axis: int(0) });
  const vec = (s: Value): Value => op('Unsqueeze', [s, i64([0])]);
  const linear = (x: Value): Value => op('Add', [op('MatMul', [x, b.constant(randomTensor([D, D], rand, 1 / Math.sqrt(D)), `w${k++}`)]), b.constant(randomTensor([D], rand, 0.1), `b${k++}`)]);

  /** head_to_batch_dim: [B,S,N*H] -> [B,S,N,H] -> [B,N,S,H] -> [B*N,S,H]. */
  const headToBatch = (t: Value): Value => {
    const [bs, seq, d] = [dim(t, 0), dim(t, 1), dim(t, 2)];
    const hd = op('Div', [d, i64Scalar(N)]);
    const split = op('Reshape', [t, cat([vec(bs), vec(seq), i64([N]), vec(hd)])]);
    const perm = op('Transpose', [split], { perm: { kind: 'ints', value: [0, 2, 1, 3] } });
    return op('Reshape', [perm, cat([vec(op('Mul', [bs, i64Scalar(N)])), vec(seq), vec(hd)])]);
  };
  /** batch_to_head_dim: [B*N,S,H] -> [B,N,S,H] -> [B,S,N,H] -> [B,S,N*H]. */
  const batchToHead = (t: Value): Value => {
    const [bn, seq, hd] = [dim(t, 0), dim(t, 1), dim(t, 2)];
    const bs = op('Div', [bn, i64Scalar(N)]);
    const split = op('Reshape', [t, cat([vec(bs), i64([N]), vec(seq), vec(hd)])]);
    const perm = op('Transpose', [split], { perm: { kind: 'ints', value: [0, 2, 1, 3] } });
    return op('Reshape', [perm, cat([vec(bs), vec(seq), vec(op('Mul', [hd, i64Scalar(N)]))])]);
  };
  /** An i64 scalar constant (the exporter's `head_size` in shape arithmetic). */
  function i64Scalar(x: number): Value {
    return b.constant(Tensor.from('i64', [], [x]), `c${k++}`);
  }
  const scale = H ** -0.5;
  const attention = (xq: Value, xkv: Value, bias?: Value): Value => {
    const q = headToBatch(linear(xq));
    const key = headToBatch(linear(xkv));
    const v = headToBatch(linear(xkv));
    const einsum = (eq: string, a: Value, c: Value): Value => op('Einsum', [a, c], { equation: { kind: 'string', value: eq } });
    const qk = cfg.einsum ? einsum('bid,bjd->bij', q, key) : op('MatMul', [q, op('Transpose', [key], { perm: { kind: 'ints', value: [0, 2, 1] } })]);
    let s: Value;
    if (cfg.baddbmm) {
      // baddbmm(input, q, k^T, beta, alpha): without a mask input = torch.empty(B*N, Sq, Skv), beta = 0.
      const input =
        bias ??
        op('ConstantOfShape', [cat([vec(dim(q, 0)), vec(dim(q, 1)), vec(dim(key, 1))])], { value: { kind: 'tensor', value: Tensor.from('f32', [1], [0]) } });
      s = op('Add', [op('Mul', [qk, f32(scale)]), op('Mul', [input, f32(bias ? 1 : 0)])]);
    } else {
      s = op('Mul', [qk, f32(scale)]);
      if (bias) s = op('Add', [s, bias]);
    }
    const p = op('Softmax', [s], { axis: int(-1) });
    return linear(batchToHead(cfg.einsum ? einsum('bij,bjd->bid', p, v) : op('MatMul', [p, v])));
  };

  const x = b.input('hidden_states', { dtype: 'f32', shape: ['batch', 'seq', D] });
  const text = cfg.cross ? b.input('encoder_hidden_states', { dtype: 'f32', shape: ['batch', 'text_seq', D] }) : undefined;
  const maskIn = cfg.mask ? b.input('encoder_attention_mask', { dtype: 'bool', shape: ['batch', cfg.cross ? 'text_seq' : 'seq'] }) : undefined;
  let bias: Value | undefined;
  if (maskIn) {
    // (1 - mask) * -10000, unsqueeze(1) -> [B,1,T]; prepare_attention_mask: repeat_interleave(N, dim=0) -> [B*N,1,T].
    const b3 = op('Unsqueeze', [op('Mul', [op('Sub', [f32(1), op('Cast', [maskIn], { to: int(1) })]), f32(-10000)]), i64([1])]);
    if (cfg.repeat === 'tile') {
      const tiled = op('Tile', [op('Unsqueeze', [b3, i64([1])]), i64([1, N, 1, 1])]);
      bias = op('Reshape', [tiled, cat([i64([-1]), op('Shape', [b3], { start: int(1) })])]);
    } else {
      const wide = op('Expand', [op('Unsqueeze', [b3, i64([1])]), cat([vec(dim(b3, 0)), i64([N, 1]), vec(dim(b3, 2))])]);
      bias = op('Reshape', [wide, cat([vec(op('Mul', [dim(b3, 0), i64Scalar(N)])), i64([1]), vec(dim(b3, 2))])]);
    }
  }
  let h = op('Add', [x, attention(x, x, cfg.cross ? undefined : bias)]);
  if (text) h = op('Add', [h, attention(h, text, bias)]);
  return new Module(b.build([h]), { '': 17 }, { irVersion: 9, producerName: 'paradit-tests', producerVersion: '0.1.0' });
}

function inputsFor(cfg: FoldedConfig, batch: number, seq: number, textSeq: number): Tensor[] {
  const rand = rng(batch * 100 + seq * 10 + textSeq);
  const ins = [randomTensor([batch, seq, D], rand)];
  if (cfg.cross) ins.push(randomTensor([batch, textSeq, D], rand));
  if (cfg.mask) {
    const T = cfg.cross ? textSeq : seq;
    const m: number[] = [];
    for (let bi = 0; bi < batch; bi++) for (let t = 0; t < T; t++) m.push(t < T - 1 - (bi % 2) ? 1 : 0);
    ins.push(Tensor.from('bool', [batch, T], m));
  }
  return ins;
}

describe('dynamic exports with heads folded into the batch (head_to_batch_dim)', () => {
  const CASES: [string, FoldedConfig, number][] = [
    ['self-attention, no mask', { mask: false, cross: false, baddbmm: false }, 1],
    ['self-attention, padding mask repeated over heads', { mask: true, cross: false, baddbmm: false }, 1],
    ['self + cross-attention, baddbmm with beta=0 over torch.empty', { mask: false, cross: true, baddbmm: true }, 2],
    ['self + masked cross-attention, baddbmm with the mask as input', { mask: true, cross: true, baddbmm: true }, 2],
    ['self + masked cross-attention, Einsum products', { mask: true, cross: true, baddbmm: false, einsum: true }, 2],
    ['masked self-attention, mask repeated with repeat_interleave (Tile, Reshape to [-1,1,T])', { mask: true, cross: false, baddbmm: true, repeat: 'tile' }, 1],
  ];
  for (const [name, cfg, attention] of CASES) {
    test(`${name}: ${attention} attention op(s), no Softmax, numerics unchanged at two sizes`, () => {
      const raw = roundTrip(foldedHeadsModel(cfg));
      expect(raw.graph.inputs[0]!.shape).toEqual(['batch', 'seq', D]);
      expect(count(raw, 'Softmax')).toBe(attention);
      const m = compile(raw);
      expect(count(m, 'attention')).toBe(attention);
      expect(count(m, 'Softmax')).toBe(0);
      const atts = m.graph.nodes.filter((n) => n.op === 'attention');
      for (const a of atts) {
        expect(a.attrs['numHeads']).toEqual({ kind: 'int', value: N });
        expect(a.attrs['scale']).toEqual({ kind: 'float', value: expect.closeTo(H ** -0.5, 6) });
        // Canonical [B,N,S,H]: the batch is the input's symbol, not a product or a fresh symbol.
        expect(a.inputs[0]!.shape).toEqual(['batch', N, 'seq', H]);
      }
      // A mask reaches the op only where the model has one (beta=0 over torch.empty adds nothing).
      expect(atts.filter((a) => a.inputs[3]).length).toBe(cfg.mask ? 1 : 0);
      // The head split/merge around the op folds away: no [B*N,...] value is left.
      expect(m.graph.nodes.some((n) => n.outputs.some((o) => o.shape.includes(`batch*${N}`)))).toBe(false);
      for (const [bs, s, t] of [
        [1, 3, 2],
        [3, 7, 5],
      ] as const) {
        const ins = inputsFor(cfg, bs, s, t);
        const want = interpret(raw, ins)[0]!;
        const got = interpret(m, ins)[0]!;
        expect(got.shape).toEqual([bs, s, D]);
        expect(relL2(got, want)).toBeLessThanOrEqual(TOL);
      }
    });
  }

  const ZOO: [string, ZooConfig, number, [string, number][]][] = [
    [
      'PixArt-like cross blocks, float mask bias expanded over heads',
      { ...ZOO_BASE, blocks: ['cross', 'cross', 'cross'], mask: true, attention: 'batched', maskStyle: 'float', dynamic: true },
      6,
      [['single-stream+cross-attn', 3]],
    ],
    [
      'FLUX-like double + single stream, masked',
      { ...ZOO_BASE, blocks: ['joint', 'joint', 'single', 'single'], mask: true, attention: 'batched', dynamic: true },
      4,
      [
        ['double-stream', 2],
        ['single-stream', 2],
      ],
    ],
  ];
  for (const [name, cfg, attention, groups] of ZOO) {
    test(`zoo DiT with batched heads, dynamic: ${name}: ${attention} attentions, blocks found, numerics at two sizes`, () => {
      const raw = roundTrip(buildZooDit(cfg));
      expect(raw.graph.inputs[0]!.shape).toEqual(['batch', 'image_seq', cfg.inChannels]);
      const m = compile(raw);
      expect(count(m, 'attention')).toBe(attention);
      expect(count(m, 'Softmax')).toBe(0);
      expect(m.graph.nodes.filter((n) => n.op === 'attention' && n.inputs[3]).length).toBeGreaterThan(0);
      expect(discoverBlocks(m.graph).groups.map((g) => [g.kind, g.count])).toEqual(groups);
      for (const sizes of [
        { batch: 1, image: 6, text: 3 },
        { batch: 3, image: 9, text: 5 },
      ]) {
        const ins = zooDitInputs(cfg, 2, sizes);
        const got = interpret(m, ins)[0]!;
        expect(got.shape).toEqual([sizes.batch, sizes.image, cfg.inChannels]);
        expect(relL2(got, interpret(raw, ins)[0]!)).toBeLessThanOrEqual(TOL);
      }
    });
  }

  test('must not fire: a [bn,S,H] graph input with no visible B*N split stays a Softmax (the factorization is ambiguous)', () => {
    const b = new GraphBuilder(17);
    const q = b.input('q', { dtype: 'f32', shape: ['bn', 'seq', H] });
    const kk = b.input('k', { dtype: 'f32', shape: ['bn', 'seq', H] });
    const v = b.input('v', { dtype: 'f32', shape: ['bn', 'seq', H] });
    const kt = b.add('Transpose', [kk], { perm: { kind: 'ints', value: [0, 2, 1] } })[0]!;
    const s = b.add('Mul', [b.add('MatMul', [q, kt])[0]!, b.constant(Tensor.from('f32', [], [H ** -0.5]))])[0]!;
    const o = b.add('MatMul', [b.add('Softmax', [s], { axis: { kind: 'int', value: -1 } })[0]!, v])[0]!;
    const raw = roundTrip(new Module(b.build([o]), { '': 17 }, { irVersion: 9, producerName: 'paradit-tests', producerVersion: '0.1.0' }));
    const m = compile(raw);
    expect(count(m, 'attention')).toBe(0);
    expect(count(m, 'Softmax')).toBe(1);
    const rand = rng(4);
    const ins = [randomTensor([6, 5, H], rand), randomTensor([6, 5, H], rand), randomTensor([6, 5, H], rand)];
    expect(relL2(interpret(m, ins)[0]!, interpret(raw, ins)[0]!)).toBeLessThanOrEqual(TOL);
  });

  test('static [B,N,S,H] Einsum attention (bhid,bhjd->bhij; bhij,bhjd->bhid) fuses; scores that are not q @ k^T do not', () => {
    const build = (scoresEq: string, kShape: number[] = [2, N, 5, H]): Module => {
      const b = new GraphBuilder(17);
      const [q, kk, v] = ['q', 'k', 'v'].map((n) => b.input(n, { dtype: 'f32', shape: n === 'k' ? kShape : [2, N, 5, H] })) as [Value, Value, Value];
      const eq = (e: string): Record<string, AttrValue> => ({ equation: { kind: 'string', value: e } });
      const s = b.add('Div', [b.add('Einsum', [q, kk], eq(scoresEq))[0]!, b.constant(Tensor.from('f32', [], [Math.sqrt(H)]))])[0]!;
      const p = b.add('Softmax', [s], { axis: { kind: 'int', value: -1 } })[0]!;
      const o = b.add('Einsum', [p, v], eq('bhij,bhjd->bhid'))[0]!;
      return new Module(b.build([o]), { '': 17 }, { irVersion: 9, producerName: 'paradit-tests', producerVersion: '0.1.0' });
    };
    const rand = rng(11);
    const ins = [0, 1, 2].map(() => randomTensor([2, N, 5, H], rand));
    const raw = build('bhid,bhjd->bhij');
    const m = compile(raw);
    expect(count(m, 'attention')).toBe(1);
    expect(count(m, 'Einsum')).toBe(0);
    expect(m.graph.nodes.find((n) => n.op === 'attention')!.attrs['scale']).toEqual({ kind: 'float', value: expect.closeTo(H ** -0.5, 6) });
    expect(relL2(interpret(m, ins)[0]!, interpret(raw, ins)[0]!)).toBeLessThanOrEqual(TOL);
    // k^T given as such (bhdj) is q @ k^T too.
    const kt = build('bhid,bhdj->bhij', [2, N, H, 5]);
    expect(count(compile(kt), 'attention')).toBe(1);
    const kins = [ins[0]!, randomTensor([2, N, H, 5], rand), ins[2]!];
    expect(relL2(interpret(compile(kt), kins)[0]!, interpret(kt, kins)[0]!)).toBeLessThanOrEqual(TOL);
    // Scores transposed (bhji: softmax over the queries): no attention.
    const notAttention = build('bhid,bhjd->bhji');
    expect(count(compile(notAttention), 'attention')).toBe(0);
    expect(count(compile(notAttention), 'Softmax')).toBe(1);
  });

  test('product dims: names, exact division only, Reshape -1 solved through products', () => {
    expect(mulDims('batch', 4)).toBe('batch*4');
    expect(mulDims(4, 'batch')).toBe('batch*4');
    expect(mulDims('seq', 'batch')).toBe('batch*seq');
    expect(mulDims('batch*4', 2)).toBe('batch*8');
    expect(mulDims('image_seq+text_seq', 2)).toBeUndefined();
    expect(divDims('batch*4', 4)).toBe('batch');
    expect(divDims('batch*4', 2)).toBe('batch*2');
    expect(divDims('batch*4', 'batch')).toBe(4);
    expect(divDims('batch*2', 4)).toBeUndefined();
    expect(divDims('batch', 2)).toBeUndefined();
    expect(divDims(4, 'batch')).toBeUndefined();
    expect(resolveReshape(['batch*4', 'seq', 8], ['batch', 4, 'seq', -1], false)).toEqual(['batch', 4, 'seq', 8]);
    // 0 copies the 4, so the -1 would be seq*2: no lone symbol.
    expect(resolveReshape(['batch', 4, 'seq', 8], ['batch*4', 0, -1], false)).toBeUndefined();
    expect(resolveReshape(['batch', 4, 'seq', 8], ['batch*4', -1, 8], false)).toEqual(['batch*4', 'seq', 8]);
    // A -1 becomes a product only when that product already names a dim (repeat_interleave's [-1,1,T]).
    expect(resolveReshape(['batch', 4, 1, 'text_seq'], [-1, 1, 'text_seq'], false)).toBeUndefined();
    expect(resolveReshape(['batch', 4, 1, 'text_seq'], [-1, 1, 'text_seq'], false, new Set(['batch*4']))).toEqual(['batch*4', 1, 'text_seq']);
  });

  test('reshapePlan: copies, run-time dims and one -1; two underivable dims are refused', () => {
    const dims = (p: ReturnType<typeof reshapePlan>): (number | string)[] | undefined => p?.map((x) => (x.kind === 'const' ? x.value : `d${x.axis}*${x.mul}/${x.div}`));
    expect(dims(reshapePlan(['batch', 'seq', 32], ['batch', 'seq', 4, 8]))).toEqual([0, 0, 4, 8]);
    expect(dims(reshapePlan(['batch', 4, 'seq', 8], ['batch*4', 'seq', 8]))).toEqual([-1, 'd2*1/1', 8]);
    expect(dims(reshapePlan(['batch*4', 'seq', 8], ['batch', 4, 'seq', 8]))).toEqual([-1, 4, 'd1*1/1', 8]);
    const other: Dim[] = ['other', 'more', 8];
    expect(reshapePlan(['batch', 'seq', 8], other)).toBeUndefined();
  });
});
