/**
 * The pattern rewriter (rewriter.ts, rewrite.ts): identity when nothing matches, fixpoint over
 * chains, erasing only what a rewrite left dead, provenance of built nodes, the GraphView helpers
 * (single use, splats, chains), subgraphs, and its errors (type change, wrong arity, rules that
 * undo each other).
 */
import { Graph, IrError, Module, Node, Tensor, Value, tensorType } from '@paradit/ir';
import {
  GraphView,
  RewriteRule,
  applyRewrites,
  matchChain,
  replaceWith,
  rewritePass,
  rewriteTo,
} from '@paradit/passes';
import { expectIr, expectSameResults, ir, runOne } from './helpers';

// Neg(Neg(x)) -> x
const doubleNeg: RewriteRule = (n, view) => {
  const inner = n.op === 'Neg' ? view.producerOf(n.inputs[0], 'Neg') : undefined;
  return inner ? replaceWith(inner.inputs[0]!) : undefined;
};

// Relu(Neg(x)) with the Neg used only here -> Neg(Min(x, 0))
const reluOfNeg: RewriteRule = (n, view) => {
  if (n.op !== 'Relu') return undefined;
  const chain = matchChain(view, n.outputs[0], ['Relu', 'Neg'], true);
  if (!chain) return undefined;
  const x = chain[1]!.inputs[0]!;
  return rewriteTo((b) => b.op('Neg', [b.op('Min', [x, b.constant(Tensor.scalar(x.dtype, 0))])]));
};

const passOf = (...rules: RewriteRule[]) => rewritePass('test-rules', 'rules under test', rules);

describe('pattern rewriter', () => {
  test('a named graph output keeps its name when a rule replaces it with a built value', () => {
    const t = tensorType('f32', [3]);
    const x = new Value(t, 'x');
    const a = new Value(t, 'a');
    const out = new Value(t, 'sample');
    const g = new Graph([x], [new Node('Neg', [x], [a], {}, 'neg'), new Node('Relu', [a], [out], {}, 'relu')], [out], 'main');
    const m = new Module(g, { '': 18 });
    const after = runOne(passOf(reluOfNeg), m);
    expect(after.graph.nodes.map((n) => n.op)).toEqual(['Min', 'Neg']);
    expect(after.graph.outputs.map((v) => v.name)).toEqual(['sample']);
    expectSameResults(m, after, { tolerance: 'exact' });
  });

  test('no match: the same graph object comes back', () => {
    const m = ir('graph main(%x: f32[3]) { %a = Neg(%x)  %b = Exp(%a)  return %b }');
    expect(applyRewrites(m.graph, [doubleNeg], { opset: 18 })).toBe(m.graph);
    expect(runOne(passOf(doubleNeg), m)).toBe(m);
  });

  test('rules apply to a fixpoint; nodes a rewrite leaves unread are erased, older dead code is not', () => {
    const before = ir(`
      graph main(%x: f32[3]) {
        %a = Neg(%x)
        %b = Neg(%a)
        %c = Neg(%b)
        %d = Neg(%c)
        %dead = Exp(%x)
        return %d
      }`);
    const after = runOne(passOf(doubleNeg), before);
    expectIr(
      after,
      `graph main(%x: f32[3]) {
         %dead = Exp(%x)
         return %x
       }`,
    );
    expectSameResults(before, after, { tolerance: 'exact' });
  });

  test('built nodes carry the provenance of the node they replace; single-use is respected', () => {
    const before = ir(`
      graph main(%x: f32[4], %y: f32[4]) {
        %n = Neg(%x)  # neg_x
        %r = Relu(%n)  # relu_x
        %m = Neg(%y)  # neg_y
        %s = Relu(%m)  # relu_y
        %t = Add(%s, %m)
        return %r, %t
      }`);
    const after = runOne(passOf(reluOfNeg), before);
    expectIr(
      after,
      `graph main(%x: f32[4], %y: f32[4]) {
         %z = const f32[] [0]
         %a = Min(%x, %z)
         %r = Neg(%a)
         %m = Neg(%y)
         %s = Relu(%m)
         %t = Add(%s, %m)
         return %r, %t
       }`,
    );
    expect(after.graph.nodes.slice(0, 2).map((n: Node) => n.name)).toEqual(['relu_x', 'relu_x']);
    expectSameResults(before, after, { tolerance: 1e-6 });
  });

  test('a rewrite that drops a reader re-offers the remaining readers (single-use patterns)', () => {
    // Identity(y) -> y erases the dead Identity; then Neg(Neg(x)) sees its inner Neg used once.
    const identity: RewriteRule = (n) => (n.op === 'Identity' ? replaceWith(n.inputs[0]!) : undefined);
    const doubleNegSingleUse: RewriteRule = (n, view) => {
      const inner = n.op === 'Neg' ? view.producerOf(n.inputs[0], 'Neg') : undefined;
      return inner && view.hasSingleUser(inner.outputs[0]!) ? replaceWith(inner.inputs[0]!) : undefined;
    };
    const before = ir(`
      graph main(%x: f32[3]) {
        %a = Neg(%x)
        %b = Neg(%a)
        %i = Identity(%a)
        return %b
      }`);
    const after = runOne(passOf(doubleNegSingleUse, identity), before);
    expectIr(after, 'graph main(%x: f32[3]) { return %x }');
  });

  test('the view reads constants: splat values and small integer vectors', () => {
    const seen: unknown[] = [];
    const probe: RewriteRule = (n, view: GraphView) => {
      if (n.op === 'Reshape') seen.push(view.ints(n.inputs[1]), view.splat(n.inputs[1]));
      if (n.op === 'Mul') seen.push(view.splat(n.inputs[1]), view.hasSingleUser(n.inputs[0]!), view.users(n.inputs[0]!).length);
      return undefined;
    };
    const m = ir(`
      graph main(%x: f32[2,2]) {
        %s = const i64[1] [4]
        %h = const f32[2,2] [0.5, 0.5, 0.5, 0.5]
        %r = Reshape(%x, %s)
        %p = Mul(%x, %h)
        return %r, %p
      }`);
    applyRewrites(m.graph, [probe], { opset: 18 });
    expect(seen).toEqual([[4], 4, 0.5, false, 2]);
  });

  test('rules apply inside subgraphs too', () => {
    const before = ir(`
      graph main(%c: bool[], %x: f32[3]) {
        %r = If(%c) {
          then_branch=graph then_body() {
            %a = Neg(%x)
            %b = Neg(%a)
            return %b
          },
          else_branch=graph else_body() {
            %e = Exp(%x)
            return %e
          }
        }
        return %r
      }`);
    const after = runOne(passOf(doubleNeg), before);
    expectIr(
      after,
      `graph main(%c: bool[], %x: f32[3]) {
         %r = If(%c) {
           then_branch=graph then_body() { return %x },
           else_branch=graph else_body() { %e = Exp(%x)  return %e }
         }
         return %r
       }`,
    );
  });

  test('error: a rule whose replacement changes the type is named with the node', () => {
    // Exp(x) -> Cast(x, f16)   (wrong on purpose)
    const badCast: RewriteRule = (n) =>
      n.op === 'Exp' ? rewriteTo((b) => b.op('Cast', [n.inputs[0]!], { to: { kind: 'int', value: 10 } })) : undefined;
    const m = ir('graph main(%x: f32[3]) { %e = Exp(%x)  # exp_1\n return %e }');
    let err: unknown;
    try {
      runOne(passOf(badCast), m);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IrError);
    expect((err as IrError).code).toBe('E_VERIFY');
    expect((err as IrError).message).toMatch(
      /pass 'test-rules' failed: rewrite rule 'badCast' on Exp 'exp_1': the replacement of output 0 has type f16\[3\], but the output has type f32\[3\]/,
    );
  });

  test('error: a rule giving the wrong number of replacements', () => {
    const twoForOne: RewriteRule = (n) => (n.op === 'Exp' ? replaceWith(n.inputs[0]!, n.inputs[0]!) : undefined);
    const m = ir('graph main(%x: f32[3]) { %e = Exp(%x)  return %e }');
    expect(() => runOne(passOf(twoForOne), m)).toThrow(/rule 'twoForOne' on Exp: gave 2 replacement values for 1 outputs/);
  });

  test('error: rules that undo each other are stopped with a readable message', () => {
    // Exp(x) -> Exp(x): each application makes a new Exp, which matches again.
    const wrap: RewriteRule = (n) => (n.op === 'Exp' ? rewriteTo((b) => b.op('Exp', [n.inputs[0]!])) : undefined);
    const m = ir('graph main(%x: f32[3]) { %e = Exp(%x)  return %e }');
    expect(() => runOne(passOf(wrap), m, { options: { rewriteStepsPerNode: 2 } })).toThrow(/without reaching a fixpoint \(last: rule 'wrap' on Exp\)/);
  });
});
