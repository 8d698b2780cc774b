/**
 * fold-reshape-chains: collapses a chain of layout-preserving reshapes into one Reshape.
 *
 * Reshape, Squeeze, Unsqueeze and Flatten never move elements (row-major order is kept), so any
 * chain of them equals one Reshape from the chain's input to its last shape. The inner views stay
 * only while something else reads them.
 *
 * Requires: static output shapes on the outer view (a symbolic one has no constant target).
 * Ensures:  no view reads another view's output; a chain that returns to its input's shape is
 *           gone entirely. Data is bit-identical.
 *
 *     before:  %ax = const i64[1] [0]
 *              %s = const i64[3] [2, 2, 6]
 *              %1 = Unsqueeze(%x, %ax) : f32[1,4,6]        (%x: f32[4,6])
 *              %2 = Reshape(%1, %s) : f32[2,2,6]
 *              %3 = Flatten(%2) {axis=1} : f32[2,12]
 *     after:   %k = const i64[2] [2, 12]
 *              %3 = Reshape(%x, %k) : f32[2,12]
 */
import { RewriteRule, isView, replaceWith, rewriteTo, sameShape, staticShapeOf } from './rewrite';
import { rewritePass } from './rewriter';

// View(View(x)) -> Reshape(x, shape(out))   (View: Reshape | Squeeze | Unsqueeze | Flatten; x when shapes match)
const viewOfView: RewriteRule = (n, view) => {
  if (!isView(n)) return undefined;
  const inner = view.producer(n.inputs[0]);
  if (!isView(inner)) return undefined;
  const x = inner.inputs[0];
  const out = n.outputs[0]!;
  if (!x || x.dtype !== out.dtype) return undefined;
  if (sameShape(x.shape, out.shape)) return replaceWith(x);
  const shape = staticShapeOf(out);
  return shape ? rewriteTo((b) => b.reshape(x, shape)) : undefined;
};

const FOLD_RESHAPE_RULES: readonly RewriteRule[] = [viewOfView];

export const foldReshapeChains = rewritePass('fold-reshape-chains', 'collapses chains of Reshape/Squeeze/Unsqueeze/Flatten into one Reshape', FOLD_RESHAPE_RULES);
