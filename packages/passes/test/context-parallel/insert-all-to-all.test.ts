/**
 * insert-all-to-all (Ulysses): golden before/after IR, must-not-fire, the head-divisibility error,
 * and numerics on simulated ranks (plain and hybrid with ring).
 */
import { IrError, Tensor, interpret, makeMesh, parseModule, runSimulated } from '@paradit/ir';
import { shardSequence } from '../../src/context-parallel/shard-sequence';
import { insertAllToAll, insertAllToAllPass } from '../../src/context-parallel/insert-all-to-all';
import { insertRingAttentionPass } from '../../src/context-parallel/insert-ring-attention';
import { expectIr, relL2, runFor } from './helpers';
import { randomTensor, rng } from '../../../../tests/models/tiny-dit';

// Two heads over 4 tokens with a key mask: the output of shard-sequence on ulysses = 2.
const GATHERED = `
module opset(ai.onnx=18) {
  graph main(%x: f32[1,4,8], %m: bool[1,1,1,4]) {
    %s = const i64[4] [1, 2, 2, 4]
    %xs = shard_slice(%x) {axis=1, groupSize=2, meshAxis="ulysses"} : f32[1,2,8]@shard(1,ulysses)
    %r = Reshape(%xs, %s) : f32[1,2,2,4]@shard(1,ulysses)
    %q = Transpose(%r) {perm=[0,2,1,3]} : f32[1,2,2,4]@shard(2,ulysses)
    %k = all_gather(%q) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,2,4,4]
    %o = attention(%q, %k, %k, %m) {kvHeads=2, numHeads=2, scale=0.5} : f32[1,2,2,4]@shard(2,ulysses)
    %g = all_gather(%o) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,2,4,4]
    return %g
  }
}`;

const SOURCE = `
module opset(ai.onnx=18) {
  graph main(%x: f32[1,4,8], %m: bool[1,1,1,4]) {
    %s = const i64[4] [1, 4, 2, 4]
    %r = Reshape(%x, %s)
    %q = Transpose(%r) {perm=[0,2,1,3]}
    %o = attention(%q, %q, %q, %m) {kvHeads=2, numHeads=2, scale=0.5}
    return %o
  }
}`;

describe('insert-all-to-all', () => {
  test('the key gather becomes head-scattering all-to-alls around attention on N/U heads', () => {
    const after = runFor(insertAllToAllPass, parseModule(GATHERED), makeMesh({ ulysses: 2 }));
    expectIr(
      after,
      `module opset(ai.onnx=18) {
        graph main(%x: f32[1,4,8], %m: bool[1,1,1,4]) {
          %s = const i64[4] [1, 2, 2, 4]
          %xs = shard_slice(%x) {axis=1, groupSize=2, meshAxis="ulysses"} : f32[1,2,8]@shard(1,ulysses)
          %r = Reshape(%xs, %s) : f32[1,2,2,4]@shard(1,ulysses)
          %q = Transpose(%r) {perm=[0,2,1,3]} : f32[1,2,2,4]@shard(2,ulysses)
          %q2 = all_to_all(%q) {concatAxis=2, groupSize=2, meshAxis="ulysses", splitAxis=1} : f32[1,1,4,4]@shard(1,ulysses)
          %o2 = attention(%q2, %q2, %q2, %m) {kvHeads=1, numHeads=1, scale=0.5} : f32[1,1,4,4]@shard(1,ulysses)
          %o = all_to_all(%o2) {concatAxis=1, groupSize=2, meshAxis="ulysses", splitAxis=2} : f32[1,2,2,4]@shard(2,ulysses)
          %g = all_gather(%o) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,2,4,4]
          return %g
        }
      }`,
    );
  });

  test('must not fire: ulysses 1, or keys that were never gathered (cross-attention over replicated text)', () => {
    const m = parseModule(GATHERED);
    expect(insertAllToAll(m, makeMesh({ ring: 2 }))).toBe(m);
    const cross = parseModule(`graph main(%x: f32[1,2,2,4]@shard(2,ulysses), %t: f32[1,2,3,4]) {
      %o = attention(%x, %t, %t) {kvHeads=2, numHeads=2, scale=0.5} : f32[1,2,2,4]@shard(2,ulysses)
      return %o
    }`);
    expect(insertAllToAll(cross, makeMesh({ ulysses: 2 }))).toBe(cross);
  });

  test('error: heads not divisible by the ulysses degree names the node and the degrees that work', () => {
    const named = parseModule(SOURCE.replace('scale=0.5}', 'scale=0.5}  # attn_14'));
    const sharded = runFor(shardSequence, named, makeMesh({ ulysses: 4 }));
    expect(() => insertAllToAll(sharded, makeMesh({ ulysses: 4 }))).toThrow(IrError);
    expect(() => insertAllToAll(sharded, makeMesh({ ulysses: 4 }))).toThrow(
      "attention 'attn_14': 2 heads are not divisible by ulysses degree 4; use --ring or a degree that divides 2 (1, 2)",
    );
  });

  test('exact on simulated ranks with a key mask: ulysses 2, and hybrid ulysses 2 x ring 2', () => {
    const m = parseModule(SOURCE.replace('[1, 4, 2, 4]', '[1, 8, 2, 4]').replace('f32[1,4,8]', 'f32[1,8,8]').replace('bool[1,1,1,4]', 'bool[1,1,1,8]'));
    const rand = rng(2);
    const ins = [randomTensor([1, 8, 8], rand), Tensor.from('bool', [1, 1, 1, 8], [1, 1, 0, 1, 1, 1, 0, 1])];
    const ref = interpret(m, ins)[0]!;
    for (const [u, r] of [[2, 1], [2, 2]] as const) {
      const mesh = makeMesh({ ulysses: u, ring: r });
      let x = runFor(shardSequence, m, mesh);
      x = runFor(insertAllToAllPass, x, mesh);
      if (r > 1) x = runFor(insertRingAttentionPass, x, mesh);
      expect(x.graph.nodes.some((n) => n.op === 'all_to_all')).toBe(true);
      expect(relL2(runSimulated(x, mesh, ins)[0]!, ref)).toBeLessThan(1e-6);
    }
  });
});
