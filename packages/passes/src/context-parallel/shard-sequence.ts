/**
 * shard-sequence: splits the token (sequence) axis over the sequence-parallel ranks of the mesh
 * (ring x ulysses, P = R*U) from as early as possible to the model outputs.
 *
 * Requires: static shapes; attention as the fused `attention` op (or a decomposed Softmax
 *   attention, which then gathers its keys through MatMul's rule). Mesh from ctx (meshOf).
 * Ensures: every value on the token streams is split in rank-chunk order (placement.ts): the
 *   roots found by shard/token-axes.ts are split right where they appear, per-token ops run on the
 *   local chunk, positional tables are sliced per rank, streams concatenate and split locally;
 *   each attention gathers its keys and values (all_gather over the sequence axis, keeping the
 *   token order; keys that are padding are masked) and keeps its queries local; model outputs
 *   are gathered back to natural order. insert-all-to-all and insert-ring-attention then replace
 *   the key gathers. The plan is printable (planShardSequence + formatShardPlan).
 *
 * Before (P = 2, 16 image tokens):
 *   %x = linear(%hidden, %w)                      f32[1,16,32]
 *   %o = attention(%q, %k, %v) {...}              f32[1,2,16,16]
 * After:
 *   %h = shard_slice(%hidden) {meshAxis: ulysses, axis: 1, groupSize: 2}   f32[1,8,8]@shard(1,ulysses)
 *   %x = linear(%h, %w)                           f32[1,8,32]@shard(1,ulysses)
 *   %kg = all_gather(%k) {meshAxis: ulysses, axis: 2, groupSize: 2}        f32[1,2,16,16]
 *   %o = attention(%q, %kg, %vg) {...}            f32[1,2,8,16]@shard(2,ulysses)
 */
import { IrError, Module, formatMesh, seqDegree, seqMeshAxis } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import type { Pass } from '../pass';
import { findAxisRoots } from './shard/token-axes';
import { planSharding } from './shard/plan';
import type { ShardPlanData } from './shard/plan';
import { applySharding } from './shard/apply';
import { meshOf } from './shard/mesh-options';
import { meshSizes } from './shard/view';

/** The plan, or undefined when the mesh does not split the sequence or there is no attention. */
export function planShardSequence(m: Module, mesh: Mesh): ShardPlanData | undefined {
  const meshAxis = seqMeshAxis(mesh);
  if (!meshAxis) return undefined;
  const P = seqDegree(mesh);
  const sizeOf = meshSizes(mesh);
  const found = findAxisRoots(m.graph, m.opset, 'seq', sizeOf);
  if (found.sites.length === 0) return undefined;
  if (found.roots.length === 0) {
    throw new IrError('E_UNSUPPORTED', `shard-sequence: found ${found.sites.length} attention sites but could not trace their token axis to a model input or patch embedding; the sequence cannot be split on mesh ${formatMesh(mesh)}`);
  }
  // A root whose token axis leads (no batch axis before it: position ids, rope tables) is
  // positional: it stays whole, its small computation replicated, and is sliced per rank where it
  // meets the split tokens, in their order (it may cover several streams in one tensor).
  const batched = found.roots.some((root) => root.axis > 0);
  // Every rank needs at least one real token: a degree above the token count would only split
  // padding (and run, slowly, without error), so it is refused here.
  const streams = found.roots.filter((root) => root.axis > 0 || !batched);
  const tokens = streams.reduce((n, root) => n + root.length, 0);
  if (P > tokens) {
    const names = streams.map((root) => `'${root.value.name || root.value.id}' (${root.length})`).join(', ');
    throw new IrError('E_INPUT', `mesh ${formatMesh(mesh)} splits the sequence over ${P} ranks (ring x ulysses), but the model has only ${tokens} tokens (${names}); use a ring x ulysses degree of at most ${tokens}`);
  }
  const roots = streams
    .map((root) => ({ root, place: { meshAxis, tokens: { axis: root.axis, segments: [root.length], chunks: P } } }));
  return planSharding({ pass: 'shard-sequence', graph: m.graph, opset: m.opset, mesh, sizeOf, roots });
}

export const shardSequence: Pass = {
  name: 'shard-sequence',
  description: 'split the token axis over the ring x ulysses ranks, from the token roots to the outputs',
  run(m, ctx) {
    const mesh = meshOf(ctx);
    const plan = planShardSequence(m, mesh);
    return plan ? applySharding(m, plan, meshSizes(mesh)) : m;
  },
};
