/**
 * The elementwise op table, assembled from its parts: unary math and activations
 * (elementwise-unary.ts), broadcasting binary ops (elementwise-binary.ts), and the variadic,
 * selection, clipping, casting and pass-through ops (elementwise-misc.ts). All share the strided
 * broadcast kernels of broadcast.ts. The mapped type makes the table exhaustive over ElementwiseOp.
 */
import type { ElementwiseOp } from './op-kinds';
import type { OpRule } from './rule';
import { unaryRules } from './elementwise-unary';
import { binaryRules } from './elementwise-binary';
import { miscRules } from './elementwise-misc';

export const elementwiseRules: { readonly [K in ElementwiseOp]: OpRule } = {
  ...unaryRules,
  ...binaryRules,
  ...miscRules,
};
