/**
 * Reduction op rules: Reduce* in attribute and input forms (keepdims, noop_with_empty_axes),
 * scattered axes checked against a per-index reference, arg-reductions, CumSum, TopK and the
 * opset-13 change of Softmax/LogSoftmax/Hardmax. Expected values are hand-computed unless noted.
 */
import { Tensor } from '@paradit/ir';
import { expectTensor, f32, inferOp, int, ints, randomTensor, runOp, t, ty, unravel } from './ops-elementwise-helpers';

/** [2,3,2] holding 1..12: [[[1,2],[3,4],[5,6]],[[7,8],[9,10],[11,12]]]. */
const X = f32([2, 3, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
const i64 = (values: number[]): Tensor => t('i64', [values.length], values);

describe('Reduce* axes forms', () => {
  test('attribute axes (ReduceSum before opset 13)', () => {
    expectTensor(runOp('ReduceSum', [X], { axes: ints([1]) }, { opset: 11 })[0]!, 'f32', [2, 1, 2], [9, 12, 27, 30]);
    expectTensor(runOp('ReduceSum', [X], { axes: ints([-1]), keepdims: int(0) }, { opset: 11 })[0]!, 'f32', [2, 3], [3, 7, 11, 15, 19, 23]);
    expectTensor(runOp('ReduceSum', [X], {}, { opset: 11 })[0]!, 'f32', [1, 1, 1], [78]);
    expectTensor(runOp('ReduceSum', [X], { keepdims: int(0) }, { opset: 11 })[0]!, 'f32', [], [78]);
  });

  test('input axes (ReduceSum from opset 13, the others from 18)', () => {
    expectTensor(runOp('ReduceSum', [X, i64([-1])], { keepdims: int(0) }, { opset: 13, consts: [1] })[0]!, 'f32', [2, 3], [3, 7, 11, 15, 19, 23]);
    expectTensor(runOp('ReduceSum', [X], {}, { opset: 13 })[0]!, 'f32', [1, 1, 1], [78]);
    expectTensor(runOp('ReduceMax', [X, i64([1])], {}, { opset: 18, consts: [1] })[0]!, 'f32', [2, 1, 2], [5, 6, 11, 12]);
    expectTensor(runOp('ReduceMean', [X], { axes: ints([1]) }, { opset: 17 })[0]!, 'f32', [2, 1, 2], [3, 4, 9, 10]);
  });

  test('noop_with_empty_axes reduces nothing; each element is reduced alone', () => {
    const empty = t('i64', [0], []);
    expectTensor(runOp('ReduceSum', [X, empty], { noop_with_empty_axes: int(1) }, { opset: 13, consts: [1] })[0]!, 'f32', [2, 3, 2], X.toArray());
    expectTensor(runOp('ReduceSum', [X, empty], {}, { opset: 13, consts: [1] })[0]!, 'f32', [1, 1, 1], [78]);
    const v = f32([3], [1, -2, 3]);
    expectTensor(runOp('ReduceSumSquare', [v], { noop_with_empty_axes: int(1) }, { opset: 18 })[0]!, 'f32', [3], [1, 4, 9]);
  });

  test('the wrong axes form for the opset fails clearly', () => {
    expect(() => inferOp('ReduceMean', [ty('f32', [2, 3])], { axes: ints([1]) }, { opset: 18 })).toThrow(
      "ReduceMean 'n0': from opset 18 the axes are input 1, not an attribute",
    );
    expect(() => inferOp('ReduceMean', [ty('f32', [2, 3]), ty('i64', [1])], {}, { opset: 13 })).toThrow('before opset 18 the axes are an attribute');
    expect(() => inferOp('ReduceSum', [ty('f32', [2, 3]), ty('i64', ['K'])], { keepdims: int(0) }, { opset: 13 })).toThrow(
      "ReduceSum 'n0': input 1 (axes) must be known at compile time when keepdims=0",
    );
    expect(() => inferOp('ReduceMax', [ty('f32', [2, 3])], { axes: ints([1, -1]) }, { opset: 13 })).toThrow('name an axis twice');
    expect(() => inferOp('ReduceMax', [ty('f32', [2, 3])], { axes: ints([2]) }, { opset: 13 })).toThrow('axis 2 is out of range for rank 2');
  });

  test('axes unknown at compile time give symbolic dims', () => {
    const keep = inferOp('ReduceSum', [ty('f32', [2, 1, 3]), ty('i64', [1])], {}, { opset: 13 })[0]!;
    expect(keep.shape).toEqual(['n0_d0', 1, 'n0_d2']);
    const drop = inferOp('ReduceSum', [ty('f32', [2, 1, 3]), ty('i64', [2])], { keepdims: int(0) }, { opset: 13 })[0]!;
    expect(drop.shape).toEqual(['n0_d0']);
    // At run time the axes are read from the input.
    expectTensor(runOp('ReduceSum', [X, i64([0, 2])], { keepdims: int(0) }, { opset: 13 })[0]!, 'f32', [3], [18, 26, 34]);
  });

  test('symbolic dims are kept', () => {
    expect(inferOp('ReduceMean', [ty('f32', ['B', 'S', 8])], { axes: ints([-1]) })[0]!.shape).toEqual(['B', 'S', 1]);
    expect(inferOp('ReduceMean', [ty('f32', ['B', 'S', 8])], { axes: ints([1]), keepdims: int(0) })[0]!.shape).toEqual(['B', 8]);
  });
});

describe('Reduce* kinds', () => {
  test('scattered axes are transposed to the end', () => {
    expectTensor(runOp('ReduceMean', [X], { axes: ints([0, 2]) }, { opset: 13 })[0]!, 'f32', [1, 3, 1], [4.5, 6.5, 8.5]);
    expectTensor(runOp('ReduceMin', [X], { axes: ints([0, 2]), keepdims: int(0) }, { opset: 13 })[0]!, 'f32', [3], [1, 3, 5]);
  });

  test('every kind on small inputs', () => {
    expectTensor(runOp('ReduceMin', [X], { axes: ints([1]) }, { opset: 13 })[0]!, 'f32', [2, 1, 2], [1, 2, 7, 8]);
    expectTensor(runOp('ReduceProd', [X], { axes: ints([2]), keepdims: int(0) }, { opset: 13 })[0]!, 'f32', [2, 3], [2, 12, 30, 56, 90, 132]);
    expectTensor(runOp('ReduceL1', [f32([3], [-1, 2, -3])], {}, { opset: 13 })[0]!, 'f32', [1], [6]);
    expectTensor(runOp('ReduceL2', [f32([2], [3, -4])], {}, { opset: 13 })[0]!, 'f32', [1], [5]);
    expectTensor(runOp('ReduceLogSum', [f32([4], [1, 2, 3, 4])], {}, { opset: 13 })[0]!, 'f32', [1], [Math.fround(Math.log(10))]);
    expectTensor(runOp('ReduceSumSquare', [f32([3], [1, 2, 3])], {}, { opset: 13 })[0]!, 'f32', [1], [14]);
    expectTensor(runOp('ReduceMax', [f32([3], [1, NaN, 3])], {}, { opset: 13 })[0]!, 'f32', [1], [NaN]);
  });

  test('ReduceLogSumExp does not overflow', () => {
    expectTensor(runOp('ReduceLogSumExp', [f32([2], [1000, 1000])], {}, { opset: 13 })[0]!, 'f32', [1], [Math.fround(1000 + Math.LN2)]);
    expectTensor(runOp('ReduceLogSumExp', [f32([2], [-Infinity, -Infinity])], {}, { opset: 13 })[0]!, 'f32', [1], [-Infinity]);
    expectTensor(runOp('ReduceLogSumExp', [f32([2, 2], [0, 0, 1, 1])], { axes: ints([1]), keepdims: int(0) }, { opset: 13 })[0]!, 'f32', [2], [
      Math.fround(Math.LN2),
      Math.fround(1 + Math.LN2),
    ]);
  });

  test('accumulation is wider than the dtype; results round into it', () => {
    // Summed in bf16 one at a time this would stay 1; the exact sum 1 + 2^-7 is representable.
    expectTensor(runOp('ReduceSum', [t('bf16', [3], [1, 2 ** -8, 2 ** -8])], {}, { opset: 13 })[0]!, 'bf16', [1], [1 + 2 ** -7]);
    expectTensor(runOp('ReduceMean', [t('i32', [2], [1, 2])], {}, { opset: 13 })[0]!, 'i32', [1], [1]);
  });

  // Guards blocksOf (in-place adjacent axes vs transposed scattered axes) against a reference.
  test('every axis subset of a 4-D tensor matches a per-index reference', () => {
    const shape = [2, 1, 3, 4];
    const x = randomTensor(shape, 7);
    for (let mask = 1; mask < 16; mask++) {
      const axes = [0, 1, 2, 3].filter((a) => mask & (1 << a));
      const got = runOp('ReduceSum', [x], { axes: ints(axes), keepdims: int(1) }, { opset: 11 })[0]!;
      const outShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
      const ref = new Float64Array(outShape.reduce((p, d) => p * d, 1));
      for (let i = 0; i < x.size; i++) {
        const idx = unravel(i, shape);
        const o = idx.reduce((acc, v, d) => acc * outShape[d]! + (axes.includes(d) ? 0 : v), 0);
        ref[o]! += x.data[i]!;
      }
      expect([...got.shape]).toEqual(outShape);
      ref.forEach((v, i) => expect(Math.abs(got.data[i]! - v)).toBeLessThan(1e-6));
    }
  });
});

describe('ArgMax / ArgMin', () => {
  const d = f32([2, 2], [2, 1, 3, 10]);

  test('keepdims and axes', () => {
    expectTensor(runOp('ArgMax', [d])[0]!, 'i64', [1, 2], [1, 1]);
    expectTensor(runOp('ArgMax', [d], { axis: int(1) })[0]!, 'i64', [2, 1], [0, 1]);
    expectTensor(runOp('ArgMin', [d], { axis: int(-1), keepdims: int(0) })[0]!, 'i64', [2], [1, 0]);
    expectTensor(runOp('ArgMax', [X], { axis: int(1) })[0]!, 'i64', [2, 1, 2], [2, 2, 2, 2]);
  });

  test('select_last_index picks the last of equal extremes', () => {
    const e = f32([2, 2], [2, 2, 3, 10]);
    expectTensor(runOp('ArgMax', [e], { axis: int(1) })[0]!, 'i64', [2, 1], [0, 1]);
    expectTensor(runOp('ArgMax', [e], { axis: int(1), select_last_index: int(1) })[0]!, 'i64', [2, 1], [1, 1]);
    expectTensor(runOp('ArgMin', [f32([3], [1, 0, 0])], { select_last_index: int(1) })[0]!, 'i64', [1], [2]);
  });
});

describe('CumSum', () => {
  const v = f32([5], [1, 2, 3, 4, 5]);
  const axis0 = t('i32', [], [0]);

  test('exclusive and reverse', () => {
    expectTensor(runOp('CumSum', [v, axis0])[0]!, 'f32', [5], [1, 3, 6, 10, 15]);
    expectTensor(runOp('CumSum', [v, axis0], { exclusive: int(1) })[0]!, 'f32', [5], [0, 1, 3, 6, 10]);
    expectTensor(runOp('CumSum', [v, axis0], { reverse: int(1) })[0]!, 'f32', [5], [15, 14, 12, 9, 5]);
    expectTensor(runOp('CumSum', [v, axis0], { reverse: int(1), exclusive: int(1) })[0]!, 'f32', [5], [14, 12, 9, 5, 0]);
  });

  test('2-D axes and integer data', () => {
    const m = t('i64', [2, 3], [1, 2, 3, 4, 5, 6]);
    expectTensor(runOp('CumSum', [m, t('i64', [], [0])])[0]!, 'i64', [2, 3], [1, 2, 3, 5, 7, 9]);
    expectTensor(runOp('CumSum', [m, t('i64', [1], [-1])])[0]!, 'i64', [2, 3], [1, 3, 6, 4, 9, 15]);
    expect(() => runOp('CumSum', [m, t('i64', [], [2])], {}, { consts: [1] })).toThrow("CumSum 'n0': axis 2 is out of range for rank 2");
  });
});

describe('Softmax family', () => {
  const s = f32([2, 2, 2], [0, 1, 2, 3, 0, 0, 0, 0]);
  const e = Math.E;

  test('opset 13: one axis, default -1', () => {
    const p = 1 / (1 + e);
    expectTensor(runOp('Softmax', [s], {}, { opset: 13 })[0]!, 'f32', [2, 2, 2], [p, 1 - p, p, 1 - p, 0.5, 0.5, 0.5, 0.5], 1e-7);
    const q = 1 / (1 + e * e);
    expectTensor(runOp('Softmax', [s], { axis: int(1) }, { opset: 13 })[0]!, 'f32', [2, 2, 2], [q, q, 1 - q, 1 - q, 0.5, 0.5, 0.5, 0.5], 1e-7);
    const l = Math.log(1 + e);
    expectTensor(runOp('LogSoftmax', [s], {}, { opset: 13 })[0]!, 'f32', [2, 2, 2], [-l, 1 - l, -l, 1 - l, -Math.LN2, -Math.LN2, -Math.LN2, -Math.LN2], 1e-6);
  });

  test('before opset 13: flattened at axis, default 1', () => {
    const z = 1 + e + e * e + e * e * e;
    expectTensor(runOp('Softmax', [s], {}, { opset: 11 })[0]!, 'f32', [2, 2, 2], [1 / z, e / z, (e * e) / z, (e * e * e) / z, 0.25, 0.25, 0.25, 0.25], 1e-7);
    expectTensor(runOp('LogSoftmax', [s], {}, { opset: 11 })[0]!, 'f32', [2, 2, 2], [0, 1, 2, 3, 0, 0, 0, 0].map((v, i) => (i < 4 ? v - Math.log(z) : -Math.log(4))), 1e-6);
  });

  test('large logits do not overflow', () => {
    expectTensor(runOp('Softmax', [f32([2], [1000, 1000])], {}, { opset: 13 })[0]!, 'f32', [2], [0.5, 0.5]);
    expectTensor(runOp('Softmax', [t('f16', [2], [-60000, 60000])], {}, { opset: 13 })[0]!, 'f16', [2], [0, 1]);
  });

  test('Hardmax marks the first maximum', () => {
    const h = f32([2, 3], [1, 3, 3, 2, 0, 1]);
    expectTensor(runOp('Hardmax', [h], {}, { opset: 13 })[0]!, 'f32', [2, 3], [0, 1, 0, 1, 0, 0]);
    expectTensor(runOp('Hardmax', [h], {}, { opset: 11 })[0]!, 'f32', [2, 3], [0, 1, 0, 1, 0, 0]);
    expectTensor(runOp('Hardmax', [h], { axis: int(0) }, { opset: 11 })[0]!, 'f32', [2, 3], [0, 1, 0, 0, 0, 0]);
    expectTensor(runOp('Hardmax', [h], { axis: int(0) }, { opset: 13 })[0]!, 'f32', [2, 3], [0, 1, 1, 1, 0, 0]);
  });

  test('integer input is rejected', () => {
    expect(() => inferOp('Softmax', [ty('i32', [2])])).toThrow("Softmax 'n0': input 0 (input) must be a float type");
  });
});

describe('TopK', () => {
  const m = f32([3, 4], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);

  test('k as attribute (opset < 10) and as input', () => {
    const [v1, i1] = runOp('TopK', [m], { k: int(3) }, { opset: 9, numOutputs: 2 });
    expectTensor(v1!, 'f32', [3, 3], [3, 2, 1, 7, 6, 5, 11, 10, 9]);
    expectTensor(i1!, 'i64', [3, 3], [3, 2, 1, 3, 2, 1, 3, 2, 1]);
    const [v2, i2] = runOp('TopK', [m, i64([2])], { axis: int(0) }, { opset: 11, numOutputs: 2, consts: [1] });
    expectTensor(v2!, 'f32', [2, 4], [8, 9, 10, 11, 4, 5, 6, 7]);
    expectTensor(i2!, 'i64', [2, 4], [2, 2, 2, 2, 1, 1, 1, 1]);
    const [v3, i3] = runOp('TopK', [m, i64([3])], { largest: int(0) }, { opset: 11, numOutputs: 2 });
    expectTensor(v3!, 'f32', [3, 3], [0, 1, 2, 4, 5, 6, 8, 9, 10]);
    expectTensor(i3!, 'i64', [3, 3], [0, 1, 2, 0, 1, 2, 0, 1, 2]);
  });

  test('equal values keep the lower index first', () => {
    const [v, i] = runOp('TopK', [f32([4], [1, 3, 3, 2]), i64([2])], {}, { opset: 11, numOutputs: 2 });
    expectTensor(v!, 'f32', [2], [3, 3]);
    expectTensor(i!, 'i64', [2], [1, 2]);
    const [, j] = runOp('TopK', [f32([4], [2, 1, 1, 3]), i64([2])], { largest: int(0) }, { opset: 11, numOutputs: 2 });
    expectTensor(j!, 'i64', [2], [1, 2]);
  });

  test('shapes: symbolic k when K is unknown, errors when k is too large', () => {
    const [v, i] = inferOp('TopK', [ty('f32', ['B', 8]), ty('i64', [1])], {}, { numOutputs: 2 });
    expect(v).toEqual({ dtype: 'f32', shape: ['B', 'n0_k'] });
    expect(i!.dtype).toBe('i64');
    expect(() => runOp('TopK', [m, i64([5])], {}, { opset: 11, consts: [1] })).toThrow("TopK 'n0': k = 5 exceeds the size 4 of axis 1");
  });
});
