/**
 * Dynamic-shape exports: decomposed attention whose head splits and merges take their shapes from
 * Shape/Gather/Concat over symbolic batch and sequence dims must still fuse, and block discovery
 * must still find the blocks. Models are built in code, written as ONNX (symbolic dims become
 * dim_params) and read back, as a dynamic-axes export would arrive. Guards against the failure
 * where every such Reshape got fresh symbols (even for the static head count), so q, k and v
 * looked unrelated and the attention stayed a Softmax; and against a mask of ones sized with
 * Shape(stream) counting as stream data (it made the first joint block a different kind).
 */
import { GraphBuilder, Module, Tensor, Value, interpret } from '@paradit/ir';
import type { AttrValue } from '@paradit/ir';
import { discoverBlocks } from '@paradit/passes';
import { ZOO_BASE, ZooConfig, buildZooDit, zooDitInputs } from './models/dit-zoo';
import { compile, count, relL2, roundTrip } from './models/pipeline-helpers';
import { randomTensor, rng } from './models/tiny-dit';

const TOL = 1e-5;



/** One self-attention over x [batch, seq, 16] with 2 heads, shapes from Shape(x), scale on k. */
function dynamicAttention(): Module {
  const rand = rng(9);
  const b = new GraphBuilder(18);
  const int = (value: number): AttrValue => ({ kind: 'int', value });
  const perm = (value: number[]): AttrValue => ({ kind: 'ints', value });
  const op = (o: string, ins: Value[], attrs: Record<string, AttrValue> = {}): Value => b.add(o, ins, attrs)[0]!;
  const i64 = (xs: number[]): Value => b.constant(Tensor.from('i64', [xs.length], xs));
  const x = b.input('x', { dtype: 'f32', shape: ['batch', 'seq', 16] });
  const shape = op('Shape', [x]);
  const dim = (i: number): Value => op('Unsqueeze', [op('Gather', [shape, b.constant(Tensor.from('i64', [], [i]))], { axis: int(0) }), i64([0])]);
  const split = op('Concat', [dim(0), dim(1), i64([2]), i64([-1])], { axis: int(0) });
  const proj = (): Value => op('MatMul', [x, b.constant(randomTensor([16, 16], rand, 0.25))]);
  const q = op('Transpose', [op('Reshape', [proj(), split])], { perm: perm([0, 2, 1, 3]) });
  const kt = op('Transpose', [op('Reshape', [proj(), split])], { perm: perm([0, 2, 3, 1]) });
  const v = op('Transpose', [op('Reshape', [proj(), split])], { perm: perm([0, 2, 1, 3]) });
  const scores = op('MatMul', [q, op('Div', [kt, b.constant(Tensor.from('f32', [], [Math.sqrt(8)]))])]);
  const o = op('Transpose', [op('MatMul', [op('Softmax', [scores], { axis: int(-1) }), v])], { perm: perm([0, 2, 1, 3]) });
  const merged = op('Reshape', [o, op('Concat', [dim(0), dim(1), i64([16])], { axis: int(0) })]);
  return new Module(b.build([merged]), { '': 18 }, { irVersion: 10, producerName: 'paradit-tests', producerVersion: '0.1.0' });
}

describe('dynamic-shape exports', () => {
  test('a Shape-driven decomposed attention fuses into one attention op, numerics unchanged', () => {
    const raw = roundTrip(dynamicAttention());
    expect(raw.graph.inputs[0]!.shape).toEqual(['batch', 'seq', 16]);
    expect(count(raw, 'Softmax')).toBe(1);
    const m = compile(raw);
    expect(count(m, 'attention')).toBe(1);
    expect(count(m, 'Softmax')).toBe(0);
    const attn = m.graph.nodes.find((n) => n.op === 'attention')!;
    expect(attn.outputs[0]!.shape).toEqual(['batch', 2, 'seq', 8]);
    expect(attn.attrs['scale']).toEqual({ kind: 'float', value: expect.closeTo(1 / Math.sqrt(8), 6) });
    expect(m.graph.outputs[0]!.shape).toEqual(['batch', 'seq', 16]);
    for (const [bs, s] of [
      [1, 3],
      [3, 7],
    ]) {
      const xin = randomTensor([bs!, s!, 16], rng(bs! * 10 + s!));
      const want = interpret(raw, [xin])[0]!;
      const got = interpret(m, [xin])[0]!;
      expect(got.shape).toEqual([bs, s, 16]);
      expect(relL2(got, want)).toBeLessThanOrEqual(TOL);
    }
  });

  const CASES: [string, ZooConfig, number, [string, number][]][] = [
    ['PixArt-like, masked cross-attention', { ...ZOO_BASE, blocks: ['cross', 'cross', 'cross'], mask: true, dynamic: true }, 6, [['single-stream+cross-attn', 3]]],
    [
      'FLUX-like double + single stream, masked (ones for the image keys from ConstantOfShape)',
      { ...ZOO_BASE, blocks: ['joint', 'joint', 'single', 'single'], mask: true, dynamic: true },
      4,
      [
        ['double-stream', 2],
        ['single-stream', 2],
      ],
    ],
    [
      'SD3-like first and last blocks',
      { ...ZOO_BASE, blocks: ['joint-dual', 'joint', 'joint-last'], dynamic: true },
      4,
      [
        ['double-stream+self-attn', 1],
        ['double-stream', 1],
        ['double-stream-no-context-update', 1],
      ],
    ],
  ];
  for (const [name, cfg, attention, groups] of CASES) {
    test(`${name}: ${attention} attentions, blocks found, numerics unchanged at two sizes`, () => {
      const raw = roundTrip(buildZooDit(cfg));
      expect(raw.graph.inputs[0]!.shape).toEqual(['batch', 'image_seq', cfg.inChannels]);
      expect(count(raw, 'Softmax')).toBe(attention);
      const m = compile(raw);
      expect(count(m, 'attention')).toBe(attention);
      expect(count(m, 'Softmax')).toBe(0);
      if (cfg.mask) expect(m.graph.nodes.filter((n) => n.op === 'attention' && n.inputs[3])).not.toHaveLength(0);
      expect(discoverBlocks(m.graph).groups.map((g) => [g.kind, g.count])).toEqual(groups);
      for (const sizes of [
        { batch: 1, image: 6, text: 3 },
        { batch: 3, image: 9, text: 5 },
      ]) {
        const ins = zooDitInputs(cfg, 2, sizes);
        const want = interpret(raw, ins)[0]!;
        const got = interpret(m, ins)[0]!;
        expect(got.shape).toEqual([sizes.batch, sizes.image, cfg.inChannels]);
        expect(relL2(got, want)).toBeLessThanOrEqual(TOL);
      }
    });
  }
});
