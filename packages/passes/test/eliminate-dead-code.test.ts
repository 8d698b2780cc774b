/** eliminate-dead-code: Before/Expected, If results, the plan, must-not-fire, an error case, numerics (exact). */
import { Graph, Tensor } from '@paradit/ir';
import { eliminateDeadCode, formatDcePlan, planDeadCode } from '@paradit/passes';
import { expectIr, expectSameResults, ir, runOne } from './helpers';

describe('eliminate-dead-code', () => {
  test('unread nodes go, and unread trailing LayerNormalization outputs are dropped', () => {
    const before = ir(`
      graph main(%x: f32[2,4], %w: f32[4]) {
        %a = Mul(%x, %x)
        %b = Exp(%a)
        %y, %mean, %inv = LayerNormalization(%x, %w) {axis=-1}
        return %y
      }`);
    const after = runOne(eliminateDeadCode, before);
    expectIr(
      after,
      `graph main(%x: f32[2,4], %w: f32[4]) {
         %y = LayerNormalization(%x, %w) {axis=-1}
         return %y
       }`,
    );
    expectSameResults(before, after, { tolerance: 'exact' });
  });

  test('an unread If result is removed from both branches, and what only it read goes too', () => {
    const before = ir(`
      graph main(%c: bool[], %x: f32[3]) {
        %e = Exp(%x)
        %r, %unused = If(%c) {
          then_branch=graph then_body() {
            %t = Neg(%x)
            %t2 = Sin(%e)
            return %t, %t2
          },
          else_branch=graph else_body() {
            %f = Abs(%x)
            return %f, %e
          }
        }
        return %r
      }`);
    const plan = planDeadCode(before.graph);
    expect(formatDcePlan(plan)).toBe(
      ['eliminate-dead-code: 2 dead nodes, 1 trimmed', '  remove Sin', '  remove Exp', '  trim If: 2 -> 1 outputs'].join('\n'),
    );
    const after = runOne(eliminateDeadCode, before);
    expectIr(
      after,
      `graph main(%c: bool[], %x: f32[3]) {
         %r = If(%c) {
           then_branch=graph then_body() {
             %t = Neg(%x)
             return %t
           },
           else_branch=graph else_body() {
             %f = Abs(%x)
             return %f
           }
         }
         return %r
       }`,
    );
    for (const cond of [0, 1]) {
      const inputs = [Tensor.from('bool', [], [cond]), Tensor.from('f32', [3], [-1, 0.5, 2])];
      expectSameResults(before, after, { tolerance: 'exact', inputs });
    }
  });

  test('must not fire: everything is read (graph inputs are never removed)', () => {
    const m = ir(`
      graph main(%x: f32[3], %unused: f32[3]) {
        %a = Exp(%x)
        %b = Neg(%a)
        return %b, %a
      }`);
    expect(runOne(eliminateDeadCode, m)).toBe(m);
  });

  test('error: invalid input IR (an output defined nowhere) is rejected before the pass', () => {
    const m = ir('graph main(%x: f32[3]) { %a = Exp(%x)  return %a }');
    const bad = m.withGraph(new Graph(m.graph.inputs, [], m.graph.outputs, 'main'));
    expect(() => runOne(eliminateDeadCode, bad)).toThrow(/invalid IR.*undefined-output/s);
  });
});
