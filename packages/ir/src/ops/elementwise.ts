/** PLACEHOLDER: rules for ElementwiseOp are being written; this empty table only lets the package compile. */
import type { ElementwiseOp } from './op-kinds';
import type { OpRule } from './rule';

export const elementwiseRules = {} as { readonly [K in ElementwiseOp]: OpRule };
