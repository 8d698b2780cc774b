/** PLACEHOLDER: rules for ShapeOp are being written; this empty table only lets the package compile. */
import type { ShapeOp } from './op-kinds';
import type { OpRule } from './rule';

export const shapeRules = {} as { readonly [K in ShapeOp]: OpRule };
