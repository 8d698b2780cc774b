/**
 * Normalization layers against hand-computed values and naive per-row loops written here.
 */
import { Tensor } from '../src';
import { expectClose, float, inferOp, int, rand, runOp, tt } from './ops-nn-helpers';

/** Naive normalization of consecutive rows of length n: (x - mean) / sqrt(var + eps). */
function normRows(x: readonly number[], n: number, eps: number): { y: number[]; mean: number[]; inv: number[] } {
  const y: number[] = [];
  const mean: number[] = [];
  const inv: number[] = [];
  for (let r = 0; r * n < x.length; r++) {
    const row = x.slice(r * n, (r + 1) * n);
    const m = row.reduce((a, b) => a + b, 0) / n;
    const v = row.reduce((a, b) => a + (b - m) ** 2, 0) / n;
    mean.push(m);
    inv.push(1 / Math.sqrt(v + eps));
    for (const e of row) y.push((e - m) / Math.sqrt(v + eps));
  }
  return { y, mean, inv };
}

describe('LayerNormalization', () => {
  test('hand-computed row: [1, 2, 3, 4]', () => {
    const x = Tensor.from('f32', [1, 4], [1, 2, 3, 4]);
    const s = Tensor.from('f32', [4], [1, 1, 2, 2]);
    const b = Tensor.from('f32', [4], [0, 0, 0, 1]);
    const [y] = runOp('LayerNormalization', [x, s, b], { epsilon: float(0) });
    // mean 2.5, var 1.25, (x - mean)/sqrt(1.25) = [-1.3416, -0.4472, 0.4472, 1.3416]
    expectClose(y!, [-1.3416408, -0.4472136, 0.8944272, 3.6832816], [1, 4]);
  });

  test('axis=1 over [2,3,4] with Mean and InvStdDev outputs', () => {
    const x = rand([2, 3, 4], 1);
    const scale = rand([3, 4], 2);
    const bias = rand([4], 3); // broadcasts over the normalized [3, 4]
    const [y, mean, inv] = runOp('LayerNormalization', [x, scale, bias], { axis: int(1), epsilon: float(1e-3) }, { numOutputs: 3 });
    const ref = normRows(x.toArray(), 12, 1e-3);
    const want = ref.y.map((v, i) => v * scale.data[i % 12]! + bias.data[i % 4]!);
    expectClose(y!, want, [2, 3, 4]);
    expectClose(mean!, ref.mean, [2, 1, 1]);
    expectClose(inv!, ref.inv, [2, 1, 1]);
    expect(mean!.dtype).toBe('f32');
  });

  test('symbolic dims flow; bad scale is rejected', () => {
    const t = inferOp('LayerNormalization', [tt('f16', ['B', 'S', 64]), tt('f16', [64])], {}, { numOutputs: 3 });
    expect(t.map((x) => x.shape)).toEqual([['B', 'S', 64], ['B', 'S', 1], ['B', 'S', 1]]);
    expect(t[1]!.dtype).toBe('f32'); // stash_type 1
    expect(() => inferOp('LayerNormalization', [tt('f32', [2, 8]), tt('f32', [4])])).toThrow(/Scale \[4\] does not broadcast to the normalized shape \[8\]/);
    expect(() => inferOp('LayerNormalization', [tt('f32', [2, 8]), tt('f32', [8])], { axis: int(2) })).toThrow(/axis 2 is out of range for rank 2/);
  });
});

describe('RMSNormalization', () => {
  test('hand-computed: [3, 4] -> rms 3.5355', () => {
    const x = Tensor.from('f32', [1, 2], [3, 4]);
    const s = Tensor.from('f32', [2], [1, 2]);
    const [y] = runOp('RMSNormalization', [x, s], { epsilon: float(0) });
    const rms = Math.sqrt((9 + 16) / 2);
    expectClose(y!, [3 / rms, 8 / rms], [1, 2]);
  });

  test('axis=-2 with a [S, D] scale matches a naive loop', () => {
    const x = rand([2, 3, 5], 4);
    const s = rand([3, 5], 5);
    const [y] = runOp('RMSNormalization', [x, s], { axis: int(-2), epsilon: float(1e-6) });
    const xs = x.toArray();
    const want = xs.map((v, i) => {
      const row = xs.slice(Math.floor(i / 15) * 15, Math.floor(i / 15) * 15 + 15);
      return (v / Math.sqrt(row.reduce((a, b) => a + b * b, 0) / 15 + 1e-6)) * s.data[i % 15]!;
    });
    expectClose(y!, want, [2, 3, 5]);
  });

  test('errors', () => {
    expect(() => inferOp('RMSNormalization', [tt('f32', [2, 8]), tt('f32', [3])])).toThrow(/scale \[3\] does not broadcast/);
    expect(() => inferOp('RMSNormalization', [tt('i32', [2, 8]), tt('i32', [8])])).toThrow(/must be a float tensor/);
  });
});

describe('GroupNormalization', () => {
  const x = rand([2, 6, 2, 2], 6);
  const groupRef = (scale: (c: number) => number, bias: (c: number) => number): number[] => {
    const ref = normRows(x.toArray(), 8, 1e-5); // 3 groups of 2 channels x 4 pixels
    return ref.y.map((v, i) => {
      const c = Math.floor(i / 4) % 6;
      return v * scale(c) + bias(c);
    });
  };

  test('opset 21: per-channel scale and bias', () => {
    const s = rand([6], 7);
    const b = rand([6], 8);
    const [y] = runOp('GroupNormalization', [x, s, b], { num_groups: int(3) }, { opset: 21 });
    expectClose(y!, groupRef((c) => s.data[c]!, (c) => b.data[c]!), [2, 6, 2, 2]);
  });

  test('opset 18: per-group scale and bias', () => {
    const s = rand([3], 9);
    const b = rand([3], 10);
    const [y] = runOp('GroupNormalization', [x, s, b], { num_groups: int(3) }, { opset: 18 });
    expectClose(y!, groupRef((c) => s.data[Math.floor(c / 2)]!, (c) => b.data[Math.floor(c / 2)]!), [2, 6, 2, 2]);
  });

  test('errors', () => {
    expect(() => inferOp('GroupNormalization', [tt('f32', [1, 6, 4]), tt('f32', [6]), tt('f32', [6])], { num_groups: int(4) }, { opset: 21 })).toThrow(/num_groups 4 must divide the 6 channels/);
    expect(() => inferOp('GroupNormalization', [tt('f32', [1, 6, 4]), tt('f32', [3]), tt('f32', [3])], { num_groups: int(3) }, { opset: 21 })).toThrow(/scale must be \[6\] \(one per channel\), got \[3\]/);
  });
});

describe('InstanceNormalization and BatchNormalization', () => {
  test('InstanceNormalization matches per-plane statistics', () => {
    const x = rand([2, 3, 4], 11);
    const s = Tensor.from('f32', [3], [1, 2, 3]);
    const b = Tensor.from('f32', [3], [0, 1, -1]);
    const [y] = runOp('InstanceNormalization', [x, s, b], { epsilon: float(1e-4) });
    const ref = normRows(x.toArray(), 4, 1e-4);
    expectClose(y!, ref.y.map((v, i) => v * s.data[Math.floor(i / 4) % 3]! + b.data[Math.floor(i / 4) % 3]!), [2, 3, 4]);
  });

  test('BatchNormalization inference: hand-computed', () => {
    const x = Tensor.from('f32', [1, 2, 2], [1, 2, 3, 4]);
    const s = Tensor.from('f32', [2], [2, 1]);
    const b = Tensor.from('f32', [2], [0, 10]);
    const mean = Tensor.from('f32', [2], [1, 3]);
    const v = Tensor.from('f32', [2], [4, 1]);
    const [y] = runOp('BatchNormalization', [x, s, b, mean, v], { epsilon: float(0) }, { opset: 15 });
    expect(y!.toArray()).toEqual([0, 1, 10, 11]);
  });

  test('BatchNormalization training_mode: batch statistics and running averages', () => {
    const x = Tensor.from('f32', [2, 1, 2], [1, 3, 5, 7]); // mean 4, population var 5
    const one = Tensor.from('f32', [1], [1]);
    const zero = Tensor.from('f32', [1], [0]);
    const [y, rm, rv] = runOp('BatchNormalization', [x, one, zero, zero, one], { epsilon: float(0), momentum: float(0.5), training_mode: int(1) }, { opset: 15, numOutputs: 3 });
    expectClose(y!, [1, 3, 5, 7].map((e) => (e - 4) / Math.sqrt(5)), [2, 1, 2]);
    expect(rm!.toArray()).toEqual([2]);
    expect(rv!.toArray()).toEqual([3]);
  });

  test('per-sample scale and bias (opset-23 modulated norms): each sample reads its own row of parameters', () => {
    const x = rand([2, 3, 4], 5);
    const s = rand([2, 1, 4], 6);
    const b = rand([2, 1, 4], 7);
    const [y] = runOp('LayerNormalization', [x, s, b], { epsilon: float(1e-5) }, { opset: 17, numOutputs: 1 });
    const ref = normRows(x.toArray(), 4, 1e-5);
    const at = (t: Tensor, i: number): number => t.data[Math.floor(i / 12) * 4 + (i % 4)]!;
    expectClose(y!, ref.y.map((v, i) => v * at(s, i) + at(b, i)), [2, 3, 4]);
    const [r] = runOp('RMSNormalization', [x, s], { epsilon: float(1e-5) }, { opset: 23 });
    const rms = (i: number): number => {
      const row = x.toArray().slice(Math.floor(i / 4) * 4, Math.floor(i / 4) * 4 + 4);
      return Math.sqrt(row.reduce((a, e) => a + e * e, 0) / 4 + 1e-5);
    };
    expectClose(r!, x.toArray().map((v, i) => (v / rms(i)) * at(s, i)), [2, 3, 4]);
    expect(() => inferOp('RMSNormalization', [tt('f32', [2, 3, 4]), tt('f32', [3, 1, 4])], {}, { opset: 23 })).toThrow(/scale \[3,1,4\] does not broadcast to X's shape \(a per-sample parameter\) \[2,3,4\]/);
  });

  test('errors', () => {
    expect(() => inferOp('InstanceNormalization', [tt('f32', [1, 3, 4]), tt('f32', [4]), tt('f32', [3])])).toThrow(/scale must be \[3\] \(one per channel\), got \[4\]/);
    expect(() => inferOp('BatchNormalization', [tt('f32', [1, 3]), tt('f32', [3]), tt('f32', [3]), tt('f32', [3]), tt('f32', [2])])).toThrow(/input_var must be \[3\]/);
  });
});
