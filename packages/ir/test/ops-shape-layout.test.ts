/**
 * Layout ops (shape-layout.ts): Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Expand, Tile,
 * DepthToSpace, SpaceToDepth. Expected values are computed by hand (or, for DepthToSpace, taken
 * from the ONNX operator documentation's example).
 */
import { Tensor } from '@paradit/ir';
import { f32, i64v, inferOp, int, ints, iota, konst, runOp, str, ty, vals } from './shape-test-utils';

describe('Reshape', () => {
  test('-1 is inferred and 0 copies the input dim', () => {
    const r = runOp('Reshape', [iota([2, 3, 4]), konst(i64v([0, -1]))]);
    expect(r.types[0]!.shape).toEqual([2, 12]);
    expect(r.outputs[0]!.shape).toEqual([2, 12]);
    expect(vals(r.outputs[0])).toEqual(vals(iota([2, 3, 4])));
    expect(runOp('Reshape', [iota([2, 3, 4]), konst(i64v([4, -1]))]).types[0]!.shape).toEqual([4, 6]);
  });

  test('allowzero=1 keeps a literal 0 (opset 14)', () => {
    const r = runOp('Reshape', [Tensor.zeros('f32', [0, 3, 4]), konst(i64v([3, 4, 0]))], { allowzero: int(1) }, { opset: 14 });
    expect(r.types[0]!.shape).toEqual([3, 4, 0]);
    // Without allowzero the 0 copies input dim 2 (4): 0 elements into [3,4,4] fails.
    expect(() => runOp('Reshape', [Tensor.zeros('f32', [0, 3, 4]), konst(i64v([3, 4, 0]))], {}, { opset: 14 })).toThrow(/cannot reshape 0 elements to \[3,4,0\]/);
  });

  test('Reshape-1 takes the shape as an attribute', () => {
    const r = runOp('Reshape', [iota([6])], { shape: ints([3, 2]) }, { opset: 1 });
    expect(r.outputs[0]!.shape).toEqual([3, 2]);
  });

  test('a runtime shape of static length gives fresh symbols, resolved when run', () => {
    const r = runOp('Reshape', [iota([2, 3, 4]), i64v([6, 4])]);
    expect(r.types[0]!.shape).toEqual(['n0_0', 'n0_1']);
    expect(r.outputs[0]!.shape).toEqual([6, 4]);
  });

  test('symbolic dims: 0 keeps the symbol, -1 solves when the symbols cancel', () => {
    const x = ty('f32', ['B', 'S', 1152]);
    expect(inferOp('Reshape', [x, i64v([0, -1, 16, 72])])[0]!.shape).toEqual(['B', 'S', 16, 72]);
    expect(inferOp('Reshape', [ty('f32', ['B', 16, 64]), i64v([0, -1])])[0]!.shape).toEqual(['B', 1024]);
    // B*S*64 / 64 is not a single symbol: a fresh one.
    expect(inferOp('Reshape', [ty('f32', ['B', 'S', 64]), i64v([-1, 64])])[0]!.shape).toEqual(['n0_0', 64]);
    // B*6 / 5 might divide at run time.
    expect(inferOp('Reshape', [ty('f32', ['B', 6]), i64v([5, -1])])[0]!.shape).toEqual([5, 'n0_1']);
  });

  test('errors name the node, the element count and the target', () => {
    expect(() => runOp('Reshape', [iota([2, 3, 4]), konst(i64v([5, -1]))], {}, { name: 'node_12' })).toThrow(
      "Reshape 'node_12': cannot reshape 24 elements to [5,-1] (input shape [2,3,4])",
    );
    expect(() => inferOp('Reshape', [ty('f32', [2, 3]), i64v([-1, -1])])).toThrow(/at most one dim may be -1/);
    expect(() => inferOp('Reshape', [ty('f32', [2, 3]), i64v([7])])).toThrow(/cannot reshape 6 elements to \[7\]/);
    expect(() => inferOp('Reshape', [ty('f32', ['B', 3]), i64v([0, 4])])).toThrow(/cannot reshape 3\*B elements/);
  });
});

describe('Transpose', () => {
  test('default perm reverses the dims', () => {
    const r = runOp('Transpose', [iota([2, 3])]);
    expect(r.types[0]!.shape).toEqual([3, 2]);
    expect(vals(r.outputs[0])).toEqual([0, 3, 1, 4, 2, 5]);
  });

  test('perm [1,0,2] keeps the inner rows contiguous', () => {
    const r = runOp('Transpose', [iota([2, 3, 2])], { perm: ints([1, 0, 2]) });
    expect(r.outputs[0]!.shape).toEqual([3, 2, 2]);
    expect(vals(r.outputs[0])).toEqual([0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11]);
  });

  test('symbolic dims move with the perm', () => {
    expect(inferOp('Transpose', [ty('bf16', ['B', 'S', 24, 64])], { perm: ints([0, 2, 1, 3]) })[0]!.shape).toEqual(['B', 24, 'S', 64]);
  });

  test('rejects a perm that is not a permutation', () => {
    expect(() => inferOp('Transpose', [ty('f32', [2, 3])], { perm: ints([0, 0]) })).toThrow("Transpose 'n0': perm [0,0] is not a permutation of 0..1");
    expect(() => inferOp('Transpose', [ty('f32', [2, 3])], { perm: ints([0]) })).toThrow(/one entry per input dim/);
  });
});

describe('Flatten', () => {
  test('axis splits the dims into two products', () => {
    expect(runOp('Flatten', [iota([2, 3, 4])], { axis: int(2) }).outputs[0]!.shape).toEqual([6, 4]);
    expect(runOp('Flatten', [iota([2, 3, 4])], { axis: int(0) }).outputs[0]!.shape).toEqual([1, 24]);
    expect(runOp('Flatten', [iota([2, 3, 4])], { axis: int(-1) }).outputs[0]!.shape).toEqual([6, 4]);
    expect(runOp('Flatten', [iota([2, 3, 4])]).outputs[0]!.shape).toEqual([2, 12]);
    expect(runOp('Flatten', [iota([2, 3, 4])], { axis: int(3) }).outputs[0]!.shape).toEqual([24, 1]);
  });

  test('symbolic products', () => {
    expect(inferOp('Flatten', [ty('f32', ['B', 3, 4])])[0]!.shape).toEqual(['B', 12]);
    expect(inferOp('Flatten', [ty('f32', ['B', 'S', 4])], { axis: int(2) })[0]!.shape).toEqual(['n0_0', 4]);
  });

  test('axis out of range', () => {
    expect(() => inferOp('Flatten', [ty('f32', [2, 3])], { axis: int(3) })).toThrow(/axis 3 is out of range for rank 2/);
  });
});

describe('Squeeze / Unsqueeze', () => {
  test('Squeeze-11 takes axes as an attribute', () => {
    const r = runOp('Squeeze', [iota([1, 3, 1, 2])], { axes: ints([0, 2]) }, { opset: 11 });
    expect(r.outputs[0]!.shape).toEqual([3, 2]);
    expect(vals(r.outputs[0])).toEqual([0, 1, 2, 3, 4, 5]);
  });

  test('Squeeze-13 takes axes as an input (negative allowed); no axes removes all 1s', () => {
    expect(runOp('Squeeze', [iota([1, 3, 1, 2]), konst(i64v([-2]))], {}, { opset: 13 }).types[0]!.shape).toEqual([1, 3, 2]);
    expect(runOp('Squeeze', [iota([1, 3, 1, 2])], {}, { opset: 13 }).types[0]!.shape).toEqual([3, 2]);
  });

  test('Squeeze of a non-1 dim fails; a symbolic dim can be squeezed by axis', () => {
    expect(() => inferOp('Squeeze', [ty('f32', [1, 3]), i64v([1])])).toThrow("Squeeze 'n0': cannot squeeze axis 1 of size 3 (input shape [1,3]); only size-1 dims can be removed");
    expect(inferOp('Squeeze', [ty('f32', ['B', 1, 'S']), i64v([1])])[0]!.shape).toEqual(['B', 'S']);
    expect(() => inferOp('Squeeze', [ty('f32', ['B', 1])])).toThrow(/depends on whether 'B' is 1/);
  });

  test('Unsqueeze-11 attribute and Unsqueeze-13 input forms', () => {
    expect(runOp('Unsqueeze', [iota([3, 2])], { axes: ints([0, 3]) }, { opset: 11 }).types[0]!.shape).toEqual([1, 3, 2, 1]);
    const r = runOp('Unsqueeze', [iota([3, 4]), konst(i64v([1, -1]))], {}, { opset: 13 });
    expect(r.types[0]!.shape).toEqual([3, 1, 4, 1]);
    expect(runOp('Unsqueeze', [iota([3, 4]), konst(i64v([3, 1]))]).types[0]!.shape).toEqual([3, 1, 4, 1]);
    expect(inferOp('Unsqueeze', [ty('f32', ['B', 'S']), i64v([0])])[0]!.shape).toEqual([1, 'B', 'S']);
  });

  test('Unsqueeze errors and unknown axes', () => {
    expect(() => inferOp('Unsqueeze', [ty('f32', [3]), i64v([1, 1])])).toThrow(/repeat axis 1/);
    expect(() => inferOp('Unsqueeze', [ty('f32', [3]), i64v([5])])).toThrow(/axes value 5 is out of range for rank 2/);
    const r = runOp('Unsqueeze', [iota([3]), i64v([0, 2])]);
    expect(r.types[0]!.shape).toEqual(['n0_0', 'n0_1', 'n0_2']);
    expect(r.outputs[0]!.shape).toEqual([1, 3, 1]);
  });
});

describe('Expand / Tile', () => {
  test('Expand broadcasts both ways', () => {
    const r = runOp('Expand', [f32([3, 1], [1, 2, 3]), konst(i64v([2, 1, 4]))]);
    expect(r.types[0]!.shape).toEqual([2, 3, 4]);
    expect(vals(r.outputs[0])).toEqual([1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
    const s = runOp('Expand', [f32([1, 3], [10, 20, 30]), konst(i64v([2, 1]))]);
    expect(vals(s.outputs[0])).toEqual([10, 20, 30, 10, 20, 30]);
  });

  test('Expand with symbolic dims and an unknown target', () => {
    expect(inferOp('Expand', [ty('f32', ['B', 1]), i64v([1, 8])])[0]!.shape).toEqual(['B', 8]);
    const r = runOp('Expand', [f32([1, 3], [1, 2, 3]), i64v([2, 1, 1])]);
    expect(r.types[0]!.shape).toEqual(['n0_0', 'n0_1', 3]);
    expect(r.outputs[0]!.shape).toEqual([2, 1, 3]);
    expect(() => inferOp('Expand', [ty('f32', [3]), i64v([4])])).toThrow(/cannot be broadcast/);
  });

  test('Tile repeats the data along each axis', () => {
    const x = f32([2, 2], [1, 2, 3, 4]);
    expect(vals(runOp('Tile', [x, konst(i64v([2, 1]))]).outputs[0])).toEqual([1, 2, 3, 4, 1, 2, 3, 4]);
    const r = runOp('Tile', [x, konst(i64v([1, 2]))]);
    expect(r.types[0]!.shape).toEqual([2, 4]);
    expect(vals(r.outputs[0])).toEqual([1, 2, 1, 2, 3, 4, 3, 4]);
    expect(inferOp('Tile', [ty('f32', ['B', 3]), i64v([1, 2])])[0]!.shape).toEqual(['B', 6]);
    expect(() => inferOp('Tile', [ty('f32', [2, 2]), i64v([2])])).toThrow(/repeats \[2\] must have one entry per input dim/);
  });
});

describe('DepthToSpace / SpaceToDepth', () => {
  // The ONNX operator documentation's example input.
  const x = f32([1, 8, 2, 3], [0, 1, 2, 3, 4, 5, 9, 10, 11, 12, 13, 14, 18, 19, 20, 21, 22, 23, 27, 28, 29, 30, 31, 32, 36, 37, 38, 39, 40, 41, 45, 46, 47, 48, 49, 50, 54, 55, 56, 57, 58, 59, 63, 64, 65, 66, 67, 68]);

  test('DCR mode (default)', () => {
    const r = runOp('DepthToSpace', [x], { blocksize: int(2) });
    expect(r.types[0]!.shape).toEqual([1, 2, 4, 6]);
    expect(vals(r.outputs[0])).toEqual([0, 18, 1, 19, 2, 20, 36, 54, 37, 55, 38, 56, 3, 21, 4, 22, 5, 23, 39, 57, 40, 58, 41, 59, 9, 27, 10, 28, 11, 29, 45, 63, 46, 64, 47, 65, 12, 30, 13, 31, 14, 32, 48, 66, 49, 67, 50, 68]);
  });

  test('CRD mode', () => {
    const r = runOp('DepthToSpace', [x], { blocksize: int(2), mode: str('CRD') });
    expect(vals(r.outputs[0])).toEqual([0, 9, 1, 10, 2, 11, 18, 27, 19, 28, 20, 29, 3, 12, 4, 13, 5, 14, 21, 30, 22, 31, 23, 32, 36, 45, 37, 46, 38, 47, 54, 63, 55, 64, 56, 65, 39, 48, 40, 49, 41, 50, 57, 66, 58, 67, 59, 68]);
  });

  test('SpaceToDepth puts each b x b block into channels (b1*b + b2)*C + c', () => {
    const r = runOp('SpaceToDepth', [iota([1, 1, 2, 4])], { blocksize: int(2) });
    expect(r.types[0]!.shape).toEqual([1, 4, 1, 2]);
    expect(vals(r.outputs[0])).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    // SpaceToDepth inverts DepthToSpace(DCR).
    const d = runOp('DepthToSpace', [x], { blocksize: int(2) }).outputs[0]!;
    expect(vals(runOp('SpaceToDepth', [d], { blocksize: int(2) }).outputs[0])).toEqual(vals(x));
  });

  test('shape errors', () => {
    expect(() => inferOp('DepthToSpace', [ty('f32', [1, 6, 2, 2])], { blocksize: int(2) })).toThrow(/channel count 6 is not divisible by 4/);
    expect(() => inferOp('SpaceToDepth', [ty('f32', [1, 1, 3, 4])], { blocksize: int(2) })).toThrow(/height 3 is not divisible by 2/);
    expect(() => inferOp('SpaceToDepth', [ty('f32', [1, 4, 4])], { blocksize: int(2) })).toThrow(/expected a 4-D NCHW input/);
    expect(inferOp('DepthToSpace', [ty('f32', ['N', 8, 'H', 3])], { blocksize: int(2) })[0]!.shape).toEqual(['N', 2, 'n0_2', 6]);
  });
});
