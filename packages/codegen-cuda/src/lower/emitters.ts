/**
 * The emitters the compile driver uses by default: the fused-kernel emitter (kernels/index.ts)
 * for fragments. Attention goes to the flash kernel (lower/attention.ts) or is decomposed before
 * lowering. The stand-in (stub-emitter.ts) stays available for tests of the compile path that
 * must not depend on the CUDA renderers (`compile --stub-kernels`).
 */
import type { Node } from '@paradit/ir';
import type { EmitFragment, FragmentLowering } from '../kernel-types';
import { emitFragment } from '../kernels';
import { emitFragmentStub } from './stub-emitter';

interface Emitters {
  readonly emitFragment: EmitFragment;
  /** undefined: attention goes through emitFragment as a one-node fragment. */
  readonly emitAttention?: (node: Node, namePrefix: string) => FragmentLowering;
}

export function defaultEmitters(stub = false): Emitters {
  return { emitFragment: stub ? emitFragmentStub : emitFragment };
}
