/**
 * The verifier: valid IR passes; each broken invariant (SSA, order, scoping, unknown op, type
 * mismatch, invalid operands, undefined outputs, placement) is reported with where and what,
 * and verifyModule throws E_VERIFY listing every problem at once.
 */
import {
  Graph, GraphBuilder, IrError, Module, Node, Tensor, Value, diagnoseGraph, diagnoseModule, parseModule, printModule,
  tensorType, verifyModule,
} from '@paradit/ir';
import type { OpKind, Placement, TensorType } from '@paradit/ir';

const f32 = (...shape: (number | string)[]): TensorType => tensorType('f32', shape);
const codes = (g: Graph): string[] => diagnoseGraph(g).map((d) => d.code);

describe('valid IR', () => {
  test('a module with an If whose branches read outer values and constants', () => {
    const b = new GraphBuilder(18);
    const c = b.input('c', tensorType('bool', []));
    const x = b.input('x', f32('B', 4));
    const shape = b.constant(Tensor.from('i64', [2], [-1, 2]));
    const [r] = b.add('Reshape', [x, shape]); // needs the constant's value at compile time
    const tb = new GraphBuilder(18, b);
    const [t] = tb.add('Neg', [r!]);
    const eb = new GraphBuilder(18, b);
    const [e] = eb.add('Relu', [r!]);
    const [o] = b.add('If', [c], {
      then_branch: { kind: 'graph', value: tb.build([t!], 'then') },
      else_branch: { kind: 'graph', value: eb.build([e!], 'else') },
    });
    const m = new Module(b.build([o!]), { '': 18 });
    expect(diagnoseModule(m)).toEqual([]);
    expect(() => verifyModule(m)).not.toThrow();
  });

  test('a parsed module with elided weights verifies without reading them', () => {
    const m = parseModule(`
      module opset(ai.onnx=18) {
        graph main(%0: f32[2,64]) {
          %1 = const f32[64,64] <hash 0123456789abcdef>
          %2 = MatMul(%0, %1) : f32[2,64]
          %3 = Constant() {value=f32[8,8] <hash 0123456789abcdef>} : f32[8,8]
          return %2, %3
        }
      }`);
    expect(diagnoseModule(m)).toEqual([]);
  });
});

describe('broken IR', () => {
  test('use before definition (not topological) and a dangling input', () => {
    const x = new Value(f32(2), 'x');
    const a = new Value(f32(2), 'a');
    const b = new Value(f32(2), 'b');
    const stranger = new Value(f32(2), 'elsewhere');
    const c = new Value(f32(2), 'c');
    const g = new Graph([x], [new Node('Neg', [a], [b], {}, 'first'), new Node('Neg', [x], [a], {}, 'second'), new Node('Add', [b, stranger], [c])], [c]);
    const ds = diagnoseGraph(g);
    expect(ds.map((d) => d.code)).toEqual(['not-topological', 'undefined-value']);
    expect(ds[0]!.message).toBe(
      "main: node #0 Neg 'first': input 0 (value 'a' f32[2]) is defined later, by node #1 Neg 'second'; nodes must be in topological order",
    );
    expect(ds[0]!.nodeName).toBe('first');
    expect(ds[1]!.message).toContain("input 1 (value 'elsewhere' f32[2]) is not defined in this graph or an enclosing one");
  });

  test('a value defined twice, an unknown op and an undefined graph output', () => {
    const x = new Value(f32(2), 'x');
    const y = new Value(f32(2), 'y');
    const ghost = new Value(f32(2), 'ghost');
    const g = new Graph([x], [new Node('Neg', [x], [y]), new Node('Frobnicate' as OpKind, [x], [y])], [y, ghost]);
    expect(codes(g)).toEqual(['unknown-op', 'redefined', 'undefined-output']);
  });

  test('an output type that differs from what the rule infers, and operands the rule rejects', () => {
    const x = new Value(f32(2, 3), 'x');
    const w = new Value(f32(4, 5), 'w');
    const y = new Value(f32(2, 4)); // Neg keeps the shape: f32[2,3]
    const z = new Value(f32(2, 5));
    const g = new Graph([x, w], [new Node('Neg', [x], [y], {}, 'neg'), new Node('MatMul', [x, w], [z], {}, 'mm')], [y, z]);
    const ds = diagnoseGraph(g);
    expect(ds.map((d) => d.code)).toEqual(['type-mismatch', 'invalid-node']);
    expect(ds[0]!.message).toBe("main: node #0 Neg 'neg': output 0 has type f32[2,4], but the op rule infers f32[2,3]");
    expect(ds[1]!.message).toMatch(/^main: node #1 MatMul 'mm': MatMul 'mm': /);
  });

  test('types are checked with compile-time values from constants', () => {
    const x = new Value(f32(2, 6), 'x');
    const shape = new GraphBuilder(18).constant(Tensor.from('i64', [2], [3, 4]));
    const y = new Value(f32(4, 3));
    const g = new Graph([x], [new Node('Reshape', [x, shape], [y])], [y]);
    expect(diagnoseGraph(g).map((d) => d.message)).toEqual(['main: node #0 Reshape: output 0 has type f32[4,3], but the op rule infers f32[3,4]']);
  });

  test('a subgraph may not read a value its enclosing graph defines after the If', () => {
    const c = new Value(tensorType('bool', []), 'c');
    const x = new Value(f32(2), 'x');
    const late = new Value(f32(2), 'late');
    const inner = new Value(f32(2));
    const branch = new Graph([], [new Node('Neg', [late], [inner])], [inner], 'then');
    const o = new Value(f32(2));
    const ifNode = new Node('If', [c], [o], { then_branch: { kind: 'graph', value: branch }, else_branch: { kind: 'graph', value: branch } }, 'if');
    const g = new Graph([c, x], [ifNode, new Node('Neg', [x], [late])], [o]);
    const ds = diagnoseGraph(g);
    expect(ds.some((d) => d.code === 'undefined-value' && d.message.startsWith("main: node #0 If 'if'.else_branch: node #0 Neg"))).toBe(true);
    // The same Graph object used for both branches defines its values twice.
    expect(ds.some((d) => d.code === 'redefined')).toBe(true);
  });

  test('verifyModule throws E_VERIFY listing every problem', () => {
    const x = new Value(f32(2), 'x');
    const y = new Value(f32(3));
    const ghost = new Value(f32(2), 'ghost');
    const m = new Module(new Graph([x], [new Node('Neg', [x], [y], {}, 'neg')], [y, ghost]), { '': 18 });
    let err: unknown;
    try {
      verifyModule(m);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IrError);
    expect((err as IrError).code).toBe('E_VERIFY');
    expect((err as IrError).nodeName).toBe('neg');
    expect((err as Error).message).toBe(
      [
        'IR verification failed with 2 problems:',
        "  - [type-mismatch] main: node #0 Neg 'neg': output 0 has type f32[3], but the op rule infers f32[2]",
        "  - [undefined-output] main: output 1 (value 'ghost' f32[2]) is not defined in this graph or an enclosing one",
      ].join('\n'),
    );
    // The printer still shows broken IR, for debugging.
    expect(printModule(m)).toContain(`return %1, %undef_${ghost.id}`);
  });
});

describe('placement', () => {
  const shard = (axis: number): Placement => ({ kind: 'sharded', axis, meshAxis: 'ulysses' });
  const rep: Placement = { kind: 'replicated' };
  const add = (a: TensorType, b: TensorType): Graph => {
    const x = new Value(a, 'x');
    const y = new Value(b, 'y');
    const out = new Value(tensorType('bf16', a.shape, a.placement));
    return new Graph([x, y], [new Node('Add', [x, y], [out], {}, 'add')], [out]);
  };

  test('sharded operands must agree; a replicated operand may only broadcast along the shard', () => {
    const act = tensorType('bf16', [1, 16, 8], shard(1));
    expect(codes(add(act, tensorType('bf16', [1, 16, 8], shard(1))))).toEqual([]);
    expect(codes(add(act, tensorType('bf16', [8], rep)))).toEqual([]); // bias
    expect(codes(add(act, tensorType('bf16', [1, 1, 8], rep)))).toEqual([]);
    expect(codes(add(act, tensorType('bf16', [1, 16, 8], shard(2))))).toEqual(['placement']);
    expect(codes(add(act, tensorType('bf16', [1, 16, 8])))).toEqual(['placement']); // absent = replicated
    const ds = diagnoseGraph(add(act, tensorType('bf16', [16, 8], rep)));
    expect(ds.map((d) => d.message)).toEqual([
      "main: node #0 Add 'add': input 1 is not sharded on its axis 0 (size 16), but input 0 is sharded on that axis over 'ulysses'; " +
        'shard input 1 the same way or gather input 0 first',
    ]);
  });

  test('extra sharded axes and token orders must agree too', () => {
    const two: Placement = { kind: 'sharded', axis: 0, meshAxis: 'cfg', also: [{ axis: 1, meshAxis: 'ulysses' }] };
    expect(codes(add(tensorType('bf16', [2, 16, 8], two), tensorType('bf16', [2, 16, 8], two)))).toEqual([]);
    expect(codes(add(tensorType('bf16', [2, 16, 8], two), tensorType('bf16', [2, 16, 8], shard(1))))).toEqual(['placement']);
    expect(codes(add(tensorType('bf16', [2, 16, 8], two), tensorType('bf16', [1, 16, 8], shard(1))))).toEqual([]); // broadcasts on 0
    const tokens = { axis: 1, segments: [6, 10], chunks: 4 };
    const ordered: Placement = { ...shard(1), tokens };
    expect(codes(add(tensorType('bf16', [1, 16, 8], ordered), tensorType('bf16', [1, 16, 8], ordered)))).toEqual([]);
    expect(codes(add(tensorType('bf16', [1, 16, 8], ordered), tensorType('bf16', [8], rep)))).toEqual([]);
    const ds = diagnoseGraph(add(tensorType('bf16', [1, 16, 8], ordered), tensorType('bf16', [1, 16, 8], shard(1))));
    expect(ds.map((d) => d.message)).toEqual([
      "main: node #0 Add 'add': input 1 is in natural token order on broadcast axis 1, but input 0 is in tokens(1:[6,10]/4); reorder one of them first",
    ]);
  });

  test('placement rules can be replaced (issue 4 extends them)', () => {
    const g = add(tensorType('bf16', [1, 16, 8], shard(1)), tensorType('bf16', [1, 16, 8], shard(2)));
    expect(diagnoseGraph(g, { placementRules: [] })).toEqual([]);
    expect(diagnoseGraph(g, { placementRules: [(n) => (n.op === 'Add' ? 'no adds' : undefined)] }).map((d) => d.message)).toEqual([
      "main: node #0 Add 'add': no adds",
    ]);
  });
});
