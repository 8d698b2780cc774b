/**
 * Every Placement variant prints and parses back: replicated, sharded (one axis and several),
 * a token order on either (on one axis, or on two: a 2-D mask), a partial result (sum, max, mean) on either, and all of them together.
 * Guards against a placement field the printer drops (partial was once lost: a partial sum read
 * back as a complete one).
 */
import { Graph, Module, Node, Value, parseModule, printModule, structurallyEqual, tensorType } from '../src';
import type { Placement } from '../src';

const VARIANTS: readonly [string, Placement][] = [
  ['@replicated', { kind: 'replicated' }],
  ['@shard(1,ulysses)', { kind: 'sharded', axis: 1, meshAxis: 'ulysses' }],
  ['@shard(0,cfg)@shard(1,sp)', { kind: 'sharded', axis: 0, meshAxis: 'cfg', also: [{ axis: 1, meshAxis: 'sp' }] }],
  ['@replicated@tokens(1:[6,10]/4)', { kind: 'replicated', tokens: { axis: 1, segments: [6, 10], chunks: 4 } }],
  ['@shard(1,ring)@tokens(1:[7]/2)', { kind: 'sharded', axis: 1, meshAxis: 'ring', tokens: { axis: 1, segments: [7], chunks: 2 } }],
  ['@shard(2,ring)@shard(3,ring)@tokens(2,3:[5,11]/2)', { kind: 'sharded', axis: 2, meshAxis: 'ring', also: [{ axis: 3, meshAxis: 'ring' }], tokens: { axis: 2, segments: [5, 11], chunks: 2, also: [3] } }],
  ['@replicated@partial(sum,ring)', { kind: 'replicated', partial: { meshAxis: 'ring', reduce: 'sum' } }],
  ['@shard(0,cfg)@partial(max,ulysses)', { kind: 'sharded', axis: 0, meshAxis: 'cfg', partial: { meshAxis: 'ulysses', reduce: 'max' } }],
  ['@replicated@tokens(1:[3,5]/2)@partial(mean,sp)', { kind: 'replicated', tokens: { axis: 1, segments: [3, 5], chunks: 2 }, partial: { meshAxis: 'sp', reduce: 'mean' } }],
  [
    '@shard(0,cfg)@shard(2,"odd axis")@tokens(1:[6,10]/4)@partial(sum,"odd axis")',
    { kind: 'sharded', axis: 0, meshAxis: 'cfg', also: [{ axis: 2, meshAxis: 'odd axis' }], tokens: { axis: 1, segments: [6, 10], chunks: 4 }, partial: { meshAxis: 'odd axis', reduce: 'sum' } },
  ],
];

/** x -> Identity -> y, both typed with placement `p`. */
function moduleWith(p: Placement): Module {
  const x = new Value(tensorType('f32', [2, 16, 16], p), 'x');
  const y = new Value(tensorType('f32', [2, 16, 16], p), 'y');
  return new Module(new Graph([x], [new Node('Identity', [x], [y], {}, 'id')], [y], 'main'), { '': 18 });
}

describe('placement text', () => {
  test.each(VARIANTS)('%s prints, parses back and compares equal', (text, p) => {
    const m = moduleWith(p);
    const printed = printModule(m);
    expect(printed).toContain(`f32[2,16,16]${text}`);
    const back = parseModule(printed);
    expect(structurallyEqual(back, m)).toBe(true);
    expect(back.graph.inputs[0]!.type.placement).toEqual(p);
    expect(back.graph.outputs[0]!.type.placement).toEqual(p);
    expect(printModule(back)).toBe(printed);
  });

  test('a token order on two axes differs from the same order on one', () => {
    const one = moduleWith({ kind: 'replicated', tokens: { axis: 1, segments: [6, 10], chunks: 4 } });
    const two = moduleWith({ kind: 'replicated', tokens: { axis: 1, segments: [6, 10], chunks: 4, also: [2] } });
    expect(structurallyEqual(one, two)).toBe(false);
  });

  test('a partial result is not structurally equal to the complete one', () => {
    const whole = moduleWith({ kind: 'sharded', axis: 0, meshAxis: 'cfg' });
    const partial = moduleWith({ kind: 'sharded', axis: 0, meshAxis: 'cfg', partial: { meshAxis: 'ring', reduce: 'sum' } });
    const otherReduce = moduleWith({ kind: 'sharded', axis: 0, meshAxis: 'cfg', partial: { meshAxis: 'ring', reduce: 'max' } });
    expect(structurallyEqual(whole, partial)).toBe(false);
    expect(structurallyEqual(partial, otherReduce)).toBe(false);
  });

  test.each([
    ['@replicated@partial(avg,ring)', /expected a reduction \(sum, max or mean\), got/],
    ['@replicated@partial(sum,ring)@tokens(1:[8]/2)', /expected nothing after @partial/],
    ['@partial(sum,ring)', /expected 'replicated' or 'shard/],
    ['@replicated@tokens(1:[8]/2)@shard(0,cfg)', /expected 'partial\(...\)'/],
    ['@shard(0,cfg)@replicated', /expected 'shard\(...\)', 'tokens\(...\)' or 'partial\(...\)'/],
  ])('rejects %s with a message naming what was expected', (placement, msg) => {
    const text = `graph main(%x: f32[2,16,8]${placement}) {\n  return %x\n}`;
    expect(() => parseModule(text)).toThrow(msg);
  });
});
