/**
 * attrsOf: the typed attributes of ParaDiT and collective ops (ops/typed-attrs.ts). Built nodes
 * read back with the values they were given and the documented defaults; a node with a bad mesh
 * axis, an unknown enumerated string, a wrong attribute kind, a missing attribute or the wrong op
 * is refused with a message naming the node and the attribute.
 */
import { GraphBuilder, Node, Value, attrsFor, attrsOf, collectiveGroupOf, dtypeToOnnx, hasTypedAttrs, isIrError, tensorType } from '../src';
import type { AttrValue, Attrs } from '../src';

const int = (value: number): AttrValue => ({ kind: 'int', value });
const float = (value: number): AttrValue => ({ kind: 'float', value });
const str = (value: string): AttrValue => ({ kind: 'string', value });
const ints = (value: number[]): AttrValue => ({ kind: 'ints', value });

/** One node of `op` built through the GraphBuilder (so its rule accepted the attributes). */
function built(op: string, shapes: number[][], attrs: Attrs, numOutputs = 1): Node {
  const b = new GraphBuilder(18);
  const xs = shapes.map((s, i) => b.input(`x${i}`, { dtype: 'f32', shape: s }));
  const out = b.add(op, xs, attrs, { name: 'n0', numOutputs });
  return b.build(out).nodes.at(-1)!;
}

/** A node made directly (no rule runs), for attributes a rule would refuse. */
function raw(op: 'all_reduce' | 'shard_slice' | 'gelu' | 'attention', attrs: Attrs): Node {
  const x = new Value(tensorType('f32', [4, 8]), 'x');
  const y = new Value(tensorType('f32', [4, 8]), 'y');
  return new Node(op, [x], [y], attrs, 'bad_node');
}

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(isIrError(e)).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected an error');
}

describe('attrsOf', () => {
  test('all_to_all: mesh axis, group and axes as given', () => {
    const n = built('all_to_all', [[1, 4, 8, 2]], { meshAxis: str('ulysses'), groupSize: int(2), splitAxis: int(1), concatAxis: int(2) });
    expect(attrsOf(n, 'all_to_all')).toEqual({ meshAxis: 'ulysses', groupSize: 2, splitAxis: 1, concatAxis: 2 });
    expect(collectiveGroupOf(n)).toEqual({ meshAxis: 'ulysses', groupSize: 2 });
  });

  test('defaults: shard_slice shift 0, to_token_order fill 0, linear transB 0, gelu none, attention_lse oDtype f32', () => {
    expect(attrsOf(built('shard_slice', [[4, 8]], { meshAxis: str('ring'), groupSize: int(2), axis: int(0) }), 'shard_slice')).toEqual({ meshAxis: 'ring', groupSize: 2, axis: 0, shift: 0 });
    expect(attrsOf(built('to_token_order', [[1, 6, 2]], { axis: int(1), segments: ints([2, 4]), chunks: int(2) }), 'to_token_order')).toEqual({ axis: 1, segments: [2, 4], chunks: 2, fill: 0 });
    expect(attrsOf(built('linear', [[3, 4], [4, 5]], {}), 'linear')).toEqual({ transB: 0 });
    expect(attrsOf(built('gelu', [[3]], {}), 'gelu')).toEqual({ approximate: 'none' });
    const lse = built('attention_lse', [[1, 2, 3, 4], [1, 2, 5, 4], [1, 2, 5, 4]], { scale: float(0.5), numHeads: int(2), kvHeads: int(2) }, 2);
    expect(attrsOf(lse, 'attention_lse')).toEqual({ scale: 0.5, numHeads: 2, kvHeads: 2, oDtype: dtypeToOnnx('f32') });
  });

  test('given values win over defaults; an int is read as a float where a float is declared', () => {
    expect(attrsOf(built('shard_slice', [[4, 8]], { meshAxis: str('sp'), groupSize: int(4), axis: int(1), shift: int(3) }), 'shard_slice').shift).toBe(3);
    expect(attrsOf(built('rms_norm', [[2, 4]], { eps: int(1) }), 'rms_norm')).toEqual({ eps: 1 });
    expect(attrsOf(built('gelu', [[3]], { approximate: str('tanh') }), 'gelu')).toEqual({ approximate: 'tanh' });
  });

  test('ops without attributes read as {}', () => {
    expect(attrsOf(built('silu', [[3]], {}), 'silu')).toEqual({});
    expect(attrsOf(built('modulate', [[2, 3], [2, 3], [2, 3]], {}), 'modulate')).toEqual({});
  });

  test('refuses a mesh axis that is not cfg, ring, ulysses or sp', () => {
    const n = raw('all_reduce', { meshAxis: str('rows'), groupSize: int(2), reduce: str('sum') });
    expect(errorOf(() => attrsOf(n, 'all_reduce'))).toBe("all_reduce 'bad_node': attribute 'meshAxis' must be a mesh axis (cfg, ring, ulysses or sp), got 'rows'");
    expect(errorOf(() => collectiveGroupOf(n))).toMatch(/attribute 'meshAxis' must be a mesh axis/);
  });

  test('refuses an enumerated string outside its set, a wrong kind, a missing attribute', () => {
    expect(errorOf(() => attrsOf(raw('all_reduce', { meshAxis: str('ring'), groupSize: int(2), reduce: str('min') }), 'all_reduce'))).toBe(
      "all_reduce 'bad_node': attribute 'reduce' must be one of sum, mean, max, got 'min'",
    );
    expect(errorOf(() => attrsOf(raw('shard_slice', { meshAxis: str('ring'), groupSize: float(2), axis: int(0) }), 'shard_slice'))).toBe(
      "shard_slice 'bad_node': attribute 'groupSize' must be an int, got float",
    );
    expect(errorOf(() => attrsOf(raw('attention', { scale: float(1), numHeads: int(2) }), 'attention'))).toBe("attention 'bad_node': missing attribute 'kvHeads' (int)");
  });

  test('refuses a node of another op', () => {
    expect(errorOf(() => attrsOf(raw('gelu', {}), 'silu'))).toBe("gelu 'bad_node': expected a silu node, got gelu");
  });

  test('attrsFor writes what attrsOf reads back; left-out defaults are not written', () => {
    const a = attrsFor('shard_slice', { meshAxis: 'ring', groupSize: 2, axis: 1 });
    expect(a).toEqual({ meshAxis: str('ring'), groupSize: int(2), axis: int(1) });
    expect(attrsOf(built('shard_slice', [[4, 8]], a), 'shard_slice')).toEqual({ meshAxis: 'ring', groupSize: 2, axis: 1, shift: 0 });
    const t = attrsFor('to_token_order', { axis: 1, segments: [2, 4], chunks: 2, fill: 0.5 });
    expect(t).toEqual({ axis: int(1), segments: ints([2, 4]), chunks: int(2), fill: float(0.5) });
    expect(attrsFor('gelu', {})).toEqual({});
  });

  test('attrsFor is checked by the type: required attributes, mesh axes, enumerated strings', () => {
    // Compile-time checks (tsc runs over the tests): each line below must be a type error.
    // @ts-expect-error axis is required
    const noAxis = (): unknown => attrsFor('shard_slice', { meshAxis: 'ring', groupSize: 2 });
    // @ts-expect-error 'rows' is not a MeshAxis
    const badAxis = (): unknown => attrsFor('ppermute', { meshAxis: 'rows', groupSize: 2, shift: 1 });
    // @ts-expect-error 'min' is not an all_reduce reduction
    const badReduce = (): unknown => attrsFor('all_reduce', { meshAxis: 'sp', groupSize: 2, reduce: 'min' });
    expect([noAxis, badAxis, badReduce].every((f) => typeof f === 'function')).toBe(true);
  });

  test('hasTypedAttrs: ParaDiT and collective ops only', () => {
    expect(['attention', 'linear', 'all_to_all', 'lse_merge'].every(hasTypedAttrs)).toBe(true);
    expect(['Attention', 'MatMul', 'Add', 'nope'].some(hasTypedAttrs)).toBe(false);
  });
});
