/**
 * The default pipeline: canonicalize, fuse the decomposed transformer into DiT-level ops
 * (attention, norms, rope, activations, modulation, linear), canonicalize again.
 *
 * Order matters where patterns overlap: `a + b * c` is a gated residual only once rope
 * (x*cos + rot(x)*sin) and GELU (x + 0.044715 x^3) have been claimed by their own passes.
 */
import type { Pass } from './pass';
import { canonicalize } from './canonicalize';
import { maskTokenSelectionPass } from './mask-token-selection';
import { fuseAttention } from './fuse-attention';
import { fuseNorms } from './fuse-norms';
import { fuseRope } from './fuse-rope';
import { fuseActivations } from './fuse-activations';
import { fuseModulation } from './fuse-modulation';
import { fuseLinear } from './fuse-linear';

/** The fusion passes, in the order the default pipeline runs them. */
const FUSION_PASSES: readonly Pass[] = [
  fuseAttention, // first: its scale/mask chain (Mul, Add, Where) must not be claimed by the pointwise fusions
  fuseNorms, // next: absorbs constant affine Mul/Add before modulation looks at Add(Mul(..), ..)
  fuseRope, // before fuse-modulation: x*cos + rot(x)*sin has the shape of a gated residual
  fuseActivations, // before fuse-modulation: tanh-GELU's x + c*x^3 is an Add of a Mul too
  fuseModulation, // after the passes above took their Add/Mul patterns; claims AdaLN modulate and gating
  fuseLinear, // last: MatMul+bias and Gemm by constant weights; no other pattern reads through them
];

/** A fresh copy of the default pipeline (callers may append their own passes). */
export function defaultPipeline(): Pass[] {
  return [
    maskTokenSelectionPass, // first: Mochi-style NonZero token selection leaves data-dependent shapes that nothing after it folds
    canonicalize, // constants folded (scales, eps, slice bounds), no-op Casts/Reshapes gone: the fusion rules read constants
    ...FUSION_PASSES,
    canonicalize, // folds the Reshape/Transpose the fusions put around their ops and removes what they left dead
  ];
}
