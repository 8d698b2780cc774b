/**
 * insert-cache-gate on the two-block tiny DiT: the gate's IR (golden text of the decision, the If
 * and both branches), the state/control interface a runtime finds by name, the must-not-fire case
 * and the error cases.
 */
import { IrError, Module, cacheGateAttrsOf, findCacheGate, hasCacheGate, parseModule, printModule, structurallyEqual, verifyModule } from '@paradit/ir';
import { compileDenoiseStep, createPassContext, defaultPipeline, formatCachePlan, insertCacheGate, planCacheGate, runPipeline } from '@paradit/passes';
import { FBCACHE_NAMES, fbcacheSignature, statePairs } from '@paradit/runtime';
import { TINY_DIT, buildTinyDit } from '../models/tiny-dit';

const prepared = runPipeline(buildTinyDit(TINY_DIT), defaultPipeline(), createPassContext());
const gated = insertCacheGate(prepared);

/** The lines of the printed module that the pass adds, plus the If's structure. */
function gateLines(text: string): string {
  return text
    .split('\n')
    .filter((l) => /# fbcache|graph main|If\(|branch=|return|^\s+\},?$|Blocks=|cacheGate=/.test(l) && !l.includes('= const'))
    .join('\n');
}

test('golden: the decision after block 0, one If with the cached and computed regions, the state as inputs/outputs', () => {
  verifyModule(gated);
  expect(gateLines(printModule(gated))).toBe(
    `  graph main(%0: f32[1,16,8], %1: f32[1,6,12], %2: f32[1], %3: bool[], %4: f32[], %5: f32[1,22,16], %6: f32[1,22,16], %7: f32[], %8: bool[], %9: f32[]) {  # hidden_states, encoder_hidden_states, timestep, fbcache.state.valid, fbcache.state.cached_run, fbcache.state.r_ref, fbcache.state.residual.0, fbcache.threshold, fbcache.must_compute, fbcache.max_cached
    %99 = Sub(%93, %57) : f32[1,22,16]  # fbcache/r1
    %100 = Sub(%99, %5) : f32[1,22,16]  # fbcache/r1_minus_ref
    %101 = Abs(%100) : f32[1,22,16]  # fbcache/abs_delta
    %102 = Abs(%5) : f32[1,22,16]  # fbcache/abs_ref
    %103 = ReduceMean(%101) {keepdims=0} : f32[]  # fbcache/mean_delta
    %104 = ReduceMean(%102) {keepdims=0} : f32[]  # fbcache/mean_ref
    %105 = Div(%103, %104) : f32[]  # fbcache/diff
    %106 = Less(%105, %7) : bool[]  # fbcache/similar
    %107 = Greater(%7, %41) : bool[]  # fbcache/enabled
    %108 = Less(%4, %9) : bool[]  # fbcache/under_limit
    %109 = Not(%8) : bool[]  # fbcache/not_forced
    %110 = And(%3, %109) : bool[]  # fbcache/cond_0
    %111 = And(%110, %107) : bool[]  # fbcache/cond_1
    %112 = And(%111, %108) : bool[]  # fbcache/cond_2
    %113 = And(%112, %106) : bool[]  # fbcache/cached
    %114, %115, %116, %117, %118 = If(%113) {  # fbcache/gate
      cacheGate="first_block",
      else_branch=graph fbcache_computed() {
        %170 = Sub(%169, %93) : f32[1,22,16]  # fbcache/residual_0
        %171 = Identity(%133) : f32[]  # fbcache/reset_run
        %172 = Identity(%134) : bool[]  # fbcache/now_valid
        return %169, %99, %171, %172, %170
      },
      skippedBlocks=1,
      then_branch=graph fbcache_cached() {
        %174 = Add(%93, %6) : f32[1,22,16]  # fbcache/cached_leaving_0
        %175 = Add(%4, %173) : f32[]  # fbcache/cached_run_plus_one
        return %174, %5, %175, %3, %6  # "", fbcache.state.r_ref, "", fbcache.state.valid, fbcache.state.residual.0
      },
      totalBlocks=2
    return %179, %113, %105, %117, %116, %115, %118  # sample, fbcache.cached, fbcache.diff, fbcache.state.valid.next, fbcache.state.cached_run.next, fbcache.state.r_ref.next, fbcache.state.residual.0.next
  }`,
  );
  // The computed branch holds block 1: its attention and feed-forward run only there.
  const gate = findCacheGate(gated.graph)!;
  const computed = gate.attrs.else_branch!.kind === 'graph' ? gate.attrs.else_branch.value : undefined;
  expect(computed!.nodes.filter((n) => n.op === 'attention')).toHaveLength(1);
  expect(gated.graph.nodes.filter((n) => n.op === 'attention')).toHaveLength(1); // block 0's
});

test('the plan is printable', () => {
  expect(formatCachePlan(planCacheGate(prepared.graph))).toMatch(/^blocks: 2 \(a cached step skips 1\)\nr1 = .*\nregion: \d+ nodes; before the gate: \d+; after: 4\nleaving: .*\nentering clones: none$/);
});

test('a runtime finds the state pairs, controls and reports by name', () => {
  const sig = fbcacheSignature(gated)!;
  expect(sig.state.map((p) => p.role)).toEqual(['valid', 'cached_run', 'r_ref', 'residual.0']);
  for (const p of sig.state) expect(p.output.name).toBe(`${p.input.name}.next`);
  expect([sig.threshold.name, sig.mustCompute.name, sig.maxCached.name, sig.cached.name, sig.diff.name]).toEqual([
    FBCACHE_NAMES.threshold, FBCACHE_NAMES.mustCompute, FBCACHE_NAMES.maxCached, FBCACHE_NAMES.cached, FBCACHE_NAMES.diff,
  ]);
  expect([sig.totalBlocks, sig.skippedBlocks]).toEqual([2, 1]);
  expect(fbcacheSignature(prepared)).toBeUndefined();
  expect(statePairs(prepared)).toEqual([]);
});

test('the printed step parses back to the same module, names included', () => {
  const back = parseModule(printModule(gated));
  expect(structurallyEqual(back, gated)).toBe(true);
  expect(fbcacheSignature(back)!.state.map((p) => p.role)).toEqual(['valid', 'cached_run', 'r_ref', 'residual.0']);
});

test('must not fire: a step that already has a gate is returned as it is', () => {
  expect(insertCacheGate(gated)).toBe(gated);
});

/** `m` with every value named fbcache.* renamed (the gate's mark must not depend on names). */
function renamedIo(m: Module): Module {
  return parseModule(printModule(m).replaceAll('fbcache.', 'cachestep.'));
}

test('the gate is found by its cacheGate mark, not by value names', () => {
  const gate = findCacheGate(gated.graph)!;
  expect(gate.op).toBe('If');
  expect(cacheGateAttrsOf(gate)).toEqual({ kind: 'first_block', totalBlocks: 2, skippedBlocks: 1 });
  expect(hasCacheGate(prepared)).toBe(false);
  // Guards against discovery by the name fbcache.threshold: renamed I/O still has the gate ...
  const renamed = renamedIo(gated);
  expect(renamed.graph.inputs.some((v) => v.name === FBCACHE_NAMES.threshold)).toBe(false);
  expect(hasCacheGate(renamed)).toBe(true);
  expect(insertCacheGate(renamed)).toBe(renamed);
  // ... and the mark survives the text round trip.
  expect(hasCacheGate(parseModule(printModule(gated)))).toBe(true);
});

test('error: a malformed cache gate mark names the node and what is wrong', () => {
  const text = printModule(gated);
  const bad = parseModule(text.replace('cacheGate="first_block"', 'cacheGate="last_block"'));
  expect(() => hasCacheGate(bad)).toThrow(IrError);
  expect(() => hasCacheGate(bad)).toThrow(/If 'fbcache\/gate': cache gate attribute 'cacheGate' must be "first_block", got "last_block"/);
  const noCount = parseModule(text.replace('totalBlocks=2', 'totalBlocks=2.5'));
  expect(() => hasCacheGate(noCount)).toThrow(/cache gate attribute 'totalBlocks' must be an int, got float/);
});

test('error: a model without transformer blocks', () => {
  const m = parseModule(`graph main(%x: f32[2,4], %w: f32[4,4]) {
    %y = MatMul(%x, %w)
    %z = Add(%x, %y)
    return %z
  }`);
  expect(() => insertCacheGate(m)).toThrow(IrError);
  expect(() => insertCacheGate(m)).toThrow(/First Block Cache needs at least two transformer blocks, but block discovery found 0/);
});

test('error: a model with one block has nothing to cache', () => {
  expect(() => compileDenoiseStep(buildTinyDit({ ...TINY_DIT, blocks: 1 }), { fbcache: true })).toThrow(/^First Block Cache needs at least two transformer blocks, .*found 1 in graph 'main'/);
});
