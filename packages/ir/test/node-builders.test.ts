/**
 * buildNode and updateNode (builder.ts): the one way to create a node outside a GraphBuilder
 * (types from the op rule, stated placements) and the one way to rebuild one (the same node when
 * nothing changed). Guards the callers that replaced bare `new Node(`: dead-code trimming, rewiring
 * through substitutions and the cache gate's NodeMaker rely on both contracts.
 */
import { IrError, Node, Value, buildNode, formatTensorType as formatType, tensorType, updateNode } from '@paradit/ir';

const x = new Value(tensorType('f32', [2, 3]), 'x');
const y = new Value(tensorType('f32', [1, 3]), 'y');

describe('buildNode', () => {
  test('types come from the op rule (broadcast [2,3] + [1,3] -> [2,3])', () => {
    const n = buildNode(18, 'Add', [x, y], {}, { name: 'add_0', outputNames: ['s'] });
    expect([n.op, n.name, n.outputs[0]!.name]).toEqual(['Add', 'add_0', 's']);
    expect(formatType(n.outputs[0]!.type)).toBe('f32[2,3]');
  });

  test('stated placements are written into the output types', () => {
    const n = buildNode(18, 'Relu', [x], {}, { placements: [{ kind: 'sharded', axis: 0, meshAxis: 'ring' }] });
    expect(formatType(n.outputs[0]!.type)).toBe('f32[2,3]@shard(0,ring)');
  });

  test('error: bad operands throw at once with the node named', () => {
    const z = new Value(tensorType('f32', [4]), 'z');
    expect(() => buildNode(18, 'MatMul', [x, z], {}, { name: 'mm' })).toThrow(IrError);
    expect(() => buildNode(18, 'MatMul', [x, z], {}, { name: 'mm' })).toThrow(/MatMul 'mm'/);
  });
});

describe('updateNode', () => {
  const n = new Node('Add', [x, y], [new Value(tensorType('f32', [2, 3]))], {}, 'add_1');

  test('must not change: the same node when every given field equals the node\'s', () => {
    expect(updateNode(n, {})).toBe(n);
    expect(updateNode(n, { inputs: [x, y], outputs: [...n.outputs], attrs: n.attrs, name: 'add_1', op: 'Add' })).toBe(n);
  });

  test('changed fields replace, the rest is kept', () => {
    const u = updateNode(n, { inputs: [y, x], name: 'swapped' });
    expect(u).not.toBe(n);
    expect([u.op, u.name, u.inputs[0], u.inputs[1], u.outputs[0], u.attrs]).toEqual([n.op, 'swapped', y, x, n.outputs[0], n.attrs]);
    expect(updateNode(n, { op: 'Mul' }).op).toBe('Mul');
  });
});
