/** fold-reshape-chains: Before/Expected, must-not-fire cases, an error case, numerics (exact: pure data movement). */
import { Graph } from '@paradit/ir';
import { foldReshapeChains } from '@paradit/passes';
import { expectIr, expectSameResults, ir, runOne } from './helpers';

describe('fold-reshape-chains', () => {
  test('Unsqueeze -> Reshape -> Flatten collapses into one Reshape', () => {
    const before = ir(`
      graph main(%x: f32[4,6]) {
        %ax = const i64[1] [0]
        %s = const i64[3] [2, 2, 6]
        %a = Unsqueeze(%x, %ax)
        %b = Reshape(%a, %s)
        %c = Flatten(%b) {axis=1}
        return %c
      }`);
    const after = runOne(foldReshapeChains, before);
    expectIr(
      after,
      `graph main(%x: f32[4,6]) {
         %k = const i64[2] [2, 12]
         %c = Reshape(%x, %k)
         return %c
       }`,
    );
    expectSameResults(before, after, { tolerance: 'exact' });
  });

  test('a chain back to the input shape disappears; an inner view read elsewhere stays', () => {
    const before = ir(`
      graph main(%x: f32[4,6]) {
        %s1 = const i64[1] [24]
        %s2 = const i64[2] [4, 6]
        %a = Reshape(%x, %s1)
        %b = Reshape(%a, %s2)
        %y = Add(%b, %x)
        return %y, %a
      }`);
    const after = runOne(foldReshapeChains, before);
    expectIr(
      after,
      `graph main(%x: f32[4,6]) {
         %s1 = const i64[1] [24]
         %a = Reshape(%x, %s1)
         %y = Add(%x, %x)
         return %y, %a
       }`,
    );
    expectSameResults(before, after, { tolerance: 'exact' });
  });

  test('zero-size targets use allowzero so 0 keeps meaning size 0', () => {
    const before = ir(`
      graph main(%x: f32[0,6]) {
        %s1 = const i64[1] [0]
        %s2 = const i64[3] [0, 2, 3]
        %a = Reshape(%x, %s1) {allowzero=1}
        %b = Reshape(%a, %s2) {allowzero=1}
        return %b
      }`);
    const after = runOne(foldReshapeChains, before);
    expectIr(
      after,
      `graph main(%x: f32[0,6]) {
         %k = const i64[3] [0, 2, 3]
         %b = Reshape(%x, %k) {allowzero=1}
         return %b
       }`,
    );
  });

  test('must not fire: a view of a non-view, a single view, a symbolic target', () => {
    const m = ir(`
      graph main(%x: f32[4,6], %y: f32[B,6]) {
        %s = const i64[1] [24]
        %ax = const i64[1] [0]
        %t = Transpose(%x) {perm=[1, 0]}
        %a = Reshape(%t, %s)
        %u = Unsqueeze(%y, %ax)
        %v = Flatten(%u) {axis=0}
        return %a, %v
      }`);
    expect(runOne(foldReshapeChains, m)).toBe(m);
  });

  test('error: invalid input IR (a node reading a value defined after it) is rejected before the pass', () => {
    const m = ir(`
      graph main(%x: f32[4,6]) {
        %s = const i64[1] [24]
        %a = Reshape(%x, %s)
        %b = Neg(%a)
        return %b
      }`);
    const swapped = m.withGraph(new Graph(m.graph.inputs, [...m.graph.nodes].reverse(), m.graph.outputs, 'main'));
    expect(() => runOne(foldReshapeChains, swapped)).toThrow(/not-topological/);
  });
});
