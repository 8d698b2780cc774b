/** @paradit/passes: the pass infrastructure, the pattern rewriter, and the canonicalization passes. */
export * from './pass';
export * from './report';
export * from './pipeline';
export * from './rewrite';
export { applyRewrites, rewritePass } from './rewriter';
export type { RewriteOptions } from './rewriter';
export * from './graph-edit';
export { refineTypes } from './refine-types';
export * from './fold-constants';
export * from './eliminate-dead-code';
export * from './eliminate-common-subexpressions';
export * from './remove-noop-ops';
export * from './fold-reshape-chains';
export * from './fold-transpose-chains';
export * from './canonicalize';
// Context parallelism: pipeline, passes and shard machinery (context-parallel/index.ts lists them).
export * from './context-parallel';
export { ROWS_MESH_AXIS, notRowsParallel, rowsDegree, rowsParallelPass, rowsParallelPipeline } from './rows-parallel/pass';
export { formatRowsPlan, planRowsParallel } from './rows-parallel/halo-plan';
export type { RowsParallelPlan, RowsStep, RowsStepKind } from './rows-parallel/halo-plan';
export * from './default-pipeline';
export * from './fuse-attention';
export * from './fuse-norms';
export * from './fuse-rope';
export * from './fuse-activations';
export * from './fuse-modulation';
export * from './fuse-linear';
export { discoverBlocks } from './blocks/discover';
export type { Block, BlockGroup, BlockReport, StreamInfo } from './blocks/discover';
export { renderBlocksDot } from './blocks/dot';
export { foldSymbolicShapes, foldSymbolicShapesPass, formatSymbolicShapes } from './fold-symbolic-shapes';
export { insertCacheGate, insertCacheGatePass, hasCacheGate } from './insert-cache-gate';
export { planCacheGate, formatCachePlan } from './fbcache/analyze';
export type { CachePlan } from './fbcache/analyze';
export { compileDenoiseStep, denoiseStepPipeline } from './fbcache/compile';
export type { CompileStepOptions } from './fbcache/compile';
export * from './mask-token-selection';
export * from './split-sample-norm-scales';
// --dtype fp8 (docs/fp8.md): the FP8 linear-layer rewrite, its analysis and --keep-bf16 patterns.
export { quantizeLinearsFp8, quantizeLinearsFp8Pass } from './fp8/quantize-linears-fp8';
export type { QuantizeLinearsFp8Options } from './fp8/quantize-linears-fp8';
export { formatFp8Plan, planFp8Linears, summarizeFp8Plan } from './fp8/plan';
export type { Fp8Decision, Fp8Plan, Fp8Reason } from './fp8/plan';
export { parseKeepPattern } from './fp8/patterns';
// --comm-dtype fp8 (docs/fp8.md): attention payloads of context parallelism move as e4m3.
export { findCommFp8Sites, quantizeCommFp8, quantizeCommFp8Pass } from './fp8/quantize-comm-fp8';
export type { CommFp8Site, CommPayload } from './fp8/quantize-comm-fp8';
export type { KeepPattern } from './fp8/patterns';
