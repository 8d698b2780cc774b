/**
 * Context parallelism (Ulysses, ring, hybrid, CFG-parallel) in one folder: the pipeline and its
 * drivers (pipeline.ts), the four passes (split-cfg-batch, shard-sequence, insert-all-to-all,
 * insert-ring-attention) and the sharding machinery they share (shard/). This barrel is the
 * folder's public API, re-exported by the package index.
 */
export * from './pipeline';
export { splitCfgBatch, planSplitCfgBatch } from './split-cfg-batch';
export { shardSequence, planShardSequence } from './shard-sequence';
export { insertAllToAll, insertAllToAllPass, findUlyssesSites, checkUlyssesHeads, kvRepeat } from './insert-all-to-all';
export type { UlyssesSite } from './insert-all-to-all';
export { insertRingAttention, insertRingAttentionPass, findRingSites } from './insert-ring-attention';
export type { RingSite } from './insert-ring-attention';
export { formatShardPlan } from './shard/plan';
export type { ShardPlanData, NodeStep, RootPlan } from './shard/plan';
export { hasMeshOptions, meshFromOptions, meshOf, withMesh } from './shard/mesh-options';
export type { MeshFlags } from './shard/mesh-options';
