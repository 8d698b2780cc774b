/**
 * shard-rows (packages/passes/src/rows-parallel/apply.ts) on simulated ranks: convolutions with
 * halos are bitwise equal to the unsharded graph (seeded random weights and inputs, so every band
 * edge row depends on the neighbour's rows and on the zero padding at the image edges), a nearest
 * upsample needs no halo, GroupNorm's all-reduced statistics agree within fp32 rounding, the
 * collectives inserted are the ones the plan predicts, and ops without a rule are refused by name.
 */
import { GraphBuilder, Module, Tensor, interpret, runSimulated, tensorType } from '@paradit/ir';
import type { Attrs, Value } from '@paradit/ir';
import { shardRows } from '../src/rows-parallel/apply';

const ints = (value: number[]): Attrs[string] => ({ kind: 'ints', value });

/** Deterministic values in [-1, 1) (a small LCG): no two band-edge rows alike. */
function seeded(shape: number[], seed: number): Tensor {
  let s = seed >>> 0;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 2 ** 31 - 1;
  }
  return Tensor.normalized('f32', shape, data);
}

function conv(b: GraphBuilder, x: Value, cin: number, cout: number, o: { k: number; s?: number; pt: number; pb: number; seed: number }): Value {
  const w = b.constant(seeded([cout, cin, o.k, o.k], o.seed), `w${o.seed}`);
  const bias = b.constant(seeded([cout], o.seed + 1), `b${o.seed}`);
  const s = o.s ?? 1;
  const attrs: Attrs = { kernel_shape: ints([o.k, o.k]), strides: ints([s, s]), pads: ints([o.pt, o.pt, o.pb, o.pb]) };
  return b.add('Conv', [x, w, bias], attrs, { name: `conv${o.seed}` })[0]!;
}

const mesh = (w: number): { cfg: number; ring: number; ulysses: number } => ({ cfg: 1, ring: w, ulysses: 1 });

function run(m: Module, world: number, x: Tensor): { got: Tensor; ref: Tensor; sharded: Module } {
  const sharded = shardRows(m, world);
  return { got: runSimulated(sharded, mesh(world), [x])[0]!, ref: interpret(m, [x])[0]!, sharded };
}

function count(m: Module, op: string): number {
  return m.graph.nodes.filter((n) => n.op === op).length;
}

describe('shard-rows on simulated ranks', () => {
  test.each([2, 4])('3x3, 5x5 and 1x1 convs with SiLU between: bitwise equal at degree %i', (world) => {
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [1, 3, 16, 6]));
    const a = conv(b, x, 3, 4, { k: 3, pt: 1, pb: 1, seed: 10 });
    const [act] = b.add('silu', [a], {}, { name: 'act' });
    const c = conv(b, act!, 4, 4, { k: 5, pt: 2, pb: 2, seed: 20 });
    const d = conv(b, c, 4, 2, { k: 1, pt: 0, pb: 0, seed: 30 });
    const m = new Module(b.build([d]), { '': 18 });
    const { got, ref, sharded } = run(m, world, seeded([1, 3, 16, 6], 7));
    expect(Array.from(got.data)).toEqual(Array.from(ref.data));
    // 3x3: one ppermute each way; 5x5: one each way (2 rows per message); 1x1: none.
    expect(count(sharded, 'ppermute')).toBe(4);
    expect(count(sharded, 'all_gather')).toBe(1);
  });

  test('stride 2 with pads (0, 1): bitwise equal at degree 2', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [1, 2, 8, 8]));
    const y = conv(b, x, 2, 3, { k: 3, s: 2, pt: 0, pb: 1, seed: 40 });
    const m = new Module(b.build([y]), { '': 18 });
    const { got, ref, sharded } = run(m, 2, seeded([1, 2, 8, 8], 8));
    expect(Array.from(got.data)).toEqual(Array.from(ref.data));
    expect(count(sharded, 'ppermute')).toBe(1); // only from below
  });

  test('nearest 2x upsample then a 3x3 conv: bitwise equal at degree 4', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [1, 2, 4, 5]));
    const scales = b.constant(Tensor.from('f32', [4], [1, 1, 2, 2]), 'scales');
    const [up] = b.add('Resize', [x, null, scales], { mode: { kind: 'string', value: 'nearest' } }, { name: 'up' });
    const y = conv(b, up!, 2, 2, { k: 3, pt: 1, pb: 1, seed: 50 });
    const m = new Module(b.build([y]), { '': 18 });
    const { got, ref } = run(m, 4, seeded([1, 2, 4, 5], 9));
    expect(got.shape).toEqual([1, 2, 8, 10]);
    expect(Array.from(got.data)).toEqual(Array.from(ref.data));
  });

  test('GroupNorm (Reshape, InstanceNormalization, Reshape): all-reduced statistics within 1e-6', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [1, 4, 8, 3]));
    const [g] = b.add('Reshape', [x, b.constant(Tensor.from('i64', [3], [1, 2, 48]))], {}, { name: 'to_groups' });
    const [n] = b.add('InstanceNormalization', [g!, b.constant(seeded([2], 1)), b.constant(seeded([2], 2))], {}, { name: 'norm' });
    const [back] = b.add('Reshape', [n!, b.constant(Tensor.from('i64', [4], [1, 4, 8, 3]))], {}, { name: 'to_nchw' });
    const m = new Module(b.build([back!]), { '': 18 });
    const { got, ref, sharded } = run(m, 2, seeded([1, 4, 8, 3], 11));
    got.data.forEach((v, i) => expect(Math.abs(v - ref.data[i]!)).toBeLessThan(1e-6));
    expect(count(sharded, 'all_reduce')).toBe(2); // the mean, then the variance
  });

  test('an op without a rule on a split value is refused, naming it', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [1, 2, 4, 4]));
    const [y] = b.add('Softmax', [x], { axis: { kind: 'int', value: 2 } }, { name: 'sm' });
    const m = new Module(b.build([y!]), { '': 18 });
    expect(() => shardRows(m, 2)).toThrow("rows-parallel: Softmax 'sm': this op has no rows-parallel rule");
  });
});
