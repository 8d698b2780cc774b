/**
 * quantize-comm-fp8 (--comm-dtype fp8): golden before/after IR for Ulysses and ring, must-not-fire
 * (no mesh; masks; a split last axis), the bytes each rank receives (hand-computed), and numerics
 * on simulated ranks against the unsharded reference.
 *
 * Tolerance of the numeric tests, derived: one e4m3 rounding with a per-row scale has RMS relative
 * error 0.0265 per element (docs/fp8.md). An attention under --comm-dtype fp8 sees four of them,
 * independent: q, k and v before it (Ulysses; ring: k and v of the blocks that travel) and its
 * output after it. The output's rounding passes to the model output with gain <= 1 (the out
 * projection keeps a relative error, random signs); v's is averaged over keys (gain <= 1); q's
 * and k's move the logits by 0.0265 * sqrt(2) of their size, and the softmax passes that on with
 * gain < 1 at these logit sizes. So one attention adds at most sqrt(4) * 0.0265 = 0.053, two
 * blocks in quadrature 0.075: the test bound is 0.1 (the check tolerance of fp8 plans), and a
 * lower bound 1e-3 proves the rounding happened.
 */
import { Tensor, interpret, makeMesh, parseModule, runSimulated } from '@paradit/ir';
import type { Module } from '@paradit/ir';
import { collectiveSummary, compileForMesh } from '../src/context-parallel/pipeline';
import { shardSequence } from '../src/context-parallel/shard-sequence';
import { insertAllToAllPass } from '../src/context-parallel/insert-all-to-all';
import { insertRingAttentionPass } from '../src/context-parallel/insert-ring-attention';
import { findCommFp8Sites, quantizeCommFp8Pass } from '../src/fp8/quantize-comm-fp8';
import { expectIr, relL2, runFor } from './context-parallel/helpers';
import { TINY_DIT, buildTinyDit, randomTensor, rng, tinyDitInputs } from '../../../tests/models/tiny-dit';

const SELF_ATTENTION = (dtype: string, H: number): Module =>
  parseModule(`graph main(%x: ${dtype}[1,2,4,${H}]) {
    %o = attention(%x, %x, %x) {kvHeads=2, numHeads=2, scale=0.5}
    return %o
  }`);

/** shard-sequence, insert-all-to-all and insert-ring-attention for `mesh` (the pass's input). */
function contextParallel(m: Module, mesh: ReturnType<typeof makeMesh>): Module {
  return runFor(insertRingAttentionPass, runFor(insertAllToAllPass, runFor(shardSequence, m, mesh), mesh), mesh);
}

describe('quantize-comm-fp8', () => {
  test('Ulysses: q/k/v and the attention output move as e4m3 plus a scale per row', () => {
    const mesh = makeMesh({ ulysses: 2 });
    const after = runFor(quantizeCommFp8Pass, contextParallel(SELF_ATTENTION('f32', 8), mesh), mesh);
    expectIr(
      after,
      `module opset(ai.onnx=18) {
        graph main(%x: f32[1,2,4,8]) {
          %xs = shard_slice(%x) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,2,2,8]@shard(2,ulysses)
          %e, %s = quantize_fp8_rows(%xs) : f8e4m3fn[1,2,2,8]@shard(2,ulysses), f32[1,2,2,1]@shard(2,ulysses)
          %e2 = all_to_all(%e) {concatAxis=2, groupSize=2, meshAxis="ulysses", splitAxis=1} : f8e4m3fn[1,1,4,8]@shard(1,ulysses)
          %s2 = all_to_all(%s) {concatAxis=2, groupSize=2, meshAxis="ulysses", splitAxis=1} : f32[1,1,4,1]@shard(1,ulysses)
          %q = dequantize_fp8_rows(%e2, %s2) {oDtype=1} : f32[1,1,4,8]@shard(1,ulysses)
          %o = attention(%q, %q, %q) {kvHeads=1, numHeads=1, scale=0.5} : f32[1,1,4,8]@shard(1,ulysses)
          %oe, %os = quantize_fp8_rows(%o) : f8e4m3fn[1,1,4,8]@shard(1,ulysses), f32[1,1,4,1]@shard(1,ulysses)
          %oe2 = all_to_all(%oe) {concatAxis=1, groupSize=2, meshAxis="ulysses", splitAxis=2} : f8e4m3fn[1,2,2,8]@shard(2,ulysses)
          %os2 = all_to_all(%os) {concatAxis=1, groupSize=2, meshAxis="ulysses", splitAxis=2} : f32[1,2,2,1]@shard(2,ulysses)
          %y = dequantize_fp8_rows(%oe2, %os2) {oDtype=1} : f32[1,2,2,8]@shard(2,ulysses)
          %g = all_gather(%y) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,2,4,8]
          return %g
        }
      }`,
    );
  });

  test('ring: the K/V block is quantized once and forwarded in e4m3 (R = 3: one quantize, two sends of each)', () => {
    const mesh = makeMesh({ ring: 2 });
    const after = runFor(quantizeCommFp8Pass, contextParallel(SELF_ATTENTION('f32', 8), mesh), mesh);
    expectIr(
      after,
      `module opset(ai.onnx=18) {
        graph main(%x: f32[1,2,4,8]) {
          %xs = shard_slice(%x) {axis=2, groupSize=2, meshAxis="ring"} : f32[1,2,2,8]@shard(2,ring)
          %o0, %l0 = attention_lse(%xs, %xs, %xs) {kvHeads=2, numHeads=2, scale=0.5} : f32[1,2,2,8]@shard(2,ring), f32[1,2,2]@shard(2,ring)
          %e, %s = quantize_fp8_rows(%xs) : f8e4m3fn[1,2,2,8]@shard(2,ring), f32[1,2,2,1]@shard(2,ring)
          %e1 = ppermute(%e) {groupSize=2, meshAxis="ring", shift=1} : f8e4m3fn[1,2,2,8]@shard(2,ring)
          %s1 = ppermute(%s) {groupSize=2, meshAxis="ring", shift=1} : f32[1,2,2,1]@shard(2,ring)
          %k1 = dequantize_fp8_rows(%e1, %s1) {oDtype=1} : f32[1,2,2,8]@shard(2,ring)
          %o1, %l1 = attention_lse(%xs, %k1, %k1) {kvHeads=2, numHeads=2, scale=0.5} : f32[1,2,2,8]@shard(2,ring), f32[1,2,2]@shard(2,ring)
          %o, %l = lse_merge(%o0, %l0, %o1, %l1) : f32[1,2,2,8]@shard(2,ring), f32[1,2,2]@shard(2,ring)
          %g = all_gather(%o) {axis=2, groupSize=2, meshAxis="ring"} : f32[1,2,4,8]
          return %g
        }
      }`,
    );
    const m = SELF_ATTENTION('f32', 8).withGraph(parseModule(`graph main(%x: f32[1,2,6,8]) {
      %o = attention(%x, %x, %x) {kvHeads=2, numHeads=2, scale=0.5}
      return %o
    }`).graph);
    const r3 = makeMesh({ ring: 3 });
    const ops = runFor(quantizeCommFp8Pass, contextParallel(m, r3), r3).graph.nodes.map((n) => n.op);
    expect(ops.filter((o) => o === 'quantize_fp8_rows')).toHaveLength(1);
    expect(ops.filter((o) => o === 'ppermute')).toHaveLength(4); // 2 steps x (values, scales)
    expect(ops.filter((o) => o === 'dequantize_fp8_rows')).toHaveLength(2);
  });

  test('must not fire: no mesh, or no attention payload (a mask, a gather, a split last axis)', () => {
    const m = contextParallel(SELF_ATTENTION('f32', 8), makeMesh({ ulysses: 2 }));
    expect(runFor(quantizeCommFp8Pass, m, makeMesh({}))).toBe(m);
    const unsharded = SELF_ATTENTION('f32', 8);
    expect(runFor(quantizeCommFp8Pass, unsharded, makeMesh({ ulysses: 2 }))).toBe(unsharded);
    // An all_to_all over the last axis, and one that is no attention payload, are left alone.
    const other = parseModule(`graph main(%x: f32[1,4,8]) {
      %xs = shard_slice(%x) {axis=1, groupSize=2, meshAxis="ulysses"} : f32[1,2,8]@shard(1,ulysses)
      %a = all_to_all(%xs) {concatAxis=1, groupSize=2, meshAxis="ulysses", splitAxis=2} : f32[1,4,4]@shard(2,ulysses)
      %g = all_gather(%a) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,4,8]
      return %g
    }`);
    expect(findCommFp8Sites(other)).toEqual([]);
    const dit = compileForMesh(buildTinyDit({ ...TINY_DIT, heads: 4, mask: true }), makeMesh({ ulysses: 2 }));
    expect(findCommFp8Sites(dit).map((s) => s.payload)).toEqual(Array.from({ length: TINY_DIT.blocks }, () => ['qkv', 'qkv', 'qkv', 'attention-output']).flat());
  });

  test('a per-head additive mask with -inf travels by all_to_all unquantized (a quantized -inf row is NaN)', () => {
    const m = parseModule(`graph main(%x: f32[1,2,4,8], %b: f32[1,2,4,4]) {
      %o = attention(%x, %x, %x, %b) {kvHeads=2, numHeads=2, scale=0.5}
      return %o
    }`);
    const bias = Tensor.from('f32', [1, 2, 4, 4], Array.from({ length: 32 }, (_, i) => (i % 5 === 1 ? -Infinity : (i % 3) * 0.25)));
    const ins = [randomTensor([1, 2, 4, 8], rng(4)), bias];
    const mesh = makeMesh({ ulysses: 2 });
    const c = compileForMesh(m, mesh, { commDtype: 'fp8' });
    // Quantized: x once (q = k = v) and the output; the mask's collectives keep f32.
    expect(c.graph.nodes.filter((n) => n.op === 'quantize_fp8_rows')).toHaveLength(2);
    expect(c.graph.nodes.filter((n) => n.op !== 'quantize_fp8_rows' && n.op !== 'dequantize_fp8_rows' && n.name.includes('mask')).length).toBeGreaterThan(0);
    expect(c.graph.nodes.filter((n) => n.name.includes('mask')).every((n) => n.outputs.every((o) => o.dtype === 'f32'))).toBe(true);
    const out = runSimulated(c, mesh, ins)[0]!;
    expect(out.data.every((v) => Number.isFinite(v))).toBe(true);
    expect(relL2(out, interpret(m, ins)[0]!)).toBeLessThan(0.06);
  });

  test('bytes per rank, hand-computed: U = 2, bf16 [1,2,4,64] self-attention', () => {
    // Per rank the payload is [1,2,2,64] = 256 elements; an all_to_all over 2 ranks receives half.
    // bf16: 2 all_to_alls (q, out) x 256/2 x 2 B = 512 B. fp8: 2 x (256/2 x 1 B + 4/2 x 4 B scales) = 272 B.
    const mesh = makeMesh({ ulysses: 2 });
    const before = contextParallel(SELF_ATTENTION('bf16', 64), mesh);
    const after = runFor(quantizeCommFp8Pass, before, mesh);
    expect(collectiveSummary(before).find((c) => c.op === 'all_to_all')).toEqual({ op: 'all_to_all', count: 2, bytesPerRank: 512 });
    expect(collectiveSummary(after).find((c) => c.op === 'all_to_all')).toEqual({ op: 'all_to_all', count: 4, bytesPerRank: 272 });
    expect(272 / 512).toBeCloseTo((1 + 4 / 64) / 2, 12);
  });

  describe('numerics on simulated ranks (tiny DiT, 4 heads, text mask; bound 0.1 derived in the header)', () => {
    const cfg = { ...TINY_DIT, heads: 4, headDim: 16, mask: true };
    const m = buildTinyDit(cfg);
    const ins = tinyDitInputs(cfg);
    const ref = interpret(m, ins)[0]!;
    test.each([[2, 1], [1, 2], [2, 2], [1, 4]])('U%i R%i', (u, r) => {
      const mesh = makeMesh({ ulysses: u, ring: r });
      const exact = relL2(runSimulated(compileForMesh(m, mesh), mesh, ins)[0]!, ref);
      const fp8 = relL2(runSimulated(compileForMesh(m, mesh, { commDtype: 'fp8' }), mesh, ins)[0]!, ref);
      expect(exact).toBeLessThan(1e-5);
      // Measured (docs/fp8.md): 8.1e-4 (U2), 3.7e-4 (R2), 8.1e-4 (U2R2); the gated residuals damp it.
      process.stdout.write(`quantize-comm-fp8 tiny DiT U${u} R${r}: rel. L2 ${fp8.toExponential(2)}\n`);
      expect(fp8).toBeGreaterThan(1e-4);
      expect(fp8).toBeLessThan(0.1);
    });
  });

  test('bf16 model: the e4m3 transfers stay within the bound of the unsharded bf16 reference', () => {
    const x = randomTensor([1, 2, 8, 64], rng(3));
    const ins = [Tensor.from('bf16', x.shape, x.data)];
    const m = parseModule(`graph main(%x: bf16[1,2,8,64]) {
      %o = attention(%x, %x, %x) {kvHeads=2, numHeads=2, scale=0.125}
      return %o
    }`);
    const ref = interpret(m, ins)[0]!;
    for (const mesh of [makeMesh({ ulysses: 2 }), makeMesh({ ring: 2 })]) {
      const e = relL2(runSimulated(compileForMesh(m, mesh, { commDtype: 'fp8' }), mesh, ins)[0]!, ref);
      expect(e).toBeGreaterThan(1e-3);
      // One attention: at most sqrt(4) * 0.0265 plus bf16's own rounding (2^-9 relative).
      expect(e).toBeLessThan(0.06);
    }
  });
});
