/**
 * ppermute's non-cyclic form (cyclic=0, the rows-parallel halo exchange) on simulated ranks, with
 * hand-computed results: rank i's input is the constant i+1, so what each rank receives says who
 * sent it. Guards against the edge ranks receiving wrapped-around rows (the cyclic form's
 * behaviour) instead of zeros.
 */
import { GraphBuilder, Module, Tensor, makeMesh, parseModule, simulateRanks, tensorType } from '@paradit/ir';

function permute(world: number, shift: number, cyclic: number): Module {
  const b = new GraphBuilder(18);
  const x = b.input('x', tensorType('f32', [world, 2]));
  const band = b.add('shard_slice', [x], { meshAxis: { kind: 'string', value: 'ring' }, groupSize: { kind: 'int', value: world }, axis: { kind: 'int', value: 0 } })[0]!;
  const attrs = { meshAxis: { kind: 'string' as const, value: 'ring' }, groupSize: { kind: 'int' as const, value: world }, shift: { kind: 'int' as const, value: shift }, cyclic: { kind: 'int' as const, value: cyclic } };
  const y = b.add('ppermute', [band], attrs, { name: 'halo' })[0]!;
  return new Module(b.build([y]), { '': 18 });
}

/** Rank r's received [1, 2] row, first element. */
function received(world: number, shift: number, cyclic: number): number[] {
  const x = Tensor.from('f32', [world, 2], Array.from({ length: 2 * world }, (_, i) => Math.floor(i / 2) + 1));
  return simulateRanks(permute(world, shift, cyclic), makeMesh({ ring: world }), [x]).map((outs) => outs[0]!.data[0]!);
}

test('cyclic=0, shift +1 over 4 ranks: rank 0 receives zeros, rank r the row of rank r-1; nothing wraps', () => {
  expect(received(4, 1, 0)).toEqual([0, 1, 2, 3]);
  // The cyclic form for comparison: rank 0 gets rank 3's row.
  expect(received(4, 1, 1)).toEqual([4, 1, 2, 3]);
});

test('cyclic=0, shift -1 over 4 ranks: rank 3 receives zeros, rank r the row of rank r+1', () => {
  expect(received(4, -1, 0)).toEqual([2, 3, 4, 0]);
  expect(received(2, -1, 0)).toEqual([2, 0]);
});

test('the text form parses, and bad attributes are refused naming the node', () => {
  expect(() => permute(4, 1, 2)).toThrow(/ppermute 'halo': attribute 'cyclic' must be 0 or 1, got 2/);
  expect(() => permute(4, 4, 0)).toThrow(/ppermute 'halo': a non-cyclic ppermute needs \|shift\| < groupSize \(4\), got shift 4/);
  const m = parseModule(`graph main(%x: f32[2,2]) {
    %y = ppermute(%x) {cyclic=0, groupSize=2, meshAxis="ring", shift=-1}
    return %y
  }`);
  expect(m.graph.nodes[0]!.attrs['cyclic']).toEqual({ kind: 'int', value: 0 });
});
