/**
 * The SPMD placement check of the verifier: placements are checked, not trusted. Each case breaks
 * one thing a plan must get right and expects the message that names it.
 */
import { IrError, Module, Node, Value, makeMesh, parseModule, tensorType, updateNode, verifyModule, verifySharded } from '@paradit/ir';
import type { Pass } from '@paradit/passes';
import { contextParallelPipeline, createPassContext, defaultPipeline, editGraph, runPipeline, withMesh } from '@paradit/passes';
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
  test('a 2-D mask whose key columns stay in natural order beside keys in rank-chunk order', () => {
    // Joint [2 text, 4 image] over 2 ranks: keys are in the joint order, so the mask's columns
    // must be reordered too (to_token_order on axis 3), not only its rows.
    expect(
      bad(`graph main(%t: f32[1,1,2,4], %i: f32[1,1,4,4], %m: bool[1,1,6,6]) {
        %ts = shard_slice(%t) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,1,4]@shard(2,ulysses)
        %is = shard_slice(%i) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,2,4]@shard(2,ulysses)
        %x = Concat(%ts, %is) {axis=2} : f32[1,1,3,4]@shard(2,ulysses)@tokens(2:[2,4]/2)
        %k = all_gather(%x) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,6,4]@replicated@tokens(2:[2,4]/2)
        %mo = to_token_order(%m) {axis=2, chunks=2, fill=1.0, segments=[2,4]} : bool[1,1,6,6]@replicated@tokens(2:[2,4]/2)
        %ms = shard_slice(%mo) {axis=2, groupSize=2, meshAxis="ulysses"} : bool[1,1,3,6]@shard(2,ulysses)@tokens(2:[2,4]/2)
        %o = attention(%x, %k, %k, %ms) {kvHeads=1, numHeads=1, scale=0.5} : f32[1,1,3,4]@shard(2,ulysses)@tokens(2:[2,4]/2)
        %g = all_gather(%o) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,6,4]@replicated@tokens(2:[2,4]/2)
        %n = from_token_order(%g) {axis=2, chunks=2, segments=[2,4]} : f32[1,1,6,4]
        return %n
      }`),
    ).toThrow(/attention: input 3 is placed 2@ulysses tokens\(2:\[2,4\]\/2\), but attention needs 2@ulysses tokens\(2,3:\[2,4\]\/2\)/);
  });
});

describe('verifyModule checks placements by default', () => {
  // A missing all_gather before attention, with the node named 'attn_7'.
  const MISSING_GATHER = `graph main(%x: f32[1,1,4,4]) {
    %xs = shard_slice(%x) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,2,4]@shard(2,ulysses)
    %o = attention(%xs, %xs, %xs) {kvHeads=1, numHeads=1, scale=0.5} : f32[1,1,2,4]@shard(2,ulysses) # attn_7
    %g = all_gather(%o) {axis=2, groupSize=2, meshAxis="ulysses"} : f32[1,1,4,4]
    return %g
  }`;

  test('a module compiled for a mesh gets the SPMD rule without asking; the message names the node', () => {
    let err: unknown;
    try {
      verifyModule(parseModule(MISSING_GATHER));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IrError);
    expect((err as IrError).message).toMatch(/node #1 attention 'attn_7': input 1 is placed 2@ulysses, but attention needs replicated/);
    expect((err as IrError).nodeName).toBe('attn_7');
  });

  test('explicit placementRules still replace the default (an empty list checks no placements)', () => {
    expect(() => verifyModule(parseModule(MISSING_GATHER), { placementRules: [] })).not.toThrow();
  });

  test('placements without any collective are annotations, not an SPMD program: not checked', () => {
    const m = parseModule(`graph main(%x: f32[1,4,4]@shard(1,ring)) {
      %y = Transpose(%x) {perm=[0,2,1]} : f32[1,4,4]@shard(1,ring)
      return %y
    }`);
    expect(() => verifyModule(m)).not.toThrow();
  });

  test("compileForMesh's verify instrument catches a pass that misplaces an op, naming the node", () => {
    // A broken pass run after the real ones: it records the first ring step's output as
    // replicated (what a pass that forgot a collective would leave behind).
    const broken: Pass = {
      name: 'forget-placement',
      description: 'test only: drops the placement of one attention_lse output',
      run: (x: Module) => {
        const target = x.graph.nodes.find((n) => n.op === 'attention_lse');
        if (!target || target.outputs[0]!.type.placement === undefined) return x;
        const outs = target.outputs.map((o, k) => (k === 0 ? new Value(tensorType(o.dtype, o.shape), o.name) : o));
        const subst = new Map([[target.outputs[0]!, outs[0]!]]);
        const mapNode = (n: Node): Node => (n === target ? updateNode(n, { outputs: outs }) : n);
        return x.withGraph(editGraph(x.graph, { subst, mapNode }));
      },
    };
    const ctx = withMesh(createPassContext({ verify: true }), makeMesh({ ring: 2 }));
    const m = buildCpDit({ ...CP_DIT, imageTokens: 8, textTokens: 4 });
    expect(() => runPipeline(m, [...defaultPipeline(), ...contextParallelPipeline(), broken], ctx)).toThrow(
      /pass 'forget-placement' produced invalid IR[\s\S]*attention_lse '[^']*ring_step_0': output 0 is recorded as replicated, but its inputs make it/,
    );
  });
});
