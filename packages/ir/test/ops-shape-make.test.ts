/**
 * Shape, Size, ConstantOfShape, Range, Constant, EyeLike (shape-make.ts) and Trilu, OneHot,
 * NonZero (shape-index.ts), with hand-computed values.
 */
import { GraphBuilder, Tensor } from '@paradit/ir';
import { f32, float, floats, i64, i64v, inferOp, int, ints, iota, konst, runOp, str, tensorAttr, ty, vals } from './shape-test-utils';

describe('Shape / Size', () => {
  test('Shape with start/end (opset 15), clamped', () => {
    const x = iota([2, 3, 4]);
    const shapeOf = (attrs: Record<string, number>, opset = 15): number[] => {
      const a = Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, int(v)]));
      const r = runOp('Shape', [x], a, { opset });
      expect(r.types[0]!.dtype).toBe('i64');
      return vals(r.outputs[0]);
    };
    expect(shapeOf({})).toEqual([2, 3, 4]);
    expect(shapeOf({ start: 1 })).toEqual([3, 4]);
    expect(shapeOf({ end: -1 })).toEqual([2, 3]);
    expect(shapeOf({ start: -1 })).toEqual([4]);
    expect(shapeOf({ start: 1, end: 2 })).toEqual([3]);
    expect(shapeOf({ start: 10 })).toEqual([]);
    expect(shapeOf({ end: -10 })).toEqual([]);
    expect(shapeOf({ start: 1 }, 13)).toEqual([2, 3, 4]); // no window before opset 15
  });

  test('Shape of a symbolic tensor has a static length; Size is an i64 scalar', () => {
    expect(inferOp('Shape', [ty('f32', ['B', 'S', 64])])[0]).toEqual({ dtype: 'i64', shape: [3] });
    const r = runOp('Size', [iota([2, 3, 4])]);
    expect(r.types[0]!.shape).toEqual([]);
    expect(vals(r.outputs[0])).toEqual([24]);
  });
});

describe('Shape folding from types', () => {
  test('Shape and Size of a statically shaped runtime input are compile-time values', () => {
    expect(vals(runOp('Shape', [iota([2, 3, 4])]).folded[0])).toEqual([2, 3, 4]);
    expect(vals(runOp('Size', [iota([2, 3, 4])]).folded[0])).toEqual([24]);
  });

  test('only the window must be static', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: ['B', 'S', 64] });
    expect(b.valueOf(b.add('Shape', [x])[0]!)).toBeUndefined();
    expect(vals(b.valueOf(b.add('Shape', [x], { start: int(2) })[0]!))).toEqual([64]);
    expect(b.valueOf(b.add('Size', [x])[0]!)).toBeUndefined();
  });

  test('a Shape -> Gather -> Concat -> Reshape chain gives a static shape (regression: layer_norm_expanded)', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: [2, 16, 64] });
    const [shape] = b.add('Shape', [x]);
    const [batch] = b.add('Gather', [shape!, b.constant(i64v([0]))]);
    const [target] = b.add('Concat', [batch!, b.constant(i64v([-1, 8]))], { axis: int(0) });
    const [y] = b.add('Reshape', [x, target!]);
    expect(y!.shape).toEqual([2, 128, 8]);
  });
});

describe('ConstantOfShape', () => {
  test('value attribute sets dtype and fill; default f32 zeros', () => {
    const r = runOp('ConstantOfShape', [konst(i64v([2, 3]))], { value: tensorAttr(Tensor.from('i32', [1], [7])) });
    expect(r.types[0]).toEqual({ dtype: 'i32', shape: [2, 3] });
    expect(vals(r.folded[0])).toEqual([7, 7, 7, 7, 7, 7]);
    const z = runOp('ConstantOfShape', [i64v([2])]);
    expect(z.types[0]).toEqual({ dtype: 'f32', shape: ['n0_0'] });
    expect(vals(z.outputs[0])).toEqual([0, 0]);
  });

  test('empty and zero shapes', () => {
    expect(runOp('ConstantOfShape', [konst(i64v([0]))]).types[0]!.shape).toEqual([0]);
    expect(runOp('ConstantOfShape', [konst(Tensor.from('i64', [0], []))], { value: tensorAttr(f32([1], [2])) }).outputs[0]!.shape).toEqual([]);
  });

  test('errors', () => {
    expect(() => inferOp('ConstantOfShape', [i64v([2, -1])])).toThrow("ConstantOfShape 'n0': shape [2,-1] has negative dims");
    expect(() => inferOp('ConstantOfShape', [i64v([2])], { value: tensorAttr(f32([2], [1, 2])) })).toThrow(/value must have exactly one element/);
  });
});

describe('Range', () => {
  test('float and int ranges', () => {
    const r = runOp('Range', [konst(Tensor.scalar('f32', 1)), konst(Tensor.scalar('f32', 5)), konst(Tensor.scalar('f32', 2))]);
    expect(r.types[0]).toEqual({ dtype: 'f32', shape: [2] });
    expect(vals(r.outputs[0])).toEqual([1, 3]);
    const s = runOp('Range', [Tensor.scalar('i32', 10), Tensor.scalar('i32', 4), Tensor.scalar('i32', -3)]);
    expect(s.types[0]!.shape).toEqual(['n0_0']);
    expect(vals(s.outputs[0])).toEqual([10, 7]);
    // ceil(1 / fround(0.1)) = 10 elements, not 11.
    const t = runOp('Range', [konst(Tensor.scalar('f32', 0)), konst(Tensor.scalar('f32', 1)), konst(Tensor.scalar('f32', 0.1))]);
    expect(t.types[0]!.shape).toEqual([10]);
    expect(runOp('Range', [konst(Tensor.scalar('i64', 5)), konst(Tensor.scalar('i64', 1)), konst(Tensor.scalar('i64', 1))]).types[0]!.shape).toEqual([0]);
  });

  test('errors', () => {
    expect(() => inferOp('Range', [Tensor.scalar('i64', 0), Tensor.scalar('i64', 3), Tensor.scalar('i64', 0)])).toThrow("Range 'n0': delta must not be 0");
    expect(() => inferOp('Range', [ty('i64', []), ty('i32', []), ty('i64', [])])).toThrow(/input 1 must have the dtype of start \(i64\), got i32/);
  });
});

describe('Constant', () => {
  test('every value form', () => {
    const t = runOp('Constant', [], { value: tensorAttr(f32([2], [1, 2])) });
    expect(vals(t.folded[0])).toEqual([1, 2]);
    expect(runOp('Constant', [], { value_float: float(2.5) }).types[0]).toEqual({ dtype: 'f32', shape: [] });
    expect(vals(runOp('Constant', [], { value_floats: floats([1, 2, 3]) }).outputs[0])).toEqual([1, 2, 3]);
    expect(runOp('Constant', [], { value_int: int(7) }).types[0]).toEqual({ dtype: 'i64', shape: [] });
    expect(vals(runOp('Constant', [], { value_ints: ints([4, 5]) }).outputs[0])).toEqual([4, 5]);
  });

  test('strings are unsupported; exactly one value attribute', () => {
    expect(() => inferOp('Constant', [], { value_string: str('hi') })).toThrow("Constant 'n0': attribute 'value_string' is not supported (ParaDiT has no string or sparse tensors)");
    expect(() => inferOp('Constant', [], {})).toThrow(/exactly one of value, .* must be set, got none/);
    expect(() => inferOp('Constant', [], { value_int: int(1), value_float: float(1) })).toThrow(/got value_float, value_int/);
  });
});

describe('EyeLike', () => {
  test('diagonals and dtype', () => {
    expect(vals(runOp('EyeLike', [Tensor.zeros('f32', [3, 4])]).outputs[0])).toEqual([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]);
    expect(vals(runOp('EyeLike', [Tensor.zeros('f32', [3, 4])], { k: int(1) }).outputs[0])).toEqual([0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
    expect(vals(runOp('EyeLike', [Tensor.zeros('f32', [3, 2])], { k: int(-1) }).outputs[0])).toEqual([0, 0, 1, 0, 0, 1]);
    const r = runOp('EyeLike', [Tensor.zeros('i32', [2, 2])], { dtype: int(7) });
    expect(r.types[0]).toEqual({ dtype: 'i64', shape: [2, 2] });
    expect(() => inferOp('EyeLike', [ty('f32', [2])])).toThrow(/input must be 2-D/);
  });
});

describe('Trilu', () => {
  const x = f32([4, 5], [4, 7, 3, 7, 9, 1, 2, 8, 6, 9, 9, 4, 0, 8, 7, 4, 1, 7, 0, 3]);
  test('upper and lower with k', () => {
    expect(vals(runOp('Trilu', [x]).outputs[0])).toEqual([4, 7, 3, 7, 9, 0, 2, 8, 6, 9, 0, 0, 0, 8, 7, 0, 0, 0, 0, 3]);
    expect(vals(runOp('Trilu', [x], { upper: int(0) }).outputs[0])).toEqual([4, 0, 0, 0, 0, 1, 2, 0, 0, 0, 9, 4, 0, 0, 0, 4, 1, 7, 0, 0]);
    expect(vals(runOp('Trilu', [x, Tensor.scalar('i64', -1)]).outputs[0])).toEqual([4, 7, 3, 7, 9, 1, 2, 8, 6, 9, 0, 4, 0, 8, 7, 0, 0, 7, 0, 3]);
    expect(vals(runOp('Trilu', [x, Tensor.scalar('i64', 1)], { upper: int(0) }).outputs[0])).toEqual([4, 7, 0, 0, 0, 1, 2, 8, 0, 0, 9, 4, 0, 8, 0, 4, 1, 7, 0, 3]);
    expect(vals(runOp('Trilu', [x, Tensor.scalar('i64', 6)]).outputs[0])).toEqual(new Array(20).fill(0));
  });
  test('batched matrices', () => {
    expect(vals(runOp('Trilu', [iota([2, 2, 2])], { upper: int(0) }).outputs[0])).toEqual([0, 0, 2, 3, 4, 0, 6, 7]);
    expect(() => inferOp('Trilu', [ty('f32', [3])])).toThrow(/rank >= 2/);
  });
});

describe('OneHot', () => {
  const values = f32([2], [2, 5]);
  test('axis -1 and axis 0, negative and out-of-range indices', () => {
    const r = runOp('OneHot', [i64v([1, 0, 2]), konst(Tensor.scalar('i64', 3)), values]);
    expect(r.types[0]).toEqual({ dtype: 'f32', shape: [3, 3] });
    expect(vals(r.outputs[0])).toEqual([2, 5, 2, 5, 2, 2, 2, 2, 5]);
    const a0 = runOp('OneHot', [i64v([1, 1, 2]), konst(Tensor.scalar('i64', 3)), values], { axis: int(0) });
    expect(vals(a0.outputs[0])).toEqual([2, 2, 2, 5, 5, 2, 2, 2, 5]);
    const neg = runOp('OneHot', [i64v([-1, 5]), konst(f32([1], [3.7])), values]);
    expect(vals(neg.outputs[0])).toEqual([2, 2, 5, 2, 2, 2]);
  });
  test('unknown depth gives a fresh dim', () => {
    const r = runOp('OneHot', [i64([2, 1], [0, 1]), Tensor.scalar('i64', 2), values], { axis: int(1) });
    expect(r.types[0]!.shape).toEqual([2, 'n0_1', 1]);
    expect(vals(r.outputs[0])).toEqual([5, 2, 2, 5]);
    expect(() => inferOp('OneHot', [ty('i64', [2]), ty('i64', []), ty('f32', [3])])).toThrow(/values must be \[off, on\]/);
  });
});

describe('NonZero', () => {
  test('coordinates in row-major order; nnz symbolic unless known', () => {
    const x = f32([2, 2], [1, 0, 1, 1]);
    const r = runOp('NonZero', [x]);
    expect(r.types[0]).toEqual({ dtype: 'i64', shape: [2, 'n0_nnz'] });
    expect(r.outputs[0]!.shape).toEqual([2, 3]);
    expect(vals(r.outputs[0])).toEqual([0, 1, 1, 0, 0, 1]);
    const k = runOp('NonZero', [konst(x)]);
    expect(k.types[0]!.shape).toEqual([2, 3]);
    expect(vals(k.folded[0])).toEqual([0, 1, 1, 0, 0, 1]);
    expect(vals(runOp('NonZero', [i64([3], [0, 0, 4])]).outputs[0])).toEqual([2]);
  });
});
