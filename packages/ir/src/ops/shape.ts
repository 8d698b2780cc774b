/**
 * The ShapeOp rule table, assembled from the files that implement each family:
 *   shape-layout.ts  Reshape, Transpose, Flatten, Squeeze, Unsqueeze, Expand, Tile, DepthToSpace, SpaceToDepth
 *   shape-pad.ts     Pad
 *   shape-slice.ts   Slice, Concat, Split
 *   shape-gather.ts  Gather, GatherElements, GatherND, ScatterND, ScatterElements
 *   shape-index.ts   Trilu, OneHot, NonZero
 *   shape-make.ts    Shape, Size, ConstantOfShape, Range, Constant, EyeLike
 *   shape-resize.ts  Resize
 * Shared helpers live in shape-util.ts and the strided-copy kernel in shape-copy.ts.
 */
import type { ShapeOp } from './op-kinds';
import type { OpRule } from './rule';
import { layoutRules } from './shape-layout';
import { padRules } from './shape-pad';
import { sliceRules } from './shape-slice';
import { gatherRules } from './shape-gather';
import { indexRules } from './shape-index';
import { makeRules } from './shape-make';
import { resizeRules } from './shape-resize';

export const shapeRules: { readonly [K in ShapeOp]: OpRule } = {
  ...layoutRules,
  ...padRules,
  ...sliceRules,
  ...gatherRules,
  ...indexRules,
  ...makeRules,
  ...resizeRules,
};
