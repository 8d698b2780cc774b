/**
 * Gather, GatherElements, GatherND, ScatterND, ScatterElements (shape-gather.ts). Values are the
 * ONNX operator documentation's examples (checked by hand) plus hand-computed edge cases.
 */
import { Tensor } from '@paradit/ir';
import { f32, i64, i64v, inferOp, int, iota, konst, runOp, str, ty, vals } from './shape-test-utils';

describe('Gather', () => {
  test('axis 0 with 2-D indices', () => {
    const r = runOp('Gather', [f32([3, 2], [1, 2, 3, 4, 5, 6]), i64([2, 2], [0, 1, 1, 2])]);
    expect(r.types[0]!.shape).toEqual([2, 2, 2]);
    expect(vals(r.outputs[0])).toEqual([1, 2, 3, 4, 3, 4, 5, 6]);
  });

  test('axis 1 with negative indices, scalar index, i32 indices', () => {
    expect(vals(runOp('Gather', [iota([3, 3]), i64v([0, -1])], { axis: int(1) }).outputs[0])).toEqual([0, 2, 3, 5, 6, 8]);
    const s = runOp('Gather', [f32([3, 2], [1, 2, 3, 4, 5, 6]), Tensor.scalar('i64', 1)]);
    expect(s.types[0]!.shape).toEqual([2]);
    expect(vals(s.outputs[0])).toEqual([3, 4]);
    expect(vals(runOp('Gather', [iota([4]), Tensor.from('i32', [2], [3, 0])]).outputs[0])).toEqual([3, 0]);
  });

  test('embedding rows (block copies)', () => {
    const table = iota([10, 32]);
    const out = vals(runOp('Gather', [table, i64([1, 3], [3, 7, 3])]).outputs[0]);
    const row = (k: number): number[] => Array.from({ length: 32 }, (_, j) => k * 32 + j);
    expect(out).toEqual([...row(3), ...row(7), ...row(3)]);
  });

  test('symbolic dims flow; a shape vector folds', () => {
    expect(inferOp('Gather', [ty('f32', ['B', 'S', 64]), i64v([5])], { axis: int(1) })[0]!.shape).toEqual(['B', 1, 64]);
    expect(inferOp('Gather', [ty('f32', ['B', 'S', 64]), Tensor.scalar('i64', 0)], { axis: int(1) })[0]!.shape).toEqual(['B', 64]);
    const r = runOp('Gather', [konst(i64v([2, 77, 768])), konst(Tensor.scalar('i64', -1))]);
    expect(vals(r.folded[0])).toEqual([768]);
  });

  test('errors: index range (compile time and run time), index dtype', () => {
    expect(() => inferOp('Gather', [ty('f32', [3, 2]), i64v([3])])).toThrow("Gather 'n0': axis 0 index 3 is out of range for a dim of size 3");
    expect(() => runOp('Gather', [iota([3, 2]), i64v([-4])])).toThrow(/axis 0 index -4 is out of range for a dim of size 3/);
    expect(() => inferOp('Gather', [ty('f32', [3]), ty('f32', [1])])).toThrow(/indices must be i32 or i64, got f32/);
  });
});

describe('GatherElements', () => {
  test('axis 1 and axis 0', () => {
    const a = runOp('GatherElements', [f32([2, 2], [1, 2, 3, 4]), i64([2, 2], [0, 0, 1, 0])], { axis: int(1) });
    expect(vals(a.outputs[0])).toEqual([1, 1, 4, 3]);
    const data = f32([3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const b = runOp('GatherElements', [data, i64([2, 3], [1, 2, 0, 2, 0, 0])], { axis: int(0) });
    expect(b.types[0]!.shape).toEqual([2, 3]);
    expect(vals(b.outputs[0])).toEqual([4, 8, 3, 7, 2, 3]);
  });

  test('negative indices', () => {
    const data = f32([3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(vals(runOp('GatherElements', [data, i64([2, 3], [-1, -2, 0, -2, 0, 0])]).outputs[0])).toEqual([7, 5, 3, 4, 2, 3]);
  });

  test('errors', () => {
    expect(() => inferOp('GatherElements', [ty('f32', [3, 3]), ty('i64', [3])])).toThrow(/must have the data's rank 2/);
    expect(() => inferOp('GatherElements', [ty('f32', [3, 3]), ty('i64', [2, 4])])).toThrow(/indices dim 1 is 4, larger than the data dim 3/);
  });
});

describe('GatherND', () => {
  const d3 = iota([2, 2, 2]); // [[[0,1],[2,3]],[[4,5],[6,7]]]

  test('the ONNX examples with batch_dims 0', () => {
    expect(vals(runOp('GatherND', [iota([2, 2]), i64([2, 2], [0, 0, 1, 1])]).outputs[0])).toEqual([0, 3]);
    const b = runOp('GatherND', [iota([2, 2]), i64([2, 1], [1, 0])]);
    expect(b.types[0]!.shape).toEqual([2, 2]);
    expect(vals(b.outputs[0])).toEqual([2, 3, 0, 1]);
    expect(vals(runOp('GatherND', [d3, i64([2, 2], [0, 1, 1, 0])]).outputs[0])).toEqual([2, 3, 4, 5]);
    const c = runOp('GatherND', [d3, i64([2, 1, 2], [0, 1, 1, 0])]);
    expect(c.types[0]!.shape).toEqual([2, 1, 2]);
    expect(vals(c.outputs[0])).toEqual([2, 3, 4, 5]);
  });

  test('batch_dims 1', () => {
    const r = runOp('GatherND', [d3, i64([2, 1], [1, 0])], { batch_dims: int(1) });
    expect(r.types[0]!.shape).toEqual([2, 2]);
    expect(vals(r.outputs[0])).toEqual([2, 3, 4, 5]);
    // Full tuples per batch: data[0][1][1], data[1][0][1].
    expect(vals(runOp('GatherND', [d3, i64([2, 2], [1, 1, 0, 1])], { batch_dims: int(1) }).outputs[0])).toEqual([3, 5]);
  });

  test('errors', () => {
    expect(() => inferOp('GatherND', [ty('f32', [2, 2]), ty('i64', [2, 3])])).toThrow(/index tuples of length 3 cannot address a rank-2 input/);
    expect(() => inferOp('GatherND', [ty('f32', [2, 2]), ty('i64', [3, 1])], { batch_dims: int(1) })).toThrow(/batch dim 0 differs/);
  });
});

describe('ScatterND', () => {
  const data = f32([8], [1, 2, 3, 4, 5, 6, 7, 8]);

  test('none, and slices of updates', () => {
    const r = runOp('ScatterND', [data, i64([4, 1], [4, 3, 1, 7]), f32([4], [9, 10, 11, 12])]);
    expect(vals(r.outputs[0])).toEqual([1, 11, 3, 10, 9, 6, 7, 12]);
    const s = runOp('ScatterND', [Tensor.zeros('f32', [2, 2]), i64([1, 1], [1]), f32([1, 2], [7, 8])]);
    expect(vals(s.outputs[0])).toEqual([0, 0, 7, 8]);
  });

  test('reductions combine duplicates in order', () => {
    const idx = i64([2, 1], [4, 4]);
    const upd = f32([2], [10, 20]);
    const red = (r: string, opset = 16): number => vals(runOp('ScatterND', [data, idx, upd], { reduction: str(r) }, { opset }).outputs[0])[4]!;
    expect(red('add')).toBe(35);
    expect(red('mul')).toBe(1000);
    expect(red('max', 18)).toBe(20);
    expect(red('min', 18)).toBe(5);
    expect(red('none')).toBe(20);
  });

  test('f16 accumulation rounds after every update', () => {
    // 1 + 2^-11 ties to 1 in f16 both times; exact arithmetic would give 1 + 2^-10.
    const r = runOp('ScatterND', [Tensor.from('f16', [1], [1]), i64([2, 1], [0, 0]), Tensor.from('f16', [2], [2 ** -11, 2 ** -11])], { reduction: str('add') });
    expect(vals(r.outputs[0])).toEqual([1]);
  });

  test('errors', () => {
    expect(() => inferOp('ScatterND', [ty('f32', [8]), ty('i64', [4, 1]), ty('f32', [3])])).toThrow("ScatterND 'n0': updates have shape [3], expected [4]");
    expect(() => inferOp('ScatterND', [ty('f32', [8]), ty('i64', [4, 1]), ty('f32', [4])], { reduction: str('max') }, { opset: 16 })).toThrow(/reduction must be none, add or mul, got 'max'/);
    expect(() => runOp('ScatterND', [data, i64([1, 1], [8]), f32([1], [0])])).toThrow(/dim 0 index 8 is out of range for a dim of size 8/);
  });
});

describe('ScatterElements', () => {
  test('axis 0 (the ONNX example)', () => {
    const r = runOp('ScatterElements', [Tensor.zeros('f32', [3, 3]), i64([2, 3], [1, 0, 2, 0, 2, 1]), f32([2, 3], [1.0, 1.1, 1.2, 2.0, 2.1, 2.2])]);
    expect(vals(r.outputs[0])).toEqual(vals(f32([9], [2.0, 1.1, 0, 1.0, 0, 2.2, 0, 2.1, 1.2])));
  });

  test('axis 1, negative indices, add reduction with duplicates', () => {
    const data = f32([1, 5], [1, 2, 3, 4, 5]);
    const upd = f32([1, 2], [1.1, 2.1]);
    expect(vals(runOp('ScatterElements', [data, i64([1, 2], [1, 3]), upd], { axis: int(1) }).outputs[0])).toEqual(vals(f32([5], [1, 1.1, 3, 2.1, 5])));
    expect(vals(runOp('ScatterElements', [data, i64([1, 2], [1, -3]), upd], { axis: int(1) }).outputs[0])).toEqual(vals(f32([5], [1, 1.1, 2.1, 4, 5])));
    const add = vals(runOp('ScatterElements', [data, i64([1, 2], [1, 1]), upd], { axis: int(1), reduction: str('add') }).outputs[0]);
    expect(add[1]).toBe(Math.fround(Math.fround(2 + Math.fround(1.1)) + Math.fround(2.1)));
    expect(add[0]).toBe(1);
  });

  test('errors', () => {
    expect(() => inferOp('ScatterElements', [ty('f32', [3]), ty('i64', [2]), ty('f16', [2])])).toThrow(/updates must have the data dtype f32, got f16/);
    expect(() => inferOp('ScatterElements', [ty('f32', [3]), ty('i64', [2]), ty('f32', [3])])).toThrow(/updates have shape \[3\], expected \[2\]/);
    expect(() => inferOp('ScatterElements', [ty('f32', [3]), i64v([3]), ty('f32', [1])])).toThrow(/axis 0 index 3 is out of range/);
  });
});

