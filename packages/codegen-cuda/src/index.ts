/**
 * @paradit/codegen-cuda: the CUDA target's lowering passes (dtype policy, layout rewrites,
 * attention decomposition, collective packing), the renderer of decided IR (kernels, streams,
 * memory plan) and plan writing. The driver that runs them is @paradit/compiler.
 */
export * from './kernel-types';
export * from './dtype-policy';
export * from './memory-plan';
export * from './plan-builder';
export * from './plan-writer';
export { abortAll, checkPlanOutput, onAbort } from './plan-output';
export { RandomWeightPool, randomJob } from './weight-pool';
export type { RandomJob } from './weight-pool';
// rebuildModule moved to @paradit/ir (the one graph rebuild); re-exported for existing callers.
export { rebuildModule } from '@paradit/ir';
export type { ReplayCtx, NodeHook, RebuildOptions } from '@paradit/ir';
export { specializeShapes, specializeShapesPass, parseShapeOption } from './lower/specialize-shapes';
export type { ShapeBindings } from './lower/specialize-shapes';
export { lowerModule, refOf, REF_INLINE_LIMIT, isRefInlineConstant, instrOrigin } from './lower/lower-graph';
export type { LowerOptions } from './lower/lower-graph';
export { matchGemm } from './lower/gemm';
export { emitFragmentStub, isViewNode, STUB_KERNEL_MARKER } from './lower/stub-emitter';
export { defaultEmitters } from './lower/emitters';
export type * from './lower/program';
export { DEFAULT_SCORE_BUDGET_BYTES, decomposeAttention, decomposeAttentionPass, queryChunkRows } from './lower/decompose-attention';
export type { DecomposeAttentionOptions } from './lower/decompose-attention';
export { flashSupported, lowerFlashAttention, foldableInputTransposes } from './lower/attention';
export { patchifyConvs, patchifyConvPass, patchKernel } from './lower/patchify-conv';
export { rewriteEinsums, einsumToMatmulPass, einsumForm } from './lower/einsum-to-matmul';
export { checkProgram, ProgramError } from './lower/check-program';
export { CUDA_PATHS, cudaPathOf, refusedNodes, coverageError } from './lower/cuda-coverage';
export type { CudaPath } from './lower/cuda-coverage';
export { lowerCollectives, lowerCollectivesPass } from './lower/lower-collectives';
export { scheduleStreams } from './lower/schedule';
export type { ScheduleReport } from './lower/schedule';
export { linkBytes } from './lower/cost-model';
export { valueRecipe } from './weight-recipes';
