/**
 * Ulysses with grouped-query attention: key/value heads that the Ulysses degree does not divide
 * (fewer kv heads than U, or a count U does not divide) are repeated so every rank holds the kv
 * heads its query heads read; query heads that U does not divide are refused with a message
 * naming the attention node and the degrees that work. Guards against the old refusal of
 * kvHeads < U, and against a repetition that pairs a query head with the wrong kv head.
 */
import { IrError, interpret, makeMesh, parseModule, runSimulated } from '@paradit/ir';
import { shardSequence } from '../../src/context-parallel/shard-sequence';
import { insertAllToAll, insertAllToAllPass, kvRepeat } from '../../src/context-parallel/insert-all-to-all';
import { insertRingAttentionPass } from '../../src/context-parallel/insert-ring-attention';
import { expectIr, relL2, runFor } from './helpers';
import { randomTensor, rng } from '../../../../tests/models/tiny-dit';

// 2 query heads over 1 kv head on 4 tokens, after shard-sequence on ulysses = 2.
const GATHERED = `
module opset(ai.onnx=18) {
  graph main(%q: f32[1,2,4,4], %k: f32[1,1,4,4]) {
    %qs = shard_slice(%q) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,2,2,4]@shard(2,ulysses)
    %ks = shard_slice(%k) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,2,4]@shard(2,ulysses)
    %kg = all_gather(%ks) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,4,4]
    %o = attention(%qs, %kg, %kg) {kvHeads=1, numHeads=2, scale=0.5} : f32[1,2,2,4]@shard(2,ulysses)
    %g = all_gather(%o) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,2,4,4]
    return %g
  }
}`;

/** One token stream x [1,S,N*8]: q has N heads of x, k and v Nkv heads of two slices of x. */
function gqa(N: number, Nkv: number, S: number): string {
  const D = N * 8;
  const W = Nkv * 8;
  return `graph main(%x: f32[1,${S},${D}]) {
    %a = const i64[1] [2]
    %k0 = const i64[1] [0]
    %k1 = const i64[1] [${W}]
    %v0 = const i64[1] [${D - W}]
    %v1 = const i64[1] [${D}]
    %sq = const i64[4] [1, ${S}, ${N}, 8]
    %skv = const i64[4] [1, ${S}, ${Nkv}, 8]
    %xk = Slice(%x, %k0, %k1, %a)
    %xv = Slice(%x, %v0, %v1, %a)
    %rq = Reshape(%x, %sq)
    %rk = Reshape(%xk, %skv)
    %rv = Reshape(%xv, %skv)
    %q = Transpose(%rq) {perm=[0,2,1,3]}
    %k = Transpose(%rk) {perm=[0,2,1,3]}
    %v = Transpose(%rv) {perm=[0,2,1,3]}
    %o = attention(%q, %k, %v) {kvHeads=${Nkv}, numHeads=${N}, scale=0.35} # attn_gqa
    return %o
  }`;
}

describe('insert-all-to-all with grouped-query heads', () => {
  test('kvRepeat: the fewest repeats that make the kv heads split over U', () => {
    expect(kvRepeat(8, 8, 4)).toBe(1);
    expect(kvRepeat(8, 4, 4)).toBe(1);
    expect(kvRepeat(8, 2, 4)).toBe(2); // 2 kv heads -> 4
    expect(kvRepeat(8, 1, 8)).toBe(8);
    expect(kvRepeat(6, 2, 3)).toBe(3); // lcm(2, 3) = 6
    expect(kvRepeat(12, 4, 6)).toBe(3); // lcm(4, 6) = 12
  });

  test('one kv head under ulysses 2: the kv head is repeated before its all-to-all', () => {
    const after = runFor(insertAllToAllPass, parseModule(GATHERED), makeMesh({ ulysses: 2 }));
    expectIr(
      after,
      `module opset(ai.onnx=18) {
        graph main(%q: f32[1,2,4,4], %k: f32[1,1,4,4]) {
          %qs = shard_slice(%q) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,2,2,4]@shard(2,ulysses)
          %ks = shard_slice(%k) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,2,4]@shard(2,ulysses)
          %q2 = all_to_all(%qs) {concatAxis=2, groupSize=2, meshAxis="ulysses", splitAxis=1} : f32[1,1,4,4]@shard(1,ulysses)
          %i = const i64[2] [0, 0]
          %kr = Gather(%ks, %i) {axis=1} : f32[1,2,2,4]@shard(2,ulysses)
          %k2 = all_to_all(%kr) {concatAxis=2, groupSize=2, meshAxis="ulysses", splitAxis=1} : f32[1,1,4,4]@shard(1,ulysses)
          %o2 = attention(%q2, %k2, %k2) {kvHeads=1, numHeads=1, scale=0.5} : f32[1,1,4,4]@shard(1,ulysses)
          %o = all_to_all(%o2) {concatAxis=1, groupSize=2, meshAxis="ulysses", splitAxis=2} : f32[1,2,2,4]@shard(2,ulysses)
          %g = all_gather(%o) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,2,4,4]
          return %g
        }
      }`,
    );
  });

  // (N, Nkv, S, U, R): kv heads fewer than U, not divisible by U, and hybrid with ring; uneven S.
  const CASES: readonly [number, number, number, number, number][] = [
    [4, 1, 8, 2, 1],
    [4, 1, 8, 4, 1],
    [8, 2, 12, 4, 1],
    [6, 2, 9, 3, 1],
    [4, 2, 7, 4, 1],
    [4, 1, 8, 2, 2],
    [8, 2, 10, 4, 2],
  ];
  test.each(CASES)('exact on simulated ranks: %i q heads / %i kv heads, %i tokens, U%i R%i', (N, Nkv, S, U, R) => {
    const m = parseModule(gqa(N, Nkv, S));
    const rand = rng(N * 100 + Nkv * 10 + U);
    const ins = [randomTensor([1, S, N * 8], rand)];
    const ref = interpret(m, ins)[0]!;
    const mesh = makeMesh({ ulysses: U, ring: R });
    let x = runFor(shardSequence, m, mesh);
    x = runFor(insertAllToAllPass, x, mesh);
    if (R > 1) x = runFor(insertRingAttentionPass, x, mesh);
    const repeats = x.graph.nodes.filter((n) => n.op === 'Gather' && n.name.endsWith('_repeat_heads'));
    expect(repeats).toHaveLength(Nkv % U === 0 ? 0 : 2); // k and v, once each
    // Every rank's attention sees N/U query heads and the matching share of kv heads.
    const att = x.graph.nodes.find((n) => n.op === 'attention' || n.op === 'attention_lse')!;
    expect(att.attrs.numHeads).toEqual({ kind: 'int', value: N / U });
    expect(relL2(runSimulated(x, mesh, ins)[0]!, ref)).toBeLessThan(1e-6);
  });

  test('error: query heads not divisible by U name the node and the degrees that work', () => {
    const m = parseModule(gqa(6, 2, 8));
    const mesh = makeMesh({ ulysses: 4 });
    const sharded = runFor(shardSequence, m, mesh);
    let err: unknown;
    try {
      insertAllToAll(sharded, mesh);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IrError);
    expect((err as IrError).message).toBe("attention 'attn_gqa': 6 heads are not divisible by ulysses degree 4; use --ring or a degree that divides 6 (1, 2, 3, 6)");
    expect((err as IrError).nodeName).toBe('attn_gqa');
  });
});
