/** PLACEHOLDER: rules for ReduceOp are being written; this empty table only lets the package compile. */
import type { ReduceOp } from './op-kinds';
import type { OpRule } from './rule';

export const reduceRules = {} as { readonly [K in ReduceOp]: OpRule };
