/**
 * fold-symbolic-shapes: shape arithmetic over symbolic dims (what dynamic-shape exports compute
 * with Shape/Gather/Concat) resolved at compile time. Before/Expected IR, must-not-fire cases,
 * resolveReshape on its own, and numerics (exact: the pass changes types and constants only).
 */
import { Tensor } from '@paradit/ir';
import { canonicalize, foldSymbolicShapes, foldSymbolicShapesPass, formatSymbolicShapes } from '@paradit/passes';
import { resolveReshape } from '../src/fold-symbolic-shapes';
import { expectIr, expectSameResults, ir, runOne } from './helpers';

const HEAD_SPLIT = `
graph main(%x: f32[batch,seq,8]) {
  %i0 = const i64[] [0]
  %i1 = const i64[] [1]
  %ax = const i64[1] [0]
  %n = const i64[1] [2]
  %h = const i64[1] [4]
  %s = Shape(%x)
  %b = Gather(%s, %i0) {axis=0}
  %l = Gather(%s, %i1) {axis=0}
  %bu = Unsqueeze(%b, %ax)
  %lu = Unsqueeze(%l, %ax)
  %t = Concat(%bu, %lu, %n, %h) {axis=0}
  %r = Reshape(%x, %t)
  %y = Transpose(%r) {perm=[0,2,1,3]}
  return %y
}`;

const inputs = (b: number, s: number, d = 8): Tensor[] => [Tensor.from('f32', [b, s, d], Array.from({ length: b * s * d }, (_, i) => Math.sin(i * 0.7)))];

describe('fold-symbolic-shapes', () => {
  test('a Shape-driven head split gets the input symbols and the static head sizes; its reader follows', () => {
    const before = ir(HEAD_SPLIT);
    // Inference alone gives the Reshape fresh symbols, even for the static head count and size.
    expect(before.graph.nodes.find((n) => n.op === 'Reshape')!.outputs[0]!.shape.every((d) => typeof d === 'string')).toBe(true);
    const after = runOne(foldSymbolicShapesPass, before);
    expectIr(
      after,
      HEAD_SPLIT.replace('%r = Reshape(%x, %t)', '%r = Reshape(%x, %t) : f32[batch,seq,2,4]').replace(
        '%y = Transpose(%r) {perm=[0,2,1,3]}',
        '%y = Transpose(%r) {perm=[0,2,1,3]} : f32[batch,2,seq,4]',
      ),
    );
    expect(after.graph.outputs[0]!.shape).toEqual(['batch', 2, 'seq', 4]);
    // The run-time shape operand stays: the graph computes what it did.
    expect(after.graph.nodes.map((n) => n.op)).toEqual(before.graph.nodes.map((n) => n.op));
    for (const [b, s] of [
      [1, 3],
      [2, 5],
    ]) {
      expectSameResults(before, after, { inputs: inputs(b!, s!), tolerance: 'exact' });
    }
    // A second run changes nothing (canonicalize runs it to a fixpoint).
    expect(foldSymbolicShapes(after.graph, after.opset).graph).toBe(after.graph);
  });

  test('a vector of sizes read off symbolic shapes becomes a constant, and canonicalize removes the Shape code', () => {
    const before = ir(`
      graph main(%x: f32[batch,6,8]) {
        %i1 = const i64[] [1]
        %i2 = const i64[] [2]
        %ax = const i64[1] [0]
        %m1 = const i64[1] [-1]
        %s = Shape(%x)
        %a = Gather(%s, %i1) {axis=0}
        %c = Gather(%s, %i2) {axis=0}
        %p = Mul(%a, %c)
        %pu = Unsqueeze(%p, %ax)
        %t = Concat(%m1, %pu) {axis=0}
        %r = Reshape(%x, %t)
        return %r
      }`);
    const { entries } = foldSymbolicShapes(before.graph, before.opset);
    expect(formatSymbolicShapes(entries)).toContain('(constant)');
    const after = runOne(canonicalize, before);
    expectIr(
      after,
      `graph main(%x: f32[batch,6,8]) {
         %t = const i64[2] [-1, 48]
         %r = Reshape(%x, %t) : f32[batch,48]
         return %r
       }`,
    );
    expectSameResults(before, after, { inputs: inputs(3, 6), tolerance: 'exact' });
  });

  test('concat along a symbolic axis is the sum of the dims; slicing it at a tracked bound gives them back', () => {
    const before = ir(`
      graph main(%txt: f32[batch,text_seq,8], %img: f32[batch,image_seq,8]) {
        %i1 = const i64[] [1]
        %ax = const i64[1] [0]
        %zero = const i64[1] [0]
        %end = const i64[1] [2147483647]
        %one = const i64[1] [1]
        %j = Concat(%txt, %img) {axis=1}
        %s = Shape(%txt)
        %n = Gather(%s, %i1) {axis=0}
        %nu = Unsqueeze(%n, %ax)
        %t2 = Slice(%j, %zero, %nu, %one)
        %i2 = Slice(%j, %nu, %end, %one)
        %y = Add(%i2, %img)
        return %t2, %y, %j
      }`);
    const after = runOne(foldSymbolicShapesPass, before);
    expect(after.graph.outputs.map((v) => v.shape)).toEqual([
      ['batch', 'text_seq', 8],
      ['batch', 'image_seq', 8],
      ['batch', 'image_seq+text_seq', 8],
    ]);
    const feeds = (t: number, s: number): Tensor[] => [inputs(2, t)[0]!, Tensor.from('f32', [2, s, 8], Array.from({ length: 16 * s }, (_, i) => Math.cos(i)))];
    expectSameResults(before, after, { inputs: feeds(3, 4), tolerance: 'exact' });
  });

  test('ConstantOfShape and Expand with a tracked shape get its dims', () => {
    const before = ir(`
      graph main(%x: f32[batch,seq,8], %m: bool[batch,1,1,seq]) {
        %i0 = const i64[] [0]
        %i1 = const i64[] [1]
        %ax = const i64[1] [0]
        %two = const i64[1] [2]
        %s = Shape(%x)
        %b0 = Gather(%s, %i0) {axis=0}
        %l0 = Gather(%s, %i1) {axis=0}
        %b = Unsqueeze(%b0, %ax)
        %l = Unsqueeze(%l0, %ax)
        %bl = Concat(%b, %l) {axis=0}
        %ones = ConstantOfShape(%bl) {value=bool[1] [true]}
        %wide = Concat(%b, %two, %l, %l) {axis=0}
        %e = Expand(%m, %wide)
        return %ones, %e
      }`);
    const after = runOne(foldSymbolicShapesPass, before);
    expect(after.graph.outputs.map((v) => v.shape)).toEqual([
      ['batch', 'seq'],
      ['batch', 2, 'seq', 'seq'],
    ]);
    const m = Tensor.from('bool', [2, 1, 1, 3], [1, 0, 1, 1, 1, 0]);
    expectSameResults(before, after, { inputs: [inputs(2, 3)[0]!, m], tolerance: 'exact' });
  });

  test('must not fire: static shapes, and targets that are not shape arithmetic', () => {
    // With static shapes fold-constants already folded the arithmetic: nothing is left to do.
    const fixed = runOne(canonicalize, ir(HEAD_SPLIT.replace('f32[batch,seq,8]', 'f32[2,5,8]')));
    expect(fixed.graph.nodes.map((n) => n.op)).toEqual(['Reshape', 'Transpose']);
    expect(foldSymbolicShapes(fixed.graph, fixed.opset).graph).toBe(fixed.graph);
    const fromInput = ir(`
      graph main(%x: f32[batch,seq,8], %t: i64[4]) {
        %r = Reshape(%x, %t)
        return %r
      }`);
    expect(foldSymbolicShapes(fromInput.graph, fromInput.opset).graph).toBe(fromInput.graph);
  });

  test('resolveReshape: 0 copies, -1 is solved only when the symbols cancel', () => {
    expect(resolveReshape(['batch', 'seq', 8], [0, 0, 2, -1], false)).toEqual(['batch', 'seq', 2, 4]);
    expect(resolveReshape(['batch', 'seq', 8], ['batch', -1, 8], false)).toEqual(['batch', 'seq', 8]);
    expect(resolveReshape(['batch', 'seq', 8], ['batch', 'seq', 2, 4], false)).toEqual(['batch', 'seq', 2, 4]);
    // batch*seq is no single symbol; seq*8 neither.
    expect(resolveReshape(['batch', 'seq', 8], [-1, 8], false)).toBeUndefined();
    expect(resolveReshape(['batch', 'seq', 8], ['batch', -1], false)).toBeUndefined();
    // Two -1s, or 8 elements that do not split into 3s.
    expect(resolveReshape(['batch', 8], [-1, -1], false)).toBeUndefined();
    expect(resolveReshape(['batch', 8], ['batch', 3, -1], false)).toBeUndefined();
    // allowzero: 0 is a size.
    expect(resolveReshape(['batch', 0], ['batch', 0], true)).toEqual(['batch', 0]);
  });
});
