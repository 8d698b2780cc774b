/** Slice, Concat and Split (shape-slice.ts), every opset form, with hand-computed values. */
import { Tensor } from '@paradit/ir';
import { f32, i64v, inferOp, int, ints, iota, konst, runOp, ty, vals } from './shape-test-utils';

const INT64_MAX = 9223372036854775807;
const INT64_MIN = -9223372036854775808;

describe('Slice', () => {
  const x = iota([3, 4]); // [[0,1,2,3],[4,5,6,7],[8,9,10,11]]

  test('starts/ends/axes/steps inputs (opset 10+)', () => {
    const r = runOp('Slice', [x, konst(i64v([0, 1])), konst(i64v([2, 3])), konst(i64v([0, 1]))]);
    expect(r.types[0]!.shape).toEqual([2, 2]);
    expect(vals(r.outputs[0])).toEqual([1, 2, 5, 6]);
    // axes default to the leading ones.
    expect(vals(runOp('Slice', [x, konst(i64v([1])), konst(i64v([3]))]).outputs[0])).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    // negative axes, steps.
    expect(vals(runOp('Slice', [x, konst(i64v([1])), konst(i64v([3])), konst(i64v([-1]))]).outputs[0])).toEqual([1, 2, 5, 6, 9, 10]);
    expect(vals(runOp('Slice', [iota([5]), konst(i64v([0])), konst(i64v([5])), null, konst(i64v([2]))]).outputs[0])).toEqual([0, 2, 4]);
  });

  test('negative steps and the INT64 sentinels', () => {
    const rev = runOp('Slice', [iota([5]), konst(i64v([-1])), konst(i64v([INT64_MIN])), konst(i64v([0])), konst(i64v([-1]))]);
    expect(vals(rev.outputs[0])).toEqual([4, 3, 2, 1, 0]);
    const back2 = runOp('Slice', [iota([3, 4]), konst(i64v([20, 3])), konst(i64v([0, 0])), konst(i64v([0, 1])), konst(i64v([-1, -2]))]);
    // rows 2,1 (start clamped to 2, end 0 exclusive), cols 3,1
    expect(back2.types[0]!.shape).toEqual([2, 2]);
    expect(vals(back2.outputs[0])).toEqual([11, 9, 7, 5]);
    expect(vals(runOp('Slice', [iota([4]), konst(i64v([2])), konst(i64v([INT64_MAX]))]).outputs[0])).toEqual([2, 3]);
  });

  test('out-of-bounds starts and ends clamp', () => {
    expect(runOp('Slice', [iota([5]), konst(i64v([20])), konst(i64v([1000]))]).types[0]!.shape).toEqual([0]);
    expect(vals(runOp('Slice', [iota([5]), konst(i64v([1])), konst(i64v([1000]))]).outputs[0])).toEqual([1, 2, 3, 4]);
    expect(vals(runOp('Slice', [iota([5]), konst(i64v([-100])), konst(i64v([2]))]).outputs[0])).toEqual([0, 1]);
  });

  test('Slice-1 takes attributes', () => {
    const r = runOp('Slice', [x], { starts: ints([1, 0]), ends: ints([2, 2]), axes: ints([0, 1]) }, { opset: 9 });
    expect(vals(r.outputs[0])).toEqual([4, 5]);
    expect(vals(runOp('Slice', [x], { starts: ints([2]), ends: ints([3]) }, { opset: 1 }).outputs[0])).toEqual([8, 9, 10, 11]);
  });

  test('symbolic dims survive a full slice and become fresh otherwise', () => {
    const t = ty('f32', ['B', 'S', 64]);
    expect(inferOp('Slice', [t, i64v([0]), i64v([32]), i64v([2])])[0]!.shape).toEqual(['B', 'S', 32]);
    expect(inferOp('Slice', [t, i64v([0]), i64v([INT64_MAX]), i64v([1])])[0]!.shape).toEqual(['B', 'S', 64]);
    expect(inferOp('Slice', [t, i64v([1]), i64v([INT64_MAX]), i64v([1])])[0]!.shape).toEqual(['B', 'n0_1', 64]);
    expect(inferOp('Slice', [t, i64v([-1]), i64v([INT64_MIN]), i64v([1]), i64v([-1])])[0]!.shape).toEqual(['B', 'S', 64]);
  });

  test('runtime bounds: the sliced axes get fresh symbols, the output is right', () => {
    const r = runOp('Slice', [x, i64v([1]), konst(i64v([3])), konst(i64v([1]))]);
    expect(r.types[0]!.shape).toEqual([3, 'n0_1']);
    expect(vals(r.outputs[0])).toEqual([1, 2, 5, 6, 9, 10]);
  });

  test('errors', () => {
    expect(() => inferOp('Slice', [ty('f32', [3]), i64v([0]), i64v([2]), i64v([0]), i64v([0])])).toThrow("Slice 'n0': steps [0] must not contain 0");
    expect(() => inferOp('Slice', [ty('f32', [3]), i64v([0, 1]), i64v([2])])).toThrow(/starts \[0,1\] and ends \[2\] must have the same length/);
    expect(() => inferOp('Slice', [ty('f32', [3]), i64v([0]), i64v([2]), i64v([1])])).toThrow(/axes value 1 is out of range for rank 1/);
  });
});

describe('Concat', () => {
  test('along the last and the first axis', () => {
    const a = f32([2, 2], [1, 2, 3, 4]);
    const b = f32([2, 1], [5, 6]);
    const r = runOp('Concat', [a, b], { axis: int(1) });
    expect(r.types[0]!.shape).toEqual([2, 3]);
    expect(vals(r.outputs[0])).toEqual([1, 2, 5, 3, 4, 6]);
    const s = runOp('Concat', [f32([1, 2], [7, 8]), a], { axis: int(-2) });
    expect(vals(s.outputs[0])).toEqual([7, 8, 1, 2, 3, 4]);
  });

  test('long rows (block copies) and three inputs', () => {
    const a = iota([2, 20]);
    const b = Tensor.from('f32', [2, 30], vals(iota([60])).map((v) => v + 100));
    const c = f32([2, 1], [-1, -2]);
    const out = vals(runOp('Concat', [a, b, c], { axis: int(1) }).outputs[0]);
    const row = (k: number): number[] => [...vals(a).slice(20 * k, 20 * k + 20), ...vals(b).slice(30 * k, 30 * k + 30), -1 - k];
    expect(out).toEqual([...row(0), ...row(1)]);
  });

  test('Concat-1 defaults axis to 1', () => {
    expect(runOp('Concat', [iota([2, 2]), iota([2, 2])], {}, { opset: 1 }).types[0]!.shape).toEqual([2, 4]);
  });

  test('symbolic dims', () => {
    expect(inferOp('Concat', [ty('f32', ['B', 'S', 64]), ty('f32', ['B', 1, 64])], { axis: int(1) })[0]!.shape).toEqual(['B', 'n0_1', 64]);
    expect(inferOp('Concat', [ty('f32', ['B', 4]), ty('f32', [0, 4])], { axis: int(0) })[0]!.shape).toEqual(['B', 4]);
    expect(inferOp('Concat', [ty('f32', ['B', 4]), ty('f32', [2, 4])], { axis: int(1) })[0]!.shape).toEqual([2, 8]);
    expect(inferOp('Concat', [ty('f32', ['B', 'S', 64]), ty('f32', ['B', 'S', 32])], { axis: int(-1) })[0]!.shape).toEqual(['B', 'S', 96]);
  });

  test('errors', () => {
    expect(() => inferOp('Concat', [ty('f32', [2, 2]), ty('f32', [3, 1])], { axis: int(1) })).toThrow(
      "Concat 'n0': input 1 has shape [3,1], expected dim 0 to be 2 (all dims but axis 1 must agree)",
    );
    expect(() => inferOp('Concat', [ty('f32', [2, 2]), ty('f32', [2])], { axis: int(0) })).toThrow(/input 1 has rank 1/);
    expect(() => inferOp('Concat', [ty('f32', [2]), ty('f16', [2])], { axis: int(0) })).toThrow(/dtypes differ: expected f32, got f16/);
    expect(() => inferOp('Concat', [ty('f32', [2])], {}, { opset: 13 })).toThrow(/missing required attribute 'axis'/);
  });
});

describe('Split', () => {
  test('equal parts by output count (opset 13) and by split input', () => {
    const r = runOp('Split', [iota([6])], {}, { opset: 13, numOutputs: 3 });
    expect(r.outputs.map(vals)).toEqual([[0, 1], [2, 3], [4, 5]]);
    const s = runOp('Split', [iota([6]), konst(i64v([2, 4]))], {}, { opset: 13, numOutputs: 2 });
    expect(s.types.map((t) => t.shape)).toEqual([[2], [4]]);
    expect(s.outputs.map(vals)).toEqual([[0, 1], [2, 3, 4, 5]]);
  });

  test('Split-11 split attribute along axis 1', () => {
    const r = runOp('Split', [iota([2, 3])], { axis: int(1), split: ints([1, 2]) }, { opset: 11, numOutputs: 2 });
    expect(r.outputs.map(vals)).toEqual([[0, 3], [1, 2, 4, 5]]);
  });

  test('Split-18 num_outputs: the last chunk is smaller', () => {
    const r = runOp('Split', [iota([7])], { num_outputs: int(3) }, { opset: 18, numOutputs: 3 });
    expect(r.outputs.map(vals)).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    const s = runOp('Split', [iota([7])], { num_outputs: int(4) }, { opset: 18, numOutputs: 4 });
    expect(s.types.map((t) => t.shape[0])).toEqual([2, 2, 2, 1]);
  });

  test('zero-size splits', () => {
    const r = runOp('Split', [Tensor.zeros('f32', [0]), konst(i64v([0, 0, 0]))], {}, { opset: 13, numOutputs: 3 });
    expect(r.types.map((t) => t.shape)).toEqual([[0], [0], [0]]);
  });

  test('symbolic dims', () => {
    const t = inferOp('Split', [ty('f32', ['B', 'S', 64])], { axis: int(2) }, { numOutputs: 2, opset: 13 });
    expect(t.map((x) => x.shape)).toEqual([['B', 'S', 32], ['B', 'S', 32]]);
    const u = inferOp('Split', [ty('f32', ['B', 'S', 64])], { axis: int(1) }, { numOutputs: 2, opset: 13 });
    expect(u.map((x) => x.shape)).toEqual([['B', 'n0_0_1', 64], ['B', 'n0_1_1', 64]]);
  });

  test('errors', () => {
    expect(() => inferOp('Split', [ty('f32', [7])], {}, { opset: 13, numOutputs: 2 })).toThrow(
      "Split 'n0': a dim of size 7 is not divisible into 2 equal outputs; give split sizes",
    );
    expect(() => inferOp('Split', [ty('f32', [7]), i64v([3, 3])], {}, { opset: 13, numOutputs: 2 })).toThrow(/sums to 6, expected the axis size 7/);
    expect(() => inferOp('Split', [ty('f32', [7]), i64v([3, 4])], {}, { opset: 13, numOutputs: 3 })).toThrow(/has 2 entries, but the node has 3 outputs/);
    expect(() => inferOp('Split', [ty('f32', [7])], { num_outputs: int(3) }, { opset: 18, numOutputs: 2 })).toThrow(/num_outputs is 3 but the node has 2 outputs/);
  });
});
