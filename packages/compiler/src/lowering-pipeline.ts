/**
 * The compile driver's pipelines, in order, each entry with why it sits where it does. Every
 * IR-to-IR step of `compile` is one of these named passes: `compile --after NAME` prints the module
 * after it, `--time-passes` times it, and `verify` checks its output. Codegen renders only what
 * the last pipeline hands it.
 */
import {
  canonicalize,
  contextParallelPipeline,
  defaultPipeline,
  insertCacheGatePass,
  maskTokenSelectionPass,
  quantizeCommFp8Pass,
  quantizeLinearsFp8Pass,
  rowsParallelPipeline,
} from '@paradit/passes';
import type { KeepPattern, Pass } from '@paradit/passes';
import {
  convertedFrom,
  decomposeAttentionPass,
  dtypePolicyPass,
  einsumToMatmulPass,
  lowerCollectivesPass,
  patchifyConvPass,
  specializeShapesPass,
} from '@paradit/codegen-cuda';
import type { PlanPrecision, ShapeBindings } from '@paradit/codegen-cuda';

export interface StepPipelineOptions {
  readonly fbcache: boolean;
  /** The pass context's mesh has more than one rank. */
  readonly sharded: boolean;
  /** Shard a convolutional decoder's image rows instead of a transformer's tokens (rows-parallel). */
  readonly rowsParallel?: boolean;
  /** `--comm-dtype fp8`: quantize-comm-fp8 after the context-parallel passes. */
  readonly commFp8?: boolean;
}

/** Import -> static shapes (skipped for a module that already went through the default pipeline). */
export function specializePipeline(shapes: ShapeBindings): Pass[] {
  return [
    // First: Mochi's NonZero token selection makes shapes data-dependent; the masked rewrite
    // restores static shapes for everything after it.
    maskTokenSelectionPass,
    // Before fusion: attention fuses, and buffers get sizes, only where every dim is a number.
    specializeShapesPass(shapes),
  ];
}

/** Canonicalize and the DiT fusions: block discovery and the sharding rules read fused ops. */
export function fusionPipeline(): Pass[] {
  return defaultPipeline();
}

/** The fused model -> the denoising step, on the global (unsharded) shapes with placements. */
export function stepPipeline(o: StepPipelineOptions): Pass[] {
  return [
    // Context parallelism before the gate, so the collectives of the remaining blocks land inside
    // the computed branch.
    ...(o.sharded ? (o.rowsParallel ? rowsParallelPipeline() : contextParallelPipeline()) : []),
    // --comm-dtype fp8: on the finished collectives (it rewrites the payloads the passes above
    // created), before the gate so the gated blocks' transfers are e4m3 too.
    ...(o.sharded && !o.rowsParallel && o.commFp8 ? [quantizeCommFp8Pass] : []),
    // Last of the step: gates the finished (possibly sharded) step.
    ...(o.fbcache ? [insertCacheGatePass] : []),
  ];
}

/** The step -> the plan's interpreter reference: storage dtypes decided, layout rewrites done. */
export function referencePipeline(dtype: PlanPrecision, keepBf16: readonly KeepPattern[] = []): Pass[] {
  return [
    // After sharding (it reads placements and drops them: each rank's program on local shapes),
    // before the layout rewrites, whose GEMMs take the chosen dtype. fp8 plans store bf16.
    dtypePolicyPass(dtype === 'fp8' ? 'bf16' : dtype),
    // fp8 (docs/fp8.md): block linears -> e4m3 GEMMs; after the policy, so the layers write its
    // bf16, and weights are quantized from the original fp32 constants the policy converted.
    ...(dtype === 'fp8' ? [quantizeLinearsFp8Pass({ keepBf16, weightSource: (c) => convertedFrom(c)?.from ?? c })] : []),
    // Patch-embedding convolutions become GEMMs; needs the policy's casts in place.
    patchifyConvPass,
    einsumToMatmulPass,
    // Cancels the layout changes the two rewrites leave and the no-op Casts of the policy.
    canonicalize,
  ];
}

/** The reference -> what codegen renders (lowering details; the reference keeps the fused ops). */
export function renderPipeline(o: { readonly flash: boolean; readonly attentionScoreBudget?: number }): Pass[] {
  return [
    // Attention the flash kernel cannot run (or all, --no-flash) becomes GEMMs + an fp32 softmax,
    // query-chunked where the whole score matrix would pass the budget (VAE mid-block attention).
    decomposeAttentionPass({ all: !o.flash, ...(o.attentionScoreBudget !== undefined ? { scoreBudgetBytes: o.attentionScoreBudget } : {}) }),
    // Collectives in their contiguous plan forms; last, because the packing depends on final layouts.
    lowerCollectivesPass,
    // Drops the packing that moves nothing.
    canonicalize,
  ];
}

/** The names of every top-level pass `compile` runs for these options, in order (for `--after`). */
export function compilePassNames(o: StepPipelineOptions & { readonly dtype: PlanPrecision; readonly flash: boolean }): string[] {
  return [...specializePipeline(new Map()), ...fusionPipeline(), ...stepPipeline(o), ...referencePipeline(o.dtype), ...renderPipeline(o)].map((p) => p.name);
}
