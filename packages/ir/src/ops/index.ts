/**
 * The op table: every OpKind's rule, assembled from the per-group tables. The mapped type makes
 * this exhaustive: an op listed in op-kinds.ts without a rule is a compile error.
 */
import type { OpKind } from './op-kinds';
import type { OpRule } from './rule';
import { elementwiseRules } from './elementwise';
import { reduceRules } from './reduce';
import { nnRules } from './nn';
import { shapeRules } from './shape';
import { controlRules } from './control';
import { paraditRules } from './paradit';
import { collectiveRules } from './collective';

export const OPS: { readonly [K in OpKind]: OpRule } = {
  ...elementwiseRules,
  ...reduceRules,
  ...nnRules,
  ...shapeRules,
  ...controlRules,
  ...paraditRules,
  ...collectiveRules,
};

const KNOWN = new Set<string>(Object.keys(OPS));

export function isOpKind(op: string): op is OpKind {
  return KNOWN.has(op);
}

export type { OpKind } from './op-kinds';
export * from './rule';
