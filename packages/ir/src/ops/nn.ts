/** PLACEHOLDER: rules for NnOp are being written; this empty table only lets the package compile. */
import type { NnOp } from './op-kinds';
import type { OpRule } from './rule';

export const nnRules = {} as { readonly [K in NnOp]: OpRule };
