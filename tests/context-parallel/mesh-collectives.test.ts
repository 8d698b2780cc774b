/**
 * The mesh (rank numbering, groups), the collective ops' shape rules and their simulated
 * semantics, checked against hand-computed values; token reordering; the ring-attention kernels
 * against the reference `attention` op.
 */
import {
  GraphBuilder,
  IrError,
  Module,
  Tensor,
  Value,
  axisIndex,
  coordsOf,
  groupOf,
  groupsOf,
  interpret,
  makeMesh,
  naturalToOrdered,
  orderedToNatural,
  rankOf,
  runSimulated,
  seqMeshAxis,
  simulateRanks,
} from '@paradit/ir';
import type { AttrValue } from '@paradit/ir';
import { createPassContext, hasMeshOptions, meshFromOptions, meshOf, withMesh } from '@paradit/passes';
import { randomTensor, rng } from '../models/tiny-dit';

const str = (value: string): AttrValue => ({ kind: 'string', value });
const int = (value: number): AttrValue => ({ kind: 'int', value });
const ints = (value: number[]): AttrValue => ({ kind: 'ints', value });

function moduleOf(build: (b: GraphBuilder) => Value[]): Module {
  const b = new GraphBuilder(18);
  const outs = build(b);
  return new Module(b.build(outs), { '': 18 });
}

const iota = (shape: number[]): Tensor => Tensor.from('f32', shape, Array.from({ length: shape.reduce((a, c) => a * c, 1) }, (_, i) => i));

describe('mesh', () => {
  const m = makeMesh({ cfg: 2, ring: 2, ulysses: 2 });
  test('rank = (c*R + r)*U + u: Ulysses groups are adjacent ranks', () => {
    expect(rankOf(m, { cfg: 1, ring: 0, ulysses: 1 })).toBe(5);
    expect(coordsOf(m, 6)).toEqual({ cfg: 1, ring: 1, ulysses: 0 });
    expect(groupsOf(m, 'ulysses')).toEqual([[0, 1], [2, 3], [4, 5], [6, 7]]);
    expect(groupsOf(m, 'ring')).toEqual([[0, 2], [1, 3], [4, 6], [5, 7]]);
    expect(groupsOf(m, 'cfg')).toEqual([[0, 4], [1, 5], [2, 6], [3, 7]]);
    expect(groupsOf(m, 'sp')).toEqual([[0, 1, 2, 3], [4, 5, 6, 7]]);
    expect(groupOf(m, 'sp', 6)).toEqual([4, 5, 6, 7]);
    expect(axisIndex(m, 'sp', 6)).toBe(2); // ring 1, ulysses 0 -> 1*2 + 0
  });
  test('the sequence mesh axis names the degree actually used', () => {
    expect(seqMeshAxis(makeMesh({ ulysses: 4 }))).toBe('ulysses');
    expect(seqMeshAxis(makeMesh({ ring: 2 }))).toBe('ring');
    expect(seqMeshAxis(makeMesh({ ring: 2, ulysses: 2 }))).toBe('sp');
    expect(seqMeshAxis(makeMesh({ cfg: 2 }))).toBeUndefined();
  });
  test('bad degrees are rejected', () => {
    expect(() => makeMesh({ ring: 0 })).toThrow(/--ring must be a positive integer, got 0/);
  });
  test('meshFromOptions reads --ulysses/--ring/--cfg as typed (strings) or given (numbers); PassOptions carries the mesh', () => {
    expect(meshFromOptions({ ulysses: '2', ring: 4 })).toEqual({ cfg: 1, ring: 4, ulysses: 2 });
    expect(meshFromOptions({})).toEqual({ cfg: 1, ring: 1, ulysses: 1 });
    expect(hasMeshOptions({})).toBe(false);
    expect(hasMeshOptions({ cfg: '0' })).toBe(true); // present, so meshFromOptions rejects it
    for (const bad of ['0', '-2', 'two', '2.5', '', ' ']) {
      expect(() => meshFromOptions({ cfg: bad })).toThrow(`--cfg must be a positive integer (the number of ranks on that mesh axis), got '${bad}'`);
    }
    expect(() => meshFromOptions({ ulysses: 0 })).toThrow(IrError);
    const ctx = createPassContext();
    expect(meshOf(ctx)).toEqual({ cfg: 1, ring: 1, ulysses: 1 });
    expect(meshOf(withMesh(ctx, makeMesh({ ring: 2 }))).ring).toBe(2);
    expect(meshOf(createPassContext({ options: { mesh: makeMesh({ cfg: 2 }) } })).cfg).toBe(2);
  });
});

describe('collective ops', () => {
  const mesh = makeMesh({ ulysses: 2 });
  const meshAttrs = { meshAxis: str('ulysses'), groupSize: int(2) };

  test('shard_slice then all_gather round-trips; each rank holds its part', () => {
    const m = moduleOf((b) => {
      const x = b.input('x', { dtype: 'f32', shape: [2, 4] });
      const s = b.add('shard_slice', [x], { ...meshAttrs, axis: int(1) })[0]!;
      expect(s.shape).toEqual([2, 2]);
      const y = b.add('all_gather', [s], { ...meshAttrs, axis: int(1) })[0]!;
      return [s, y];
    });
    const ranks = simulateRanks(m, mesh, [iota([2, 4])]);
    expect(ranks[0]![0]!.toArray()).toEqual([0, 1, 4, 5]);
    expect(ranks[1]![0]!.toArray()).toEqual([2, 3, 6, 7]);
    expect(ranks[1]![1]!.toArray()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  test('all_to_all scatters one axis and gathers another (Ulysses heads <-> sequence)', () => {
    // Local [heads 2, seq 2] per rank; after all_to_all {split 0, concat 1}: [1, 4].
    const m = moduleOf((b) => {
      const x = b.input('x', { dtype: 'f32', shape: [2, 4] });
      const s = b.add('shard_slice', [x], { ...meshAttrs, axis: int(1) })[0]!;
      return b.add('all_to_all', [s], { ...meshAttrs, splitAxis: int(0), concatAxis: int(1) });
    });
    const ranks = simulateRanks(m, mesh, [iota([2, 4])]);
    // rank 0 holds columns 0,1; rank 1 columns 2,3. Rank j receives row j from everyone.
    expect(ranks[0]![0]!.shape).toEqual([1, 4]);
    expect(ranks[0]![0]!.toArray()).toEqual([0, 1, 2, 3]);
    expect(ranks[1]![0]!.toArray()).toEqual([4, 5, 6, 7]);
  });

  test('all_reduce sums, averages and takes the max over the group', () => {
    const m = moduleOf((b) => {
      const x = b.input('x', { dtype: 'f32', shape: [1, 4] });
      const s = b.add('shard_slice', [x], { ...meshAttrs, axis: int(1) })[0]!;
      return ['sum', 'mean', 'max'].map((r) => b.add('all_reduce', [s], { ...meshAttrs, reduce: str(r) })[0]!);
    });
    const out = runSimulated(m, mesh, [Tensor.from('f32', [1, 4], [1, 5, 3, 2])]);
    expect(out.map((t) => t.toArray())).toEqual([[4, 7], [2, 3.5], [3, 5]]);
  });

  test('ppermute passes blocks around the ring; shard_slice with shift picks the block that arrives', () => {
    const ring = makeMesh({ ring: 4 });
    const r = { meshAxis: str('ring'), groupSize: int(4) };
    const m = moduleOf((b) => {
      const x = b.input('x', { dtype: 'f32', shape: [4] });
      const s = b.add('shard_slice', [x], { ...r, axis: int(0) })[0]!;
      const p = b.add('ppermute', [s], { ...r, shift: int(1) })[0]!;
      const q = b.add('shard_slice', [x], { ...r, axis: int(0), shift: int(1) })[0]!;
      return [p, q];
    });
    const ranks = simulateRanks(m, ring, [Tensor.from('f32', [4], [10, 11, 12, 13])]);
    // Rank i receives from i-1: [13], [10], [11], [12]; the shifted slice agrees.
    expect(ranks.map((o) => o[0]!.toArray()[0])).toEqual([13, 10, 11, 12]);
    expect(ranks.map((o) => o[1]!.toArray()[0])).toEqual([13, 10, 11, 12]);
  });

  test('all_to_all with splitAxis = concatAxis exchanges contiguous chunks and keeps the shape', () => {
    // The form plans run after packing: chunk j of member i goes to member j, at position i.
    const m = moduleOf((b) => {
      const x = b.input('x', { dtype: 'f32', shape: [2, 2] });
      return b.add('all_to_all', [b.add('shard_slice', [x], { ...meshAttrs, axis: int(0) })[0]!], { ...meshAttrs, splitAxis: int(1), concatAxis: int(1) });
    });
    expect(m.graph.outputs[0]!.shape).toEqual([1, 2]);
    const ranks = simulateRanks(m, mesh, [Tensor.from('f32', [2, 2], [10, 11, 12, 13])]);
    expect(ranks.map((o) => o[0]!.toArray())).toEqual([[10, 12], [11, 13]]);
  });

  test('a collective cannot run on one rank, and a mesh mismatch is named', () => {
    const m = moduleOf((b) => {
      const x = b.input('x', { dtype: 'f32', shape: [4] });
      return b.add('shard_slice', [x], { ...meshAttrs, axis: int(0) }, { name: 'slice_0' });
    });
    expect(() => interpret(m, [iota([4])])).toThrow(/shard_slice 'slice_0': .*cannot run on a single rank: run the module with runSimulated/);
    expect(() => runSimulated(m, makeMesh({ ulysses: 4 }), [iota([4])])).toThrow(/compiled for a group of 2 ranks on 'ulysses', but the mesh .* has 4/);
  });

  test('shape rules reject bad operands', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: [3, 4] });
    expect(() => b.add('shard_slice', [x], { ...meshAttrs, axis: int(0) }, { name: 's' })).toThrow(/axis 0 of \[3,4\] has size 3, not divisible by groupSize 2/);
    expect(() => b.add('all_to_all', [x], { ...meshAttrs, splitAxis: int(0), concatAxis: int(1) })).toThrow(/split axis 0 of \[3,4\] has size 3, not divisible by groupSize 2/);
    expect(() => b.add('all_gather', [x], { meshAxis: str('rows'), groupSize: int(2), axis: int(0) })).toThrow(/meshAxis' must be one of cfg, ring, ulysses, sp, got 'rows'/);
    expect(() => b.add('to_token_order', [x], { axis: int(0), segments: ints([2, 2]), chunks: int(2) })).toThrow(/must hold the 4 tokens of segments \[2,2\]/);
  });

  test('runSimulated refuses outputs that differ between ranks', () => {
    const m = moduleOf((b) => {
      const x = b.input('x', { dtype: 'f32', shape: [4] });
      return b.add('shard_slice', [x], { ...meshAttrs, axis: int(0) });
    });
    expect(() => runSimulated(m, mesh, [iota([4])])).toThrow(IrError);
    expect(() => runSimulated(m, mesh, [iota([4])])).toThrow(/ranks 0 and 1 computed different values .* gather it before the output/);
  });
});

describe('token order', () => {
  test('segments [3, 4] over 2 chunks: chunk p = part p of each padded segment', () => {
    // text 0..2 padded to 4 (one pad), image 3..6: chunk 0 = t0 t1 i3 i4, chunk 1 = t2 pad i5 i6.
    expect(Array.from(orderedToNatural([3, 4], 2))).toEqual([0, 1, 3, 4, 2, -1, 5, 6]);
    expect(Array.from(naturalToOrdered([3, 4], 2))).toEqual([0, 1, 4, 2, 3, 6, 7]);
  });
  test('to_token_order and from_token_order are inverse (padding filled, then dropped)', () => {
    const m = moduleOf((b) => {
      const x = b.input('x', { dtype: 'f32', shape: [1, 7] });
      const o = b.add('to_token_order', [x], { axis: int(1), segments: ints([3, 4]), chunks: int(2), fill: { kind: 'float', value: -1 } })[0]!;
      return [o, b.add('from_token_order', [o], { axis: int(1), segments: ints([3, 4]), chunks: int(2) })[0]!];
    });
    const [o, back] = interpret(m, [iota([1, 7])]);
    expect(o!.toArray()).toEqual([0, 1, 3, 4, 2, -1, 5, 6]);
    expect(back!.toArray()).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });
});

describe('ring-attention kernels', () => {
  const B = 1, N = 2, S = 6, H = 4;
  const attrs = { scale: { kind: 'float', value: 0.5 } as AttrValue, numHeads: int(N), kvHeads: int(1) };
  test('merging attention_lse over two key blocks equals attention over all keys (with a mask)', () => {
    const rand = rng(3);
    const q = randomTensor([B, N, S, H], rand);
    const k = randomTensor([B, 1, S, H], rand);
    const v = randomTensor([B, 1, S, H], rand);
    const mask = Tensor.from('bool', [1, 1, 1, S], [1, 0, 1, 1, 1, 0]);
    const m = moduleOf((b) => {
      const [qi, ki, vi, mi] = [b.input('q', { dtype: 'f32', shape: [B, N, S, H] }), b.input('k', { dtype: 'f32', shape: [B, 1, S, H] }), b.input('v', { dtype: 'f32', shape: [B, 1, S, H] }), b.input('m', { dtype: 'bool', shape: [1, 1, 1, S] })];
      const half = (t: Value, lo: number): Value => b.add('Slice', [t, b.constant(Tensor.from('i64', [1], [lo])), b.constant(Tensor.from('i64', [1], [lo + 3])), b.constant(Tensor.from('i64', [1], [t === mi ? 3 : 2]))])[0]!;
      const [o1, l1] = b.add('attention_lse', [qi, half(ki, 0), half(vi, 0), half(mi, 0)], attrs, { numOutputs: 2 });
      const [o2, l2] = b.add('attention_lse', [qi, half(ki, 3), half(vi, 3), half(mi, 3)], attrs, { numOutputs: 2 });
      const [o] = b.add('lse_merge', [o1!, l1!, o2!, l2!], {}, { numOutputs: 2 });
      return [o!];
    });
    const [got] = interpret(m, [q, k, v, mask]);
    // Independent reference: softmax over the unmasked keys, per head (one shared kv head).
    const want: number[] = [];
    for (let n = 0; n < N; n++) {
      for (let i = 0; i < S; i++) {
        const w = Array.from({ length: S }, (_, j) => {
          if (!mask.data[j]) return 0;
          let dot = 0;
          for (let h = 0; h < H; h++) dot += q.data[(n * S + i) * H + h]! * k.data[j * H + h]!;
          return Math.exp(0.5 * dot);
        });
        const z = w.reduce((a, c) => a + c, 0);
        for (let h = 0; h < H; h++) want.push(w.reduce((a, c, j) => a + (c / z) * v.data[j * H + h]!, 0));
      }
    }
    got!.data.forEach((x, i) => expect(x).toBeCloseTo(want[i]!, 5));
  });
  test('a masked key never touches v: NaN or inf there (padding may hold anything) leaves the result finite', () => {
    // One query, three keys, the middle one masked; v there is NaN (attention) or inf (attention_lse).
    for (const [op, bad] of [['attention', NaN], ['attention_lse', Infinity]] as const) {
      const m = moduleOf((b) => {
        const q = b.constant(Tensor.from('f32', [1, 1, 1, 2], [1, 0]));
        const k = b.constant(Tensor.from('f32', [1, 1, 3, 2], [0, 0, 5, 5, 1, 0]));
        const v = b.constant(Tensor.from('f32', [1, 1, 3, 1], [2, bad, 4]));
        const mk = b.constant(Tensor.from('bool', [1, 1, 1, 3], [1, 0, 1]));
        const outs = b.add(op, [q, k, v, mk], { scale: { kind: 'float', value: 1 }, numHeads: int(1), kvHeads: int(1) }, { numOutputs: op === 'attention' ? 1 : 2 });
        return [outs[0]!];
      });
      const [o] = interpret(m, []);
      // softmax over scores [0, 1] (key 1 masked): weights 1/(1+e), e/(1+e).
      const e = Math.E;
      expect(o!.data[0]).toBeCloseTo((2 + 4 * e) / (1 + e), 6);
    }
  });
  test('a fully masked block contributes nothing (lse = -inf)', () => {
    const m = moduleOf((b) => {
      const q = b.constant(Tensor.from('f32', [1, 1, 1, 2], [1, 1]));
      const k = b.constant(Tensor.from('f32', [1, 1, 1, 2], [1, 0]));
      const v = b.constant(Tensor.from('f32', [1, 1, 1, 2], [7, 8]));
      const mk = b.constant(Tensor.from('bool', [1, 1, 1, 1], [0]));
      return b.add('attention_lse', [q, k, v, mk], { scale: { kind: 'float', value: 1 }, numHeads: int(1), kvHeads: int(1) }, { numOutputs: 2 });
    });
    const [o, l] = interpret(m, []);
    expect(o!.toArray()).toEqual([0, 0]);
    expect(l!.toArray()).toEqual([-Infinity]);
  });
});
