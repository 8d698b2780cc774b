/** remove-noop-ops: each rule's Before/Expected, must-not-fire cases, an error case, numerics (exact). */
import { Graph, Module, Node, Value, tensorType } from '@paradit/ir';
import { removeNoopOps } from '@paradit/passes';
import { expectIr, expectSameResults, ir, runOne } from './helpers';

/** Runs the pass on `before`, compares with `expected`, and checks the outputs did not change. */
function fires(before: string, expected: string): void {
  const m = ir(before);
  const out = runOne(removeNoopOps, m);
  expectIr(out, expected);
  expectSameResults(m, out, { tolerance: 'exact' });
}

function doesNotFire(text: string): void {
  const m: Module = ir(text);
  expect(runOne(removeNoopOps, m)).toBe(m);
}

describe('remove-noop-ops', () => {
  test('Identity, same-type Cast/CastLike, identity Transpose and same-shape Reshape/Expand go', () => {
    fires(
      `graph main(%x: f32[2,3], %l: f32[4]) {
         %s = const i64[2] [2, 3]
         %a = Identity(%x)
         %b = Cast(%a) {to=1}
         %c = CastLike(%b, %l)
         %d = Transpose(%c) {perm=[0, 1]}
         %e = Reshape(%d, %s)
         %f = Expand(%e, %s)
         %g = Relu(%f)
         return %g
       }`,
      `graph main(%x: f32[2,3], %l: f32[4]) {
         %g = Relu(%x)
         return %g
       }`,
    );
  });

  test('must not fire: an Identity that names a graph output stays (runtimes find outputs by name)', () => {
    const t = tensorType('f32', [2, 3]);
    const x = new Value(t, 'x');
    const r = new Value(t, 'r');
    const named = new Value(t, 'fbcache.diff');
    const nodes = [new Node('Relu', [x], [r], {}, 'relu'), new Node('Identity', [r], [named], {}, 'name_it')];
    const m = new Module(new Graph([x], nodes, [named], 'main'), { '': 18 });
    expect(runOne(removeNoopOps, m)).toBe(m);
    // the same Identity with an unnamed output goes
    const anon = new Value(t, '');
    const m2 = new Module(new Graph([x], [nodes[0]!, new Node('Identity', [r], [anon], {}, 'anon')], [anon], 'main'), { '': 18 });
    expect(runOne(removeNoopOps, m2).graph.nodes.map((n) => n.op)).toEqual(['Relu']);
  });

  test('Squeeze/Unsqueeze pairs that cancel go', () => {
    fires(
      `graph main(%x: f32[2,1,3]) {
         %ax = const i64[1] [1]
         %s = Squeeze(%x, %ax)
         %u = Unsqueeze(%s, %ax)
         %y = Neg(%u)
         return %y
       }`,
      `graph main(%x: f32[2,1,3]) {
         %y = Neg(%x)
         return %y
       }`,
    );
  });

  test('inference Dropout, one-piece Concat/Split/Sum, whole Slice, zero Pad, unit Tile go', () => {
    fires(
      `graph main(%x: f32[2,3]) {
         %st = const i64[2] [0, 0]
         %en = const i64[2] [2, 3]
         %pads = const i64[4] [0, 0, 0, 0]
         %reps = const i64[2] [1, 1]
         %a = Dropout(%x)
         %b = Concat(%a) {axis=1}
         %c = Split(%b) {axis=0, num_outputs=1}
         %d = Sum(%c)
         %e = Slice(%d, %st, %en)
         %f = Pad(%e, %pads)
         %g = Tile(%f, %reps)
         %y = Relu(%g)
         return %y
       }`,
      `graph main(%x: f32[2,3]) {
         %y = Relu(%x)
         return %y
       }`,
    );
  });

  test('x + 0, 0 + x, x - 0, x * 1, 1 * x and x / 1 go when the constant does not broadcast x', () => {
    fires(
      `graph main(%x: f32[2,3]) {
         %z = const f32[] [0]
         %zs = const f32[3] [0, 0, 0]
         %o = const f32[1,3] [1, 1, 1]
         %a = Add(%x, %z)
         %b = Add(%zs, %a)
         %c = Sub(%b, %z)
         %d = Mul(%c, %o)
         %e = Mul(%o, %d)
         %f = Div(%e, %o)
         return %f
       }`,
      `graph main(%x: f32[2,3]) {
         return %x
       }`,
    );
  });

  test('must not fire: ops that change type, order, values or shape', () => {
    doesNotFire(`
      graph main(%x: f32[2,3], %y: f32[3]) {
        %s = const i64[2] [3, 2]
        %st = const i64[1] [-1]
        %en = const i64[1] [-4]
        %ax = const i64[1] [0]
        %stp = const i64[1] [-1]
        %z = const f32[2,2,3] [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        %two = const f32[] [2]
        %a = Cast(%x) {to=10}
        %b = Reshape(%x, %s)
        %c = Transpose(%x) {perm=[1, 0]}
        %d = Slice(%x, %st, %en, %ax, %stp)
        %e = Add(%x, %z)
        %f = Mul(%x, %two)
        %g = Sub(%y, %x)
        return %a, %b, %c, %d, %e, %f, %g
      }`);
  });

  test('must not fire: a Dropout whose mask is read, or whose training mode is not known to be off', () => {
    doesNotFire(`
      graph main(%x: f32[2,3], %t: bool[]) {
        %r = const f32[] [0.5]
        %a, %m = Dropout(%x)
        %b = Dropout(%x, %r, %t)
        return %a, %m, %b
      }`);
  });

  test('error: invalid input IR is rejected before the pass runs, naming the problem', () => {
    // The graph returns a value no node defines any more: the verifier catches it up front.
    const m = ir(`graph main(%x: f32[2,3]) { %s = const i64[2] [3, 2]  %r = Reshape(%x, %s) : f32[3,2]  return %r }`);
    const bad = m.withGraph(new Graph(m.graph.inputs, [], m.graph.nodes[0]!.outputs, 'main'));
    expect(() => runOne(removeNoopOps, bad)).toThrow(/is invalid IR \(no pass ran yet\).*undefined-output/s);
  });
});
