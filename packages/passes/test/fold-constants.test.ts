/** fold-constants: Before/Expected IR, must-not-fire cases, the size limit, the plan, errors, numerics (exact). */
import { ConstData, Graph, GraphBuilder, Module, Node, Tensor, Value, tensorType } from '@paradit/ir';
import { applyFoldPlan, foldConstants, formatFoldPlan, planFoldConstants } from '@paradit/passes';
import { expectIr, expectSameResults, ir, runOne } from './helpers';

const SHAPE_CHAIN = `
graph main(%x: f32[2,8]) {
  %i = const i64[] [1]
  %ax = const i64[1] [0]
  %m1 = const i64[1] [-1]
  %s = Shape(%x)  # shape
  %d = Gather(%s, %i) {axis=0}  # gather
  %u = Unsqueeze(%d, %ax)  # unsqueeze
  %t = Concat(%m1, %u) {axis=0}  # concat
  %y = Reshape(%x, %t)  # reshape
  return %y
}`;

describe('fold-constants', () => {
  test('shape arithmetic on a static shape folds away entirely', () => {
    const before = ir(SHAPE_CHAIN);
    const after = runOne(foldConstants, before);
    expectIr(
      after,
      `graph main(%x: f32[2,8]) {
         %t = const i64[2] [-1, 8]
         %y = Reshape(%x, %t)
         return %y
       }`,
    );
    expectSameResults(before, after, { tolerance: 'exact' });
  });

  test('readers of folded values get the more precise types inference now gives', () => {
    // Made by hand as a builder that could not see the shape would make it: Reshape to [R0, R1].
    const x = new Value(tensorType('f32', [2, 8]), 'x');
    const s = new Value(tensorType('i64', [2]), 's');
    const y = new Value(tensorType('f32', ['R0', 'R1']), 'y');
    const z = new Value(tensorType('f32', ['R0', 'R1']), 'z');
    const nodes = [new Node('Shape', [x], [s], {}, 'shape'), new Node('Reshape', [x, s], [y], {}, 'reshape'), new Node('Neg', [y], [z], {}, 'neg')];
    const before = new Module(new Graph([x], nodes, [z]), { '': 18 });
    const after = runOne(foldConstants, before, { verify: false });
    expect(after.graph.nodes.map((n) => `${n.op}:${n.outputs[0]!.shape.join(',')}`)).toEqual(['Reshape:2,8', 'Neg:2,8']);
    expect(after.graph.outputs[0]!.shape).toEqual([2, 8]);
    expect(after.graph.outputs[0]!.name).toBe('z');
    runOne({ name: 'nothing', description: '', run: (m) => m }, after); // the verifier accepts the result
  });

  test('Shape with start/end and Size fold from the type alone', () => {
    const before = ir(`
      graph main(%x: f32[2,3,4]) {
        %s = Shape(%x) {start=1, end=-0}
        %t = Shape(%x) {start=-2}
        %n = Size(%x)
        return %s, %t, %n
      }`);
    const after = runOne(foldConstants, before);
    expectIr(
      after,
      `graph main(%x: f32[2,3,4]) {
         %s = const i64[0] []
         %t = const i64[2] [3, 4]
         %n = const i64[] [24]
         return %s, %t, %n
       }`,
    );
    expectSameResults(before, after, { tolerance: 'exact' });
  });

  test('arithmetic on small constants folds; a node reading a graph input does not', () => {
    const before = ir(`
      graph main(%x: f32[3]) {
        %a = const f32[3] [1, 2, 3]
        %b = const f32[] [0.5]
        %c = Mul(%a, %b)
        %d = Add(%x, %c)
        return %d
      }`);
    const after = runOne(foldConstants, before);
    expectIr(
      after,
      `graph main(%x: f32[3]) {
         %c = const f32[3] [0.5, 1, 1.5]
         %d = Add(%x, %c)
         return %d
       }`,
    );
    expectSameResults(before, after, { tolerance: 'exact' });
  });

  test('must not fire: no node has all-constant inputs', () => {
    const before = ir(`
      graph main(%x: f32[2,3]) {
        %y = Relu(%x)
        %z = Mul(%y, %x)
        return %z
      }`);
    expect(runOne(foldConstants, before)).toBe(before);
  });

  test('must not fire past the size limit (results and operands)', () => {
    const before = ir(`
      graph main(%x: f32[20]) {
        %a = const f32[] [2]
        %e = const i64[1] [20]
        %big = Expand(%a, %e)
        %y = Mul(%x, %big)
        return %y
      }`);
    // 20 elements: over a limit of 16, under the default.
    expect(runOne(foldConstants, before, { options: { foldMaxElements: 16 } })).toBe(before);
    const folded = runOne(foldConstants, before);
    expect(folded.graph.nodes.map((n) => n.op)).toEqual(['Mul']);
  });

  test('a Constant node folds whatever its size (its data already exists)', () => {
    const before = ir(`
      graph main(%x: f32[4]) {
        %c = Constant() {value=f32[4] [1, 2, 3, 4]}
        %y = Add(%x, %c)
        return %y
      }`);
    const after = runOne(foldConstants, before, { options: { foldMaxElements: 1 } });
    expectIr(
      after,
      `graph main(%x: f32[4]) {
         %c = const f32[4] [1, 2, 3, 4]
         %y = Add(%x, %c)
         return %y
       }`,
    );
  });

  test('a view of a big constant becomes a lazily reshaped constant without loading it', () => {
    // 256 x 257 elements: above the fold limit and above what shape inference ever reads.
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [256, 257]));
    let loads = 0;
    const n = 256 * 257;
    const data = new ConstData(tensorType('f32', [n]), { kind: 'random', seed: 3 }, () => {
      loads++;
      return Tensor.from('f32', [n], Array.from({ length: n }, (_, i) => i % 1000));
    });
    const w = b.lazyConstant(data, 'w');
    const r = b.add('Reshape', [w, b.constant(Tensor.from('i64', [2], [256, 257]))], {}, { name: 'view' })[0]!;
    const y = b.add('Add', [x, r])[0]!;
    const before = new Module(b.build([y]), { '': 18 });
    const plan = planFoldConstants(before.graph, 18, 1 << 16);
    expect(plan.entries.map((e) => [e.node.name, e.how])).toEqual([['view', 'view']]);
    const after = runOne(foldConstants, before);
    expect(loads).toBe(0);
    expect(after.graph.nodes.map((n) => n.op)).toEqual(['Add']);
    const c = after.graph.nodes[0]!.inputs[1] as Value;
    expect(c.constant!.source.kind).toBe('inline');
    expect(c.constant!.tensor().shape).toEqual([256, 257]);
    expect(c.constant!.tensor().data[1007]).toBe(7);
    expect(loads).toBe(1);
  });

  test('the plan is printable on its own', () => {
    const plan = planFoldConstants(ir(SHAPE_CHAIN).graph, 18, 1 << 16);
    expect(formatFoldPlan(plan)).toBe(
      [
        'fold-constants: 4 nodes fold',
        "  Shape 'shape' -> i64[2] = [2,8] (shape)",
        "  Gather 'gather' -> i64[] = 8 (evaluated)",
        "  Unsqueeze 'unsqueeze' -> i64[1] = [8] (evaluated)",
        "  Concat 'concat' -> i64[2] = [-1,8] (evaluated)",
      ].join('\n'),
    );
  });

  test('error: a constant node whose evaluation fails is named (IR the builder would have rejected)', () => {
    // Made without GraphBuilder (which would fold it and fail at once): the pass must name the node.
    const d = new Value(tensorType('f32', [3]), 'd', ConstData.of(Tensor.from('f32', [3], [1, 2, 3])));
    const i = new Value(tensorType('i64', [1]), 'i', ConstData.of(Tensor.from('i64', [1], [7])));
    const g = new Value(tensorType('f32', [1]), 'g');
    const node = new Node('Gather', [d, i], [g], { axis: { kind: 'int', value: 0 } }, 'bad_gather');
    const m = new Module(new Graph([], [node], [g]), { '': 18 });
    expect(() => runOne(foldConstants, m, { verify: false })).toThrow(/pass 'fold-constants' failed: Gather 'bad_gather': .*index 7 is out of range/);
  });
});
