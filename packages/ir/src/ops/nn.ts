/**
 * The NnOp rule table: contractions (nn-matmul.ts, nn-einsum.ts), convolutions (nn-conv.ts),
 * pooling (nn-pool.ts), normalization layers (nn-norm.ts), attention (nn-attention.ts) and
 * rotary embeddings (nn-rotary.ts). Shared kernels live in nn-kernels.ts and window geometry
 * in nn-spatial.ts.
 */
import type { NnOp } from './op-kinds';
import type { OpRule } from './rule';
import { matmulRules } from './nn-matmul';
import { einsumRules } from './nn-einsum';
import { convRules } from './nn-conv';
import { poolRules } from './nn-pool';
import { normRules } from './nn-norm';
import { attentionRules } from './nn-attention';
import { rotaryRules } from './nn-rotary';

export const nnRules: { readonly [K in NnOp]: OpRule } = {
  ...matmulRules,
  ...einsumRules,
  ...convRules,
  ...poolRules,
  ...normRules,
  ...attentionRules,
  ...rotaryRules,
};
