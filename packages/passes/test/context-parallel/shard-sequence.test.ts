/**
 * shard-sequence: golden before/after IR, the printed plan, must-not-fire cases, errors, and a
 * numeric check on simulated ranks.
 */
import { IrError, Tensor, interpret, makeMesh, parseModule, runSimulated } from '@paradit/ir';
import { planShardSequence, shardSequence } from '../../src/context-parallel/shard-sequence';
import { formatShardPlan } from '../../src/context-parallel/shard/plan';
import { expectIr, relL2, runFor } from './helpers';
import { randomTensor, rng } from '../../../../tests/models/tiny-dit';

// One head over 4 tokens: the token axis comes from the input, through a Reshape, into attention.
const SELF = `
module opset(ai.onnx=18) {
  graph main(%x: f32[1,4,4]) {
    %s = const i64[4] [1, 1, 4, 4]
    %q = Reshape(%x, %s)
    %o = attention(%q, %q, %q) {kvHeads=1, numHeads=1, scale=0.5}
    %y = silu(%o)
    return %y
  }
}`;

// Joint attention over 3 text + 4 image tokens, then the image tokens are sliced out.
const JOINT = `
module opset(ai.onnx=18) {
  graph main(%t: f32[1,3,4], %i: f32[1,4,4]) {
    %c = Concat(%t, %i) {axis=1}
    %s = const i64[4] [1, 1, 7, 4]
    %q = Reshape(%c, %s)
    %o = attention(%q, %q, %q) {kvHeads=1, numHeads=1, scale=0.5}
    %b = const i64[1] [3]
    %e = const i64[1] [7]
    %a = const i64[1] [2]
    %y = Slice(%o, %b, %e, %a)
    return %y
  }
}`;

describe('shard-sequence', () => {
  test('splits the tokens at the input, keeps queries local, gathers keys and the output', () => {
    const after = runFor(shardSequence, parseModule(SELF), makeMesh({ ulysses: 2 }));
    expectIr(
      after,
      `module opset(ai.onnx=18) {
        graph main(%x: f32[1,4,4]) {
          %s = const i64[4] [1, 1, 2, 4]
          %xs = shard_slice(%x) {axis=1, groupSize=2, meshAxis="ulysses"} : f32[1,2,4]@shard(1,ulysses)
          %q = Reshape(%xs, %s) : f32[1,1,2,4]@shard(2,ulysses)
          %k = all_gather(%q) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,4,4]
          %o = attention(%q, %k, %k) {kvHeads=1, numHeads=1, scale=0.5} : f32[1,1,2,4]@shard(2,ulysses)
          %y = silu(%o) : f32[1,1,2,4]@shard(2,ulysses)
          %g = all_gather(%y) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,4,4]
          return %g
        }
      }`,
    );
  });

  test('joint streams with an uneven text segment: rank-chunk order, padding masked, local slice', () => {
    // Text [3] pads to 4 over 2 ranks: chunk p = text 2p..2p+1 then image 2p..2p+1; text 3 is padding.
    const after = runFor(shardSequence, parseModule(JOINT), makeMesh({ ulysses: 2 }));
    expectIr(
      after,
      `module opset(ai.onnx=18) {
        graph main(%t: f32[1,3,4], %i: f32[1,4,4]) {
          %shape = const i64[4] [1, 1, 4, 4]
          %ones = const bool[1,1,1,7] [true, true, true, true, true, true, true]
          %b = const i64[1] [2]
          %e = const i64[1] [4]
          %a = const i64[1] [2]
          %to = to_token_order(%t) {axis=1, chunks=2, fill=0.0, segments=[3]} : f32[1,4,4]@replicated@tokens(1:[3]/2)
          %ts = shard_slice(%to) {axis=1, groupSize=2, meshAxis="ulysses"} : f32[1,2,4]@shard(1,ulysses)@tokens(1:[3]/2)
          %is = shard_slice(%i) {axis=1, groupSize=2, meshAxis="ulysses"} : f32[1,2,4]@shard(1,ulysses)
          %c = Concat(%ts, %is) {axis=1} : f32[1,4,4]@shard(1,ulysses)@tokens(1:[3,4]/2)
          %q = Reshape(%c, %shape) : f32[1,1,4,4]@shard(2,ulysses)@tokens(2:[3,4]/2)
          %k = all_gather(%q) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,8,4]@replicated@tokens(2:[3,4]/2)
          %valid = to_token_order(%ones) {axis=3, chunks=2, fill=0.0, segments=[3,4]} : bool[1,1,1,8]@replicated@tokens(3:[3,4]/2)
          %o = attention(%q, %k, %k, %valid) {kvHeads=1, numHeads=1, scale=0.5} : f32[1,1,4,4]@shard(2,ulysses)@tokens(2:[3,4]/2)
          %y = Slice(%o, %b, %e, %a) : f32[1,1,2,4]@shard(2,ulysses)
          %g = all_gather(%y) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,4,4]
          return %g
        }
      }`,
    );
  });

  test('the plan names the roots and every resharding', () => {
    const named = JOINT.replace('%t: f32[1,3,4], %i: f32[1,4,4]) {', '%t: f32[1,3,4], %i: f32[1,4,4]) {  # t, i');
    const plan = planShardSequence(parseModule(named), makeMesh({ ring: 2 }))!;
    expect(formatShardPlan(plan)).toBe(
      [
        'shard-sequence on mesh cfg=1 ring=2 ulysses=1 (world 2)',
        "  root 't' axis 1 (3, from input): split over 'ring', 2 chunks",
        "  root 'i' axis 1 (4, from input): split over 'ring', 2 chunks",
        '  4 of 4 nodes see placed values',
        '  attention: in1 2@ring tokens(2:[3,4]/2) -> tokens(2:[3,4]/2); in2 2@ring tokens(2:[3,4]/2) -> tokens(2:[3,4]/2)',
        '  gather 1 model output',
      ].join('\n'),
    );
  });

  test('exact on simulated ranks (uneven text, 2 and 4 ranks, ulysses and ring axes)', () => {
    const m = parseModule(JOINT);
    const rand = rng(9);
    const ins = [randomTensor([1, 3, 4], rand), randomTensor([1, 4, 4], rand)];
    const ref = interpret(m, ins)[0]!;
    for (const mesh of [makeMesh({ ulysses: 2 }), makeMesh({ ring: 4 }), makeMesh({ ring: 2, ulysses: 2 })]) {
      const got = runSimulated(runFor(shardSequence, m, mesh), mesh, ins)[0]!;
      expect(relL2(got, ref)).toBeLessThan(1e-6);
    }
  });

  test('must not fire: a mesh that does not split the sequence, or a graph without attention', () => {
    const m = parseModule(SELF);
    expect(runFor(shardSequence, m, makeMesh({ cfg: 2 }))).toBe(m);
    const plain = parseModule(`graph main(%x: f32[1,4,4]) {
      %y = silu(%x)
      return %y
    }`);
    expect(runFor(shardSequence, plain, makeMesh({ ulysses: 2 }))).toBe(plain);
  });

  test('error: symbolic shapes cannot be split', () => {
    const m = parseModule(`graph main(%x: f32[1,S,4]) {
      %s = const i64[4] [1, 1, -1, 4]
      %q = Reshape(%x, %s)
      %o = attention(%q, %q, %q) {kvHeads=1, numHeads=1, scale=0.5}
      return %o
    }`);
    expect(() => planShardSequence(m, makeMesh({ ulysses: 2 }))).toThrow(IrError);
    expect(() => planShardSequence(m, makeMesh({ ulysses: 2 }))).toThrow(/symbolic shape .* context parallelism needs static shapes/);
  });

  test('regression: a positional table is sliced where it meets the tokens, in their order (not gathered)', () => {
    // Guards against splitting a [7]-long position input as one segment and then gathering it to
    // reorder it into the joint [3,4] order.
    const m = parseModule(`graph main(%t: f32[1,3,4], %i: f32[1,4,4], %pos: f32[7,1]) {
      %c = Concat(%t, %i) {axis=1}
      %x = Add(%c, %pos)
      %s = const i64[4] [1, 1, 7, 4]
      %q = Reshape(%x, %s)
      %o = attention(%q, %q, %q) {kvHeads=1, numHeads=1, scale=0.5}
      return %o
    }`);
    const after = runFor(shardSequence, m, makeMesh({ ulysses: 2 }));
    const ops = after.graph.nodes.map((n) => n.op);
    expect(ops.filter((o) => o === 'all_gather')).toHaveLength(2); // keys + the output, nothing for %pos
    const rand = rng(4);
    const ins = [randomTensor([1, 3, 4], rand), randomTensor([1, 4, 4], rand), Tensor.from('f32', [7, 1], [0, 1, 2, 3, 4, 5, 6])];
    expect(relL2(runSimulated(after, makeMesh({ ulysses: 2 }), ins)[0]!, interpret(m, ins)[0]!)).toBeLessThan(1e-6);
  });
});

describe('shard-sequence with control flow', () => {
  test('an If branch reading a split value sees it whole (the value is gathered for the branch)', () => {
    const m = parseModule(`graph main(%x: f32[1,4,4], %c: bool[]) {
      %s = const i64[4] [1, 1, 4, 4]
      %q = Reshape(%x, %s)
      %o = attention(%q, %q, %q) {kvHeads=1, numHeads=1, scale=0.5}
      %y = If(%c) {else_branch=graph e() {
        %n = Neg(%o)
        return %n
      }, then_branch=graph t() {
        %p = silu(%o)
        return %p
      }}
      return %y
    }`);
    const mesh = makeMesh({ ring: 2 });
    const out = runFor(shardSequence, m, mesh);
    const x = randomTensor([1, 4, 4], rng(1));
    for (const c of [0, 1]) {
      const ins = [x, Tensor.from('bool', [], [c])];
      expect(relL2(runSimulated(out, mesh, ins)[0]!, interpret(m, ins)[0]!)).toBeLessThan(1e-6);
    }
  });
});
