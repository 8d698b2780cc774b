/**
 * split-cfg-batch: golden before/after IR, must-not-fire, the batch-1 error, and numerics with the
 * sequence split inside each cfg group.
 */
import { IrError, interpret, makeMesh, parseModule, runSimulated } from '@paradit/ir';
import { planSplitCfgBatch, splitCfgBatch } from '../../src/context-parallel/split-cfg-batch';
import { shardSequence } from '../../src/context-parallel/shard-sequence';
import { insertRingAttentionPass } from '../../src/context-parallel/insert-ring-attention';
import { expectIr, relL2, runFor } from './helpers';
import { randomTensor, rng } from '../../../../tests/models/tiny-dit';

// An [uncond; cond] batch of 2 with a per-sample conditioning vector and a shared weight.
const CFG = `
module opset(ai.onnx=18) {
  graph main(%x: f32[2,4,4], %c: f32[2,1,4]) {
    %w = const f32[4,4] [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    %h = linear(%x, %w)
    %y = Add(%h, %c)
    %s = const i64[4] [2, 1, 4, 4]
    %q = Reshape(%y, %s)
    %o = attention(%q, %q, %q) {kvHeads=1, numHeads=1, scale=0.5}
    return %o
  }
}`;

describe('split-cfg-batch', () => {
  test('slices every batch-carrying input per cfg rank and gathers the output', () => {
    const after = runFor(splitCfgBatch, parseModule(CFG), makeMesh({ cfg: 2 }));
    expectIr(
      after,
      `module opset(ai.onnx=18) {
        graph main(%x: f32[2,4,4], %c: f32[2,1,4]) {
          %w = const f32[4,4] [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
          %s = const i64[4] [1, 1, 4, 4]
          %xs = shard_slice(%x) {axis=0, groupSize=2, meshAxis="cfg"} : f32[1,4,4]@shard(0,cfg)
          %cs = shard_slice(%c) {axis=0, groupSize=2, meshAxis="cfg"} : f32[1,1,4]@shard(0,cfg)
          %h = linear(%xs, %w) : f32[1,4,4]@shard(0,cfg)
          %y = Add(%h, %cs) : f32[1,4,4]@shard(0,cfg)
          %q = Reshape(%y, %s) : f32[1,1,4,4]@shard(0,cfg)
          %o = attention(%q, %q, %q) {kvHeads=1, numHeads=1, scale=0.5} : f32[1,1,4,4]@shard(0,cfg)
          %g = all_gather(%o) {axis=0, groupSize=2, meshAxis="cfg"} : f32[2,1,4,4]
          return %g
        }
      }`,
    );
  });

  test('must not fire: cfg 1', () => {
    const m = parseModule(CFG);
    expect(runFor(splitCfgBatch, m, makeMesh({ ulysses: 2 }))).toBe(m);
  });

  test('error: a batch of 1 cannot be split over cfg', () => {
    const m = parseModule(CFG.replace('f32[2,4,4], %c: f32[2,1,4]', 'f32[1,4,4], %c: f32[1,1,4]').replace('[2, 1, 4, 4]', '[1, 1, 4, 4]').replace('scale=0.5}', 'scale=0.5}  # attn_0'));
    expect(() => planSplitCfgBatch(m, makeMesh({ cfg: 2 }))).toThrow(IrError);
    expect(() => planSplitCfgBatch(m, makeMesh({ cfg: 2 }))).toThrow(
      "split-cfg-batch: --cfg 2 splits an [uncond; cond] batch over 2 ranks, but attention 'attn_0' runs on batch 1 and no model input carries a batch to split; use --cfg 1",
    );
  });

  test('exact with the sequence split inside each cfg group (cfg 2 x ring 2)', () => {
    const m = parseModule(CFG);
    const rand = rng(12);
    const ins = [randomTensor([2, 4, 4], rand), randomTensor([2, 1, 4], rand)];
    const mesh = makeMesh({ cfg: 2, ring: 2 });
    let x = runFor(splitCfgBatch, m, mesh);
    x = runFor(shardSequence, x, mesh);
    x = runFor(insertRingAttentionPass, x, mesh);
    expect(relL2(runSimulated(x, mesh, ins)[0]!, interpret(m, ins)[0]!)).toBeLessThan(1e-6);
  });
});
