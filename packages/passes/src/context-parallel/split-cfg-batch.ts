/**
 * split-cfg-batch: splits the batch of a model called with an [uncond; cond] batch over the cfg
 * axis of the mesh, so each cfg group runs one half (CFG parallelism).
 *
 * Requires: static shapes; a batch (axis 0 of the attention queries, traced back to the model
 *   inputs that carry it) divisible by the cfg degree C. Mesh from ctx (meshOf). Runs before
 *   shard-sequence (which then splits tokens inside each cfg group).
 * Ensures: every batch-carrying input is sliced per cfg rank (shard_slice on axis 0), the batch
 *   stays split through every batch-parallel op, and model outputs are gathered (all_gather over
 *   cfg). Values without the batch (weights, position tables) stay replicated.
 *
 * Before (C = 2):
 *   %x = linear(%hidden, %w)                 f32[2,16,32]
 * After:
 *   %h = shard_slice(%hidden) {meshAxis: cfg, axis: 0, groupSize: 2}    f32[1,16,8]@shard(0,cfg)
 *   %x = linear(%h, %w)                      f32[1,16,32]@shard(0,cfg)
 *   ...
 *   %out = all_gather(%y) {meshAxis: cfg, axis: 0, groupSize: 2}        f32[2,16,8]
 */
import { IrError, Module } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import type { Pass } from '../pass';
import { findAxisRoots } from './shard/token-axes';
import { planSharding } from './shard/plan';
import type { ShardPlanData } from './shard/plan';
import { applySharding } from './shard/apply';
import { meshOf } from './shard/mesh-options';
import { meshSizes } from './shard/view';

export function planSplitCfgBatch(m: Module, mesh: Mesh): ShardPlanData | undefined {
  const C = mesh.cfg;
  if (C <= 1) return undefined;
  const sizeOf = meshSizes(mesh);
  const found = findAxisRoots(m.graph, m.opset, 'batch', sizeOf);
  if (found.roots.length === 0) {
    const site = found.sites[0];
    const where = site ? `attention '${site.name || site.op}' runs on batch ${site.inputs[0]!.shape[0]}` : 'the model has no attention';
    throw new IrError(
      'E_UNSUPPORTED',
      `split-cfg-batch: --cfg ${C} splits an [uncond; cond] batch over ${C} ranks, but ${where} and no model input carries a batch to split; use --cfg 1`,
      site?.name,
    );
  }
  for (const r of found.roots) {
    if (r.length % C !== 0) {
      throw new IrError(
        'E_UNSUPPORTED',
        `split-cfg-batch: '${r.value.name || r.origin}' has batch ${r.length}, which does not split over --cfg ${C}; CFG parallelism needs ` +
          `the [uncond; cond] batch (a batch divisible by ${C}); use --cfg 1${r.length > 1 ? ` or a degree that divides ${r.length}` : ''}`,
      );
    }
  }
  const roots = found.roots.map((root) => ({ root, place: { meshAxis: 'cfg' } }));
  return planSharding({ pass: 'split-cfg-batch', graph: m.graph, opset: m.opset, mesh, sizeOf, roots });
}

export const splitCfgBatch: Pass = {
  name: 'split-cfg-batch',
  description: 'split an [uncond; cond] batch over the cfg axis of the mesh',
  run(m, ctx) {
    const mesh = meshOf(ctx);
    const plan = planSplitCfgBatch(m, mesh);
    return plan ? applySharding(m, plan, meshSizes(mesh)) : m;
  },
};
