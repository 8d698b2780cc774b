/**
 * rows-parallel: splits the image rows (axis 2 of NCHW activations) of a convolutional decoder
 * (the VAE) over the ranks of one mesh axis, with exact halos (docs/vae.md). The pass is the
 * prototype rewrite (apply.ts) behind the plan's refusals (halo-plan.ts), driven by the mesh of
 * the PassContext: a rows-parallel mesh is `ring = W` (ulysses and cfg 1); W = 1 is a no-op.
 *
 * Requires: the default pipeline ran (fused `attention`, `silu`); static shapes; every Conv on
 *   NCHW. Mesh from ctx (meshOf) with only the ring axis > 1.
 * Ensures: the per-rank (SPMD) module: rank-4 graph inputs are split on axis 2 (shard_slice over
 *   'ring'), each Conv receives its halo rows from its neighbours (ppermute, masked to zeros at
 *   the image edges) and runs without row padding, nearest Resize stays local, GroupNorm's
 *   statistics are all-reduced in fp32 (mean, then the centred sum of squares), the mid-block
 *   attention gathers K and V, and the outputs are gathered (all_gather axis 2). Outputs equal
 *   the unsharded module's within the fp32 rounding of the all-reduced statistics.
 *   Every value carries its placement (placements.ts), so verify (the SPMD rule) checks the module: the
 *   halo'd conv inputs are Concats in rank-chunk token order whose extra rows per chunk the Conv
 *   rule (@paradit/ir shard-rules/rows.ts) compares with the kernel's d(k-1)+1-s.
 *
 * Before (W = 2):
 *   %y = Conv(%z, %w, %b) {pads=[1,1,1,1]}                    f32[1,4,8,8] <- z f32[1,16,8,8]
 * After:
 *   %z0 = shard_slice(%z) {meshAxis: ring, axis: 2}           f32[1,16,4,8]@shard(2,ring)
 *   %xh = Concat(Mul(ppermute(last row of %z0, +1), mask), %z0, Mul(ppermute(first row, -1), mask))
 *                                                             f32[1,16,6,8]@shard(2,ring)@tokens(2:[2,8,2]/2)
 *   %y0 = Conv(%xh, %w, %b) {pads=[0,1,0,1]}                  f32[1,4,4,8]@shard(2,ring)
 *   %y  = all_gather(%y0) {meshAxis: ring, axis: 2}           f32[1,4,8,8]
 *
 * Refusals (IrError E_INPUT, naming the ONNX node): rows not divisible by W, a halo wider than a
 * band, an op on a split value without a rule, a module with no NCHW convolution (a transformer:
 * use --ulysses/--ring for sequence parallelism), a mesh that also sets ulysses or cfg.
 */
import { IrError, Module, formatMesh, worldSize } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import type { Pass } from '../pass';
import { meshOf } from '../context-parallel/shard/mesh-options';
import { shardRows } from './apply';

/** The mesh axis rows-parallel splits over (its ppermute is the ring shift the halos need). */
export const ROWS_MESH_AXIS = 'ring';

/** The rows-parallel degree of `mesh`, refusing meshes that also ask for sequence or CFG parallelism. */
export function rowsDegree(mesh: Mesh): number {
  if (mesh.ulysses > 1 || mesh.cfg > 1) {
    throw new IrError('E_INPUT', `rows-parallel: mesh ${formatMesh(mesh)} also sets ulysses or cfg; rows-parallel splits the image rows over one mesh axis only, so give --rows-parallel W without --ulysses/--ring/--cfg`);
  }
  return mesh.ring;
}

/** Why `m` is not a convolutional decoder rows-parallel can split, or undefined when it is. */
export function notRowsParallel(m: Module): string | undefined {
  const nchwInput = m.graph.inputs.some((v) => v.type.shape.length === 4);
  const conv = m.graph.nodes.some((n) => n.op === 'Conv' && n.inputs[0]?.type.shape.length === 4);
  if (nchwInput && conv) return undefined;
  const attention = m.graph.nodes.some((n) => n.op === 'attention' || n.op === 'Softmax');
  const what = !nchwInput ? 'no NCHW (rank-4) model input' : 'no 2-D convolution';
  return `the module has ${what}${attention ? ' and has attention: it looks like a transformer; use --ulysses/--ring (sequence parallelism) instead' : '; rows-parallel shards convolutional decoders (the VAE)'}`;
}

export const rowsParallelPass: Pass = {
  name: 'rows-parallel',
  description: 'split the image rows of a convolutional decoder over the ring ranks, with exact conv halos',
  run(m, ctx) {
    const mesh = meshOf(ctx);
    if (worldSize(mesh) === 1) return m;
    const world = rowsDegree(mesh);
    const why = notRowsParallel(m);
    if (why) throw new IrError('E_INPUT', `rows-parallel ${world}: ${why}`);
    return shardRows(m, world, ROWS_MESH_AXIS);
  },
};

/** The rows-parallel passes, in order (one today: the rewrite; its plan is halo-plan.ts). */
export function rowsParallelPipeline(): Pass[] {
  return [
    rowsParallelPass, // after the default pipeline: attention and silu are fused, GroupNorm is Reshape/InstanceNormalization/Reshape
  ];
}
