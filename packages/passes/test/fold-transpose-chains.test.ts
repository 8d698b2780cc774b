/** fold-transpose-chains: Before/Expected, must-not-fire, an error case, numerics (exact: pure data movement). */
import { Graph } from '@paradit/ir';
import { foldTransposeChains } from '@paradit/passes';
import { expectIr, expectSameResults, ir, runOne } from './helpers';

describe('fold-transpose-chains', () => {
  test('Transpose(Transpose(x, p), q) becomes one Transpose of the composed permutation', () => {
    const before = ir(`
      graph main(%x: f32[2,3,4]) {
        %a = Transpose(%x) {perm=[1, 0, 2]}
        %b = Transpose(%a) {perm=[2, 1, 0]}
        return %b
      }`);
    const after = runOne(foldTransposeChains, before);
    expectIr(
      after,
      `graph main(%x: f32[2,3,4]) {
         %b = Transpose(%x) {perm=[2, 0, 1]}
         return %b
       }`,
    );
    expectSameResults(before, after, { tolerance: 'exact' });
  });

  test('three Transposes that compose to the identity disappear (default perm reverses)', () => {
    const before = ir(`
      graph main(%x: f32[2,3,4]) {
        %a = Transpose(%x) {perm=[1, 2, 0]}
        %b = Transpose(%a) {perm=[1, 2, 0]}
        %c = Transpose(%b) {perm=[1, 2, 0]}
        %y = Neg(%c)
        %r = Transpose(%y)
        %s = Transpose(%r)
        return %s
      }`);
    const after = runOne(foldTransposeChains, before);
    expectIr(
      after,
      `graph main(%x: f32[2,3,4]) {
         %y = Neg(%x)
         return %y
       }`,
    );
    expectSameResults(before, after, { tolerance: 'exact' });
  });

  test('a Transpose that only moves size-1 axes becomes a Reshape', () => {
    const before = ir(`
      graph main(%x: f32[1,8,1,4]) {
        %a = Transpose(%x) {perm=[1, 0, 3, 2]}
        return %a
      }`);
    const after = runOne(foldTransposeChains, before);
    expectIr(
      after,
      `graph main(%x: f32[1,8,1,4]) {
         %k = const i64[4] [8, 1, 4, 1]
         %a = Reshape(%x, %k)
         return %a
       }`,
    );
    expectSameResults(before, after, { tolerance: 'exact' });
  });

  test('must not fire: non-unit axes swap (static or symbolic), a lone Transpose after a non-Transpose', () => {
    const m = ir(`
      graph main(%x: f32[1,8,4], %y: f32[S,1,H]) {
        %a = Transpose(%x) {perm=[0, 2, 1]}
        %n = Neg(%a)
        %b = Transpose(%n) {perm=[2, 1, 0]}
        %c = Transpose(%y) {perm=[2, 1, 0]}
        return %b, %c
      }`);
    expect(runOne(foldTransposeChains, m)).toBe(m);
  });

  test('error: invalid input IR (a node reading a value defined after it) is rejected before the pass', () => {
    const m = ir(`
      graph main(%x: f32[2,3]) {
        %a = Transpose(%x) {perm=[1, 0]}
        %b = Transpose(%a) {perm=[1, 0]}
        return %b
      }`);
    const swapped = m.withGraph(new Graph(m.graph.inputs, [...m.graph.nodes].reverse(), m.graph.outputs, 'main'));
    expect(() => runOne(foldTransposeChains, swapped)).toThrow(/not-topological/);
  });
});
