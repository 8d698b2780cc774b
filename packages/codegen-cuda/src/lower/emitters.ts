/**
 * The emitters the compile driver uses by default: the fused-kernel emitter (kernels/index.ts)
 * for fragments. Attention goes to the flash kernel (lower/attention.ts) or is decomposed before
 * lowering. The stand-in (stub-emitter.ts) stays available for tests of the compile path that
 * must not depend on the CUDA renderers (`compile --stub-kernels`). Inside fragments, bf16/f16
 * Conv (implicit GEMM on tensor cores, nearest 2x upsample folded in) and the exporters' GroupNorm
 * pattern (+ SiLU) take dedicated kernels first (kernels/conv-fragment.ts).
 */
import type { Node } from '@paradit/ir';
import type { EmitFragment, FragmentLowering } from '../kernel-types';
import { emitFragment } from '../kernels';
import { withConvKernels } from '../kernels/conv-fragment';
import { emitFragmentStub } from './stub-emitter';

interface Emitters {
  readonly emitFragment: EmitFragment;
  /** undefined: attention goes through emitFragment as a one-node fragment. */
  readonly emitAttention?: (node: Node, namePrefix: string) => FragmentLowering;
}

export function defaultEmitters(stub = false): Emitters {
  return { emitFragment: stub ? emitFragmentStub : withConvKernels(emitFragment) };
}
