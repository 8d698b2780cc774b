/**
 * The communication volume `collectiveSummary` reports (inspect --json `collectives`) matches a
 * hand count for one attention layer.
 *
 * Layer: q, k, v each f32[B, N=4, S=8, H=8] (from one [B,8,32] token stream), output gathered;
 * B = 1, or B = 2 (an [uncond; cond] batch) for CFG parallelism.
 * Per-rank bytes received over a group of n: all_gather (n-1)*b, all_to_all (n-1)/n*b,
 * ppermute b, where b is the local operand's size in bytes.
 */
import { makeMesh, parseModule } from '@paradit/ir';
import { collectiveSummary, compileForMesh } from '../../packages/passes/src/context-parallel';

/** q from x, k and v from scaled copies of x: one token stream, three distinct tensors. */
function layer(batch = 1) {
  return parseModule(`graph main(%x: f32[${batch},8,32]) {
    %s = const i64[4] [${batch}, 8, 4, 8]
    %two = const f32[] [2]
    %three = const f32[] [3]
    %xk = Mul(%x, %two)
    %xv = Mul(%x, %three)
    %rq = Reshape(%x, %s)
    %rk = Reshape(%xk, %s)
    %rv = Reshape(%xv, %s)
    %q = Transpose(%rq) {perm=[0,2,1,3]}
    %k = Transpose(%rk) {perm=[0,2,1,3]}
    %v = Transpose(%rv) {perm=[0,2,1,3]}
    %o = attention(%q, %k, %v) {kvHeads=4, numHeads=4, scale=0.35}
    return %o
  }`);
}

const F32 = 4;

describe('collective volume of one attention layer', () => {
  test('ulysses 2: four all-to-alls of a [1,4,4,8] block, one output all_gather', () => {
    const b = 1 * 4 * 4 * 8 * F32; // local q/k/v/out: 4 heads x 4 tokens x 8 = 512 bytes
    const expected = [
      { op: 'all_gather', count: 1, bytesPerRank: (2 - 1) * b }, // the output, gathered once
      { op: 'all_to_all', count: 4, bytesPerRank: 4 * ((2 - 1) / 2) * b }, // q, k, v in, out back
    ];
    expect(collectiveSummary(compileForMesh(layer(), makeMesh({ ulysses: 2 }), { prepared: true }))).toEqual(expected);
  });

  test('ring 4: k and v pass 3 times around the ring; the output is gathered', () => {
    const b = 1 * 4 * 2 * 8 * F32; // local block: 2 tokens = 256 bytes
    const expected = [
      { op: 'all_gather', count: 1, bytesPerRank: (4 - 1) * b },
      { op: 'ppermute', count: 2 * 3, bytesPerRank: 2 * 3 * b },
    ];
    expect(collectiveSummary(compileForMesh(layer(), makeMesh({ ring: 4 }), { prepared: true }))).toEqual(expected);
  });

  test('hybrid ulysses 2 x ring 2: all-to-alls inside ring groups, one ring pass of k and v', () => {
    const b = 1 * 4 * 2 * 8 * F32; // per rank before the all-to-all: 2 tokens of 4 heads = 256 bytes
    const blk = 1 * 2 * 4 * 8 * F32; // after it: 2 heads x 4 tokens (a ring block) = 256 bytes
    const expected = [
      { op: 'all_gather', count: 1, bytesPerRank: (4 - 1) * b }, // output over all 4 sequence ranks
      { op: 'all_to_all', count: 4, bytesPerRank: 4 * ((2 - 1) / 2) * b },
      { op: 'ppermute', count: 2, bytesPerRank: 2 * blk },
    ];
    expect(collectiveSummary(compileForMesh(layer(), makeMesh({ ulysses: 2, ring: 2 }), { prepared: true }))).toEqual(expected);
  });

  test('cfg 2 (batch 2): the batch is sliced locally; only the output is gathered, once', () => {
    const b = 1 * 4 * 8 * 8 * F32; // each cfg rank computes one sample: [1,4,8,8] = 1024 bytes
    const expected = [{ op: 'all_gather', count: 1, bytesPerRank: (2 - 1) * b }];
    expect(collectiveSummary(compileForMesh(layer(2), makeMesh({ cfg: 2 }), { prepared: true }))).toEqual(expected);
  });

  test('cfg 2 x ulysses 2 (batch 2): all-to-alls within each cfg group; the output gathers batch then tokens', () => {
    const b = 1 * 4 * 4 * 8 * F32; // per rank: 1 sample, 4 heads, 4 tokens = 512 bytes
    const expected = [
      // axis 0 over cfg from [1,4,4,8] (512 B), then axis 2 over ulysses from [2,4,4,8] (1024 B)
      { op: 'all_gather', count: 2, bytesPerRank: (2 - 1) * b + (2 - 1) * 2 * b },
      { op: 'all_to_all', count: 4, bytesPerRank: 4 * ((2 - 1) / 2) * b },
    ];
    expect(collectiveSummary(compileForMesh(layer(2), makeMesh({ cfg: 2, ulysses: 2 }), { prepared: true }))).toEqual(expected);
  });
});
