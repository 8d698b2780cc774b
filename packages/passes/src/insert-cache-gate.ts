/**
 * insert-cache-gate: First Block Cache (ParaAttention's semantics) compiled into the step, so the
 * decision and both outcomes are one graph with no host round trip.
 *
 * Requires: a DiT with at least two blocks found by discoverBlocks; runs after the default
 *   pipeline and, for a mesh, after the context-parallel passes (its collectives then sit inside
 *   the computed branch, and the diff is all-reduced so every rank decides alike).
 * Ensures: after the first block, r1 = first_block_out - first_block_in on the main stream and
 *   the decision (fbcache/gate.ts); one `If` whose then-branch is the cached path (leaving =
 *   entering + residual, r_ref kept) and whose else-branch is the computed path (the remaining
 *   blocks; r_ref <- r1, residual <- leaving - entering). The state and controls are graph inputs
 *   and outputs named by the convention in @paradit/ir's fbcache-names.ts
 *   (docs/fbcache.md); the If is marked `cacheGate="first_block"` (found by that, not by names).
 *   A module that already has a gate is returned unchanged.
 *
 * Before:
 *   %h1 = gated_residual(%h0, %g, %f0)            # block 0
 *   %h2 = gated_residual(%h1, %g1, %f1)           # block 1 ... last block
 *   %out = linear(%h2, %w)                        # head
 * After:
 *   %h1 = gated_residual(%h0, %g, %f0)
 *   %r1 = Sub(%h1, %h0)  ...  %cached = And(..., Less(%diff, %threshold))
 *   %h2, %rref_next, %run_next, %valid_next, %res_next = If(%cached)
 *       then { %h2c = Add(%h1, %res) ... }  else { %h2 = gated_residual(%h1, ...) ... %res_n = Sub(%h2, %h1) }
 *   %out = linear(%h2, %w)
 */
import { Graph, IrError, Module, Tensor, Value, axisSize, distOf, isMeshAxis, meshAxisSizes, tensorType } from '@paradit/ir';
import type { AttrValue, TensorType } from '@paradit/ir';
import { FBCACHE_NAMES, STATE_NEXT_SUFFIX, cacheGateAttrsFor, hasCacheGate } from '@paradit/ir';
import type { Pass, PassContext } from './pass';
import { editNode } from './graph-edit';
import { meshOf } from './context-parallel/shard/mesh-options';
import { planCacheGate } from './fbcache/analyze';
import type { CachePlan } from './fbcache/analyze';
import { NodeMaker, buildGate } from './fbcache/gate';
import { buildEntering } from './fbcache/entering';

const scalarType = (dtype: 'f32' | 'bool'): TensorType => tensorType(dtype, []);

/** True when `m` already has a cache gate (the pass then does nothing): @paradit/ir's mark on the If. */
export { hasCacheGate };

export function insertCacheGate(m: Module, ctx?: PassContext): Module {
  if (hasCacheGate(m)) return m;
  const g = m.graph;
  const plan = planCacheGate(g);
  const sizes = meshAxisSizes(g);
  const mesh = ctx ? meshOf(ctx) : undefined;
  const sizeOf = (axis: string): number => sizes.get(axis) ?? (mesh && isMeshAxis(axis) ? axisSize(mesh, axis) : 1);
  return m.withGraph(applyPlan(g, plan, m.opset, sizeOf));
}

function applyPlan(g: Graph, plan: CachePlan, opset: number, sizeOf: (axis: string) => number): Graph {
  const state = (name: string, t: TensorType): Value => new Value(t, name);
  const valid = state(FBCACHE_NAMES.valid, scalarType('bool'));
  const cachedRun = state(FBCACHE_NAMES.cachedRun, scalarType('f32'));
  const rRef = state(FBCACHE_NAMES.rRef, plan.mainOut.type);
  const residuals = plan.leaving.map((v, k) => state(FBCACHE_NAMES.residual(k), v.type));
  const threshold = new Value(scalarType('f32'), FBCACHE_NAMES.threshold);
  const mustCompute = new Value(scalarType('bool'), FBCACHE_NAMES.mustCompute);
  const maxCached = new Value(scalarType('f32'), FBCACHE_NAMES.maxCached);

  // Entering values: the leaving values' skip paths re-run on the first block's outputs.
  const top = new NodeMaker(opset);
  const enteringValues = buildEntering(plan, top);
  const entering = plan.leaving.map((v, k) => {
    const e = enteringValues[k]!;
    if (e.dtype !== v.dtype || e.shape.join(',') !== v.shape.join(',')) {
      throw new IrError('E_INPUT', `leaving value '${v.name}' is ${v.dtype}[${v.shape.join(',')}] but its value after the first block is ${e.dtype}[${e.shape.join(',')}]; First Block Cache cannot form its residual`);
    }
    return e;
  });
  const gate = buildGate(top, { mainIn: plan.mainIn, mainOut: plan.mainOut, rRef, valid, cachedRun, threshold, mustCompute, maxCached, sizeOf }, { diff: FBCACHE_NAMES.diff, cached: FBCACHE_NAMES.cached });

  const one = top.constant(Tensor.from('f32', [], [1]), 'fbcache.one');
  // Cached path: leaving = entering + residual; r_ref and the residuals stay; one more cached step.
  const cachedMk = new NodeMaker(opset);
  const cachedLeaving = plan.leaving.map((v, k) => cachedMk.one('Add', [entering[k]!, residuals[k]!], {}, `fbcache/cached_leaving_${k}`, distOf(v.type.placement)));
  const runPlusOne = cachedMk.one('Add', [cachedRun, one], {}, 'fbcache/cached_run_plus_one');
  const thenBranch = new Graph([], cachedMk.nodes, [...cachedLeaving, rRef, runPlusOne, valid, ...residuals], 'fbcache_cached');

  // Computed path: the remaining blocks; r_ref <- r1, residual <- leaving - entering.
  const computedMk = new NodeMaker(opset);
  const newResiduals = plan.leaving.map((v, k) => computedMk.one('Sub', [v, entering[k]!], {}, `fbcache/residual_${k}`, distOf(v.type.placement)));
  const zeroRun = computedMk.one('Identity', [top.constant(Tensor.from('f32', [], [0]), 'fbcache.zero_run')], {}, 'fbcache/reset_run');
  const nowValid = computedMk.one('Identity', [top.constant(Tensor.from('bool', [], [1]), 'fbcache.true')], {}, 'fbcache/now_valid');
  const elseBranch = new Graph([], [...plan.region, ...computedMk.nodes], [...plan.leaving, gate.r1, zeroRun, nowValid, ...newResiduals], 'fbcache_computed');

  const outNames = [
    ...plan.leaving.map((v) => v.name),
    FBCACHE_NAMES.rRef + STATE_NEXT_SUFFIX,
    FBCACHE_NAMES.cachedRun + STATE_NEXT_SUFFIX,
    FBCACHE_NAMES.valid + STATE_NEXT_SUFFIX,
    ...residuals.map((r) => r.name + STATE_NEXT_SUFFIX),
  ];
  const attrs: Record<string, AttrValue> = {
    then_branch: { kind: 'graph', value: thenBranch },
    else_branch: { kind: 'graph', value: elseBranch },
    ...cacheGateAttrsFor({ totalBlocks: plan.totalBlocks, skippedBlocks: plan.skippedBlocks }),
  };
  const dists = thenBranch.outputs.map((v) => distOf(v.type.placement));
  const ifOuts = top.add('If', [gate.cond], attrs, 'fbcache/gate', dists, outNames.length, outNames);
  const subst = new Map<Value, Value>(plan.leaving.map((v, k) => [v, ifOuts[k]!]));
  const after = plan.after.map((n) => editNode(n, { subst }));
  const k = plan.leaving.length;
  const outputs = [...g.outputs.map((v) => subst.get(v) ?? v), gate.cond, gate.diff, ifOuts[k + 2]!, ifOuts[k + 1]!, ifOuts[k]!, ...ifOuts.slice(k + 3)];
  const inputs = [...g.inputs, valid, cachedRun, rRef, ...residuals, threshold, mustCompute, maxCached];
  return new Graph(inputs, [...plan.before, ...top.nodes, ...after], outputs, g.name);
}

export const insertCacheGatePass: Pass = {
  name: 'insert-cache-gate',
  description: 'First Block Cache: decide after the first block and branch between the cached and the computed remaining blocks',
  run: (m, ctx) => insertCacheGate(m, ctx),
};
