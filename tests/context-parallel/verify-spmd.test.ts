/**
 * The SPMD placement check of the verifier: placements are checked, not trusted. Each case breaks
 * one thing a plan must get right and expects the message that names it.
 */
import { makeMesh, parseModule, verifySharded } from '@paradit/ir';
import { compileForMesh } from '../../packages/passes/src/context-parallel';
import { CP_DIT, buildCpDit } from '../models/tiny-dit-cp';

const bad = (text: string): (() => void) => () => verifySharded(parseModule(text));

describe('verifySharded', () => {
  test('accepts every plan the passes make (fused test DiT, hybrid mesh with cfg)', () => {
    const m = compileForMesh(buildCpDit({ ...CP_DIT, batch: 2, mask: 'bool', imageTokens: 13, textTokens: 7, rope: true }), makeMesh({ ulysses: 2, ring: 2, cfg: 2 }), { prepared: true, verify: false });
    expect(() => verifySharded(m)).not.toThrow();
  });

  test('attention reading keys that are still split (a missing all_gather)', () => {
    expect(
      bad(`graph main(%x: f32[1,1,4,4]) {
        %xs = shard_slice(%x) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,2,4]@shard(2,ulysses)
        %o = attention(%xs, %xs, %xs) {kvHeads=1, numHeads=1, scale=0.5} : f32[1,1,2,4]@shard(2,ulysses)
        %g = all_gather(%o) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,4,4]
        return %g
      }`),
    ).toThrow(/attention: input 1 is placed 2@ulysses, but attention needs replicated; insert the collective that reshards it/);
  });

  test('a per-token op whose output placement is recorded wrongly', () => {
    expect(
      bad(`graph main(%x: f32[1,4,4]) {
        %xs = shard_slice(%x) {axis=1, groupSize=2, meshAxis="ring"} : f32[1,2,4]@shard(1,ring)
        %y = silu(%xs) : f32[1,2,4]@shard(2,ring)
        %g = all_gather(%y) {axis=1, groupSize=2, meshAxis="ring"} : f32[1,4,4]
        return %g
      }`),
    ).toThrow(/silu: output 0 is recorded as 2@ring, but its inputs make it 1@ring/);
  });

  test('a positional table sliced in natural order beside tokens in rank-chunk order', () => {
    // Joint [2 text, 4 image] over 2 ranks: the local chunk is text 1 token + image 2 tokens, so
    // a plain contiguous slice of the [6]-token table pairs the wrong rows (it needs to_token_order).
    expect(
      bad(`graph main(%t: f32[1,2,4], %i: f32[1,4,4], %pos: f32[1,6,4]) {
        %ts = shard_slice(%t) {axis=1, groupSize=2, meshAxis="ulysses"} : f32[1,1,4]@shard(1,ulysses)
        %is = shard_slice(%i) {axis=1, groupSize=2, meshAxis="ulysses"} : f32[1,2,4]@shard(1,ulysses)
        %c = Concat(%ts, %is) {axis=1} : f32[1,3,4]@shard(1,ulysses)@tokens(1:[2,4]/2)
        %ps = shard_slice(%pos) {axis=1, groupSize=2, meshAxis="ulysses"} : f32[1,3,4]@shard(1,ulysses)
        %y = Add(%c, %ps) : f32[1,3,4]@shard(1,ulysses)@tokens(1:[2,4]/2)
        %g = all_gather(%y) {axis=1, groupSize=2, meshAxis="ulysses"} : f32[1,6,4]@replicated@tokens(1:[2,4]/2)
        %n = from_token_order(%g) {axis=1, chunks=2, segments=[2,4]} : f32[1,6,4]
        return %n
      }`),
    ).toThrow(/Add: input 1 is placed 1@ulysses, but Add needs 1@ulysses tokens\(1:\[2,4\]\/2\)/);
  });

  test('an all_to_all whose concat axis is not the split one', () => {
    expect(
      bad(`graph main(%x: f32[1,2,4,4]) {
        %xs = shard_slice(%x) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,2,2,4]@shard(2,ulysses)
        %a = all_to_all(%xs) {concatAxis=3, groupSize=2, meshAxis="ulysses", splitAxis=1} : f32[1,1,2,8]@shard(1,ulysses)
        return %a
      }`),
    ).toThrow(/all_to_all: input 0 is placed 2@ulysses, but all_to_all needs .*3@ulysses/);
  });

  test('a model output left split', () => {
    expect(
      bad(`graph main(%x: f32[1,4,4]) {
        %xs = shard_slice(%x) {axis=1, groupSize=2, meshAxis="ring"} : f32[1,2,4]@shard(1,ring)
        return %xs
      }`),
    ).toThrow(/model output 0 .* is placed 1@ring; gather it/);
  });

  test('a token slice that is not at a segment boundary of the local chunk', () => {
    // Segments [3,4] over 2 ranks: the local chunk is text 0..1 then image 2..3; the image starts at 2, not 1.
    expect(
      bad(`graph main(%t: f32[1,3,4], %i: f32[1,4,4]) {
        %to = to_token_order(%t) {axis=1, chunks=2, fill=0.0, segments=[3]} : f32[1,4,4]@replicated@tokens(1:[3]/2)
        %ts = shard_slice(%to) {axis=1, groupSize=2, meshAxis="ulysses"} : f32[1,2,4]@shard(1,ulysses)@tokens(1:[3]/2)
        %is = shard_slice(%i) {axis=1, groupSize=2, meshAxis="ulysses"} : f32[1,2,4]@shard(1,ulysses)
        %c = Concat(%ts, %is) {axis=1} : f32[1,4,4]@shard(1,ulysses)@tokens(1:[3,4]/2)
        %b = const i64[1] [1]
        %e = const i64[1] [4]
        %a = const i64[1] [1]
        %y = Slice(%c, %b, %e, %a) : f32[1,3,4]@shard(1,ulysses)
        %g = all_gather(%y) {axis=1, groupSize=2, meshAxis="ulysses"} : f32[1,6,4]
        return %g
      }`),
    ).toThrow(/Slice: input 0 is placed 1@ulysses tokens\(1:\[3,4\]\/2\), but Slice needs replicated/);
  });
});
