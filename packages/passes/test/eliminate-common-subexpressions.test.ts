/** eliminate-common-subexpressions: Before/Expected, scoping, must-not-fire, the plan, an error case, numerics (exact). */
import { ConstData, Graph, GraphBuilder, Module, Tensor, tensorType } from '@paradit/ir';
import { eliminateCommonSubexpressions, formatCsePlan, planCommonSubexpressions } from '@paradit/passes';
import { expectIr, expectSameResults, ir, runOne } from './helpers';

describe('eliminate-common-subexpressions', () => {
  test('equal nodes, swapped operands of Add, and constants with equal contents merge', () => {
    const before = ir(`
      graph main(%x: f32[3], %y: f32[3]) {
        %c1 = const f32[3] [1, 2, 3]
        %c2 = const f32[3] [1, 2, 3]
        %a = Sigmoid(%x)
        %b = Sigmoid(%x)
        %p = Add(%a, %y)
        %q = Add(%y, %b)
        %m1 = Mul(%p, %c1)
        %m2 = Mul(%q, %c2)
        %s = Sub(%m1, %m2)
        return %s
      }`);
    const after = runOne(eliminateCommonSubexpressions, before);
    expectIr(
      after,
      `graph main(%x: f32[3], %y: f32[3]) {
         %c = const f32[3] [1, 2, 3]
         %a = Sigmoid(%x)
         %p = Add(%a, %y)
         %m = Mul(%p, %c)
         %s = Sub(%m, %m)
         return %s
       }`,
    );
    expectSameResults(before, after, { tolerance: 'exact' });
  });

  test('a subgraph reuses an equal node of its enclosing graph, never the other way round', () => {
    const before = ir(`
      graph main(%c: bool[], %x: f32[3]) {
        %e = Exp(%x)
        %r = If(%c) {
          then_branch=graph then_body() {
            %e2 = Exp(%x)
            %t = Add(%e2, %e)
            return %t
          },
          else_branch=graph else_body() {
            %n = Neg(%x)
            return %n
          }
        }
        %n2 = Neg(%x)
        %y = Mul(%r, %n2)
        return %y
      }`);
    const after = runOne(eliminateCommonSubexpressions, before);
    expectIr(
      after,
      `graph main(%c: bool[], %x: f32[3]) {
         %e = Exp(%x)
         %r = If(%c) {
           then_branch=graph then_body() {
             %t = Add(%e, %e)
             return %t
           },
           else_branch=graph else_body() {
             %n = Neg(%x)
             return %n
           }
         }
         %n2 = Neg(%x)
         %y = Mul(%r, %n2)
         return %y
       }`,
    );
    for (const cond of [0, 1]) {
      expectSameResults(before, after, { tolerance: 'exact', inputs: [Tensor.from('bool', [], [cond]), Tensor.from('f32', [3], [-1, 0.5, 2])] });
    }
  });

  test('must not fire: other attributes, non-commutative operand order, -0 versus +0, other inputs', () => {
    const m = ir(`
      graph main(%x: f32[2,3], %y: f32[2,3]) {
        %z1 = const f32[] [0]
        %z2 = const f32[] [-0]
        %a = Softmax(%x) {axis=0}
        %b = Softmax(%x) {axis=1}
        %c = Sub(%x, %y)
        %d = Sub(%y, %x)
        %e = Add(%x, %z1)
        %f = Add(%x, %z2)
        %g = Exp(%x)
        %h = Exp(%y)
        return %a, %b, %c, %d, %e, %f, %g, %h
      }`);
    expect(runOne(eliminateCommonSubexpressions, m)).toBe(m);
  });

  test('big seeded-random constants are neither loaded nor merged (their data depends on their name)', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [300, 300]));
    const n = 300 * 300;
    const lazy = (name: string): ConstData =>
      new ConstData(tensorType('f32', [300, 300]), { kind: 'random', seed: 0 }, () => {
        throw new Error(`${name} must not be loaded`);
      });
    const w1 = b.lazyConstant(lazy('w1'), 'w1');
    const w2 = b.lazyConstant(lazy('w2'), 'w2');
    const y = b.add('Add', [b.add('Mul', [x, w1])[0]!, b.add('Mul', [x, w2])[0]!])[0]!;
    const m = new Module(b.build([y]), { '': 18 });
    expect(n).toBeGreaterThan(1 << 16);
    expect(runOne(eliminateCommonSubexpressions, m)).toBe(m);
  });

  test('the plan is printable on its own', () => {
    const m = ir(`
      graph main(%x: f32[3]) {
        %c1 = const f32[] [2]  # two
        %c2 = const f32[] [2]  # also_two
        %a = Exp(%x)  # exp_a
        %b = Exp(%x)  # exp_b
        %p = Mul(%a, %c1)
        %q = Mul(%b, %c2)
        return %p, %q
      }`);
    expect(formatCsePlan(planCommonSubexpressions(m.graph, 1 << 16))).toBe(
      [
        'eliminate-common-subexpressions: 1 constants, 2 nodes merged',
        "  merge constant f32[] 'also_two' into 'two'",
        "  merge Exp 'exp_b' into Exp 'exp_a'",
        '  merge Mul into Mul',
      ].join('\n'),
    );
  });

  test('error: invalid input IR (a node reading a value defined after it) is rejected before the pass', () => {
    const m = ir('graph main(%x: f32[3]) { %a = Exp(%x)  %b = Exp(%a)  return %b }');
    const swapped = m.withGraph(new Graph(m.graph.inputs, [...m.graph.nodes].reverse(), m.graph.outputs, 'main'));
    expect(() => runOne(eliminateCommonSubexpressions, swapped)).toThrow(/not-topological/);
  });
});
