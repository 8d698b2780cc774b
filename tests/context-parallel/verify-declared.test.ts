/**
 * verify(m): the one verifier entry picks its rules from what the module declares (placements,
 * the cache gate's mark), not from who calls it. Each case guards one way a caller-picked
 * verifier went wrong: a sharded module checked by the plain rules, a gated step's per-rank state
 * rejected, a placed output that escapes the gather check.
 */
import { IrError, makeMesh, parseModule, printModule, verify, verifyModule, verifyPlan } from '@paradit/ir';
import { compileDenoiseStep } from '@paradit/passes';
import { TINY_DIT, buildTinyDit } from '../models/tiny-dit';

const SPLIT_ATTENTION = `graph main(%x: f32[1,1,4,4]) {
  %xs = shard_slice(%x) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,2,4]@shard(2,ulysses)
  %o = attention(%xs, %xs, %xs) {kvHeads=1, numHeads=1, scale=0.5} : f32[1,1,2,4]@shard(2,ulysses)
  %g = all_gather(%o) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,4,4]
  return %g
}`;

describe('verify: rules chosen by declarations', () => {
  test('an unplaced module gets the IR rules only', () => {
    const m = parseModule(`graph main(%x: f32[2,4]) {
      %y = Relu(%x) : f32[2,4]
      return %y
    }`);
    expect(verifyPlan(m)).toEqual({ spmd: false, perRankOutputs: new Set() });
    expect(() => verify(m)).not.toThrow();
  });

  test('placements with collectives select the SPMD rule (a missing all_gather is caught)', () => {
    const m = parseModule(SPLIT_ATTENTION);
    expect(verifyPlan(m).spmd).toBe(true);
    expect(() => verify(m)).toThrow(IrError);
    expect(() => verify(m)).toThrow(/attention: input 1 is placed 2@ulysses, but attention needs replicated/);
  });

  test('a model output left split is rejected', () => {
    const m = parseModule(`graph main(%x: f32[1,4,4]) {
      %xs = shard_slice(%x) {axis=1, groupSize=2, meshAxis="ring"} : f32[1,2,4]@shard(1,ring)
      return %xs
    }`);
    expect(() => verify(m)).toThrow(/model output 0 \(''\) is placed 1@ring; gather it/);
    // The building block without the output rule accepts it: the entry adds what the module needs.
    expect(() => verifyModule(m)).not.toThrow();
  });

  test('a gated sharded step: state outputs stay per rank, every other output must be whole', () => {
    const mesh = makeMesh({ ulysses: 2 });
    const step = compileDenoiseStep(buildTinyDit(TINY_DIT), { fbcache: true, mesh });
    const plan = verifyPlan(step);
    expect(plan.spmd).toBe(true);
    const perRank = [...plan.perRankOutputs].map((v) => v.name).sort();
    expect(perRank).toEqual(['fbcache.state.cached_run.next', 'fbcache.state.r_ref.next', 'fbcache.state.residual.0.next', 'fbcache.state.valid.next']);
    expect(() => verify(step)).not.toThrow();
    // Without the gate's mark the same state outputs are ordinary outputs: those left split fail.
    const unmarked = parseModule(printModule(step).replace('cacheGate="first_block",', ''));
    expect(verifyPlan(unmarked).perRankOutputs.size).toBe(0);
    const splitState = step.graph.outputs.filter((v) => plan.perRankOutputs.has(v) && v.type.placement?.kind === 'sharded');
    expect(splitState.length).toBeGreaterThan(0); // r_ref and the residual are split over ulysses
    expect(() => verify(unmarked)).toThrow(/model output \d+ \('fbcache\.state\.[a-z_.0-9]+\.next'\) is placed .*; gather it/);
  });
});
