/**
 * insert-ring-attention: golden before/after IR, must-not-fire, the masked-step block slicing,
 * and numerics (masks, padding, bf16) on simulated ranks.
 */
import { Tensor, interpret, makeMesh, parseModule, runSimulated } from '@paradit/ir';
import { shardSequence } from '../../src/context-parallel/shard-sequence';
import { insertRingAttention, insertRingAttentionPass } from '../../src/context-parallel/insert-ring-attention';
import { expectIr, relL2, runFor } from './helpers';
import { randomTensor, rng } from '../../../../tests/models/tiny-dit';

// The output of shard-sequence on ring = 2 for two heads over 4 tokens with a key mask.
const GATHERED = `
module opset(ai.onnx=18) {
  graph main(%x: f32[1,2,4,4], %m: bool[1,1,1,4]) {
    %xs = shard_slice(%x) {axis=2, groupSize=2, meshAxis="ring"} : f32[1,2,2,4]@shard(2,ring)
    %k = all_gather(%xs) {axis=2, groupSize=2, meshAxis="ring"} : f32[1,2,4,4]
    %o = attention(%xs, %k, %k, %m) {kvHeads=2, numHeads=2, scale=0.5} : f32[1,2,2,4]@shard(2,ring)
    %g = all_gather(%o) {axis=2, groupSize=2, meshAxis="ring"} : f32[1,2,4,4]
    return %g
  }
}`;

describe('insert-ring-attention', () => {
  test('the key gather becomes a ring of attention_lse steps, block sends and fp32 merges', () => {
    const after = runFor(insertRingAttentionPass, parseModule(GATHERED), makeMesh({ ring: 2 }));
    expectIr(
      after,
      `module opset(ai.onnx=18) {
        graph main(%x: f32[1,2,4,4], %m: bool[1,1,1,4]) {
          %xs = shard_slice(%x) {axis=2, groupSize=2, meshAxis="ring"} : f32[1,2,2,4]@shard(2,ring)
          %m0 = shard_slice(%m) {axis=3, groupSize=2, meshAxis="ring", shift=0} : bool[1,1,1,2]@shard(3,ring)
          %o0, %l0 = attention_lse(%xs, %xs, %xs, %m0) {kvHeads=2, numHeads=2, scale=0.5} : f32[1,2,2,4]@shard(2,ring), f32[1,2,2]@shard(2,ring)
          %k1 = ppermute(%xs) {groupSize=2, meshAxis="ring", shift=1} : f32[1,2,2,4]@shard(2,ring)
          %m1 = shard_slice(%m) {axis=3, groupSize=2, meshAxis="ring", shift=1} : bool[1,1,1,2]@shard(3,ring)
          %o1, %l1 = attention_lse(%xs, %k1, %k1, %m1) {kvHeads=2, numHeads=2, scale=0.5} : f32[1,2,2,4]@shard(2,ring), f32[1,2,2]@shard(2,ring)
          %o, %l = lse_merge(%o0, %l0, %o1, %l1) : f32[1,2,2,4]@shard(2,ring), f32[1,2,2]@shard(2,ring)
          %g = all_gather(%o) {axis=2, groupSize=2, meshAxis="ring"} : f32[1,2,4,4]
          return %g
        }
      }`,
    );
  });

  test('must not fire: ring 1, or an attention whose keys are not gathered over ring', () => {
    const m = parseModule(GATHERED);
    expect(insertRingAttention(m, makeMesh({ ulysses: 2 }))).toBe(m);
    const ulysses = parseModule(GATHERED.replace(/"ring"/g, '"ulysses"').replace(/,ring\)/g, ',ulysses)'));
    expect(insertRingAttention(ulysses, makeMesh({ ring: 2, ulysses: 2 }))).toBe(ulysses);
  });

  test('exact on 2 and 4 ring ranks with a text padding mask and uneven streams (fp32 merge)', () => {
    // Joint text [3] + image [5]: neither divides 4, so both streams carry padding keys.
    const m = parseModule(`graph main(%t: f32[1,3,8], %i: f32[1,5,8], %keep: bool[1,1,1,8]) {
      %c = Concat(%t, %i) {axis=1}
      %s = const i64[4] [1, 8, 2, 4]
      %r = Reshape(%c, %s)
      %q = Transpose(%r) {perm=[0,2,1,3]}
      %o = attention(%q, %q, %q, %keep) {kvHeads=2, numHeads=2, scale=0.5}
      return %o
    }`);
    const rand = rng(6);
    const ins = [randomTensor([1, 3, 8], rand), randomTensor([1, 5, 8], rand), Tensor.from('bool', [1, 1, 1, 8], [1, 0, 1, 1, 1, 1, 1, 1])];
    const ref = interpret(m, ins)[0]!;
    for (const R of [2, 4]) {
      const mesh = makeMesh({ ring: R });
      const x = runFor(insertRingAttentionPass, runFor(shardSequence, m, mesh), mesh);
      expect(x.graph.nodes.filter((n) => n.op === 'attention_lse')).toHaveLength(R);
      expect(x.graph.nodes.filter((n) => n.op === 'ppermute')).toHaveLength(R - 1);
      expect(relL2(runSimulated(x, mesh, ins)[0]!, ref)).toBeLessThan(1e-6);
    }
  });

  test('bf16: partials merge in fp32 and round once, within the bf16 tolerance', () => {
    const m = parseModule(`graph main(%x: bf16[1,2,8,4]) {
      %o = attention(%x, %x, %x) {kvHeads=2, numHeads=2, scale=0.5}
      return %o
    }`);
    const x = randomTensor([1, 2, 8, 4], rng(8));
    const ins = [Tensor.from('bf16', x.shape, x.data)];
    const ref = interpret(m, ins)[0]!;
    const mesh = makeMesh({ ring: 2 });
    const out = runFor(insertRingAttentionPass, runFor(shardSequence, m, mesh), mesh);
    expect(out.graph.nodes.some((n) => n.op === 'Cast')).toBe(true);
    expect(relL2(runSimulated(out, mesh, ins)[0]!, ref)).toBeLessThan(5e-2);
  });
});
