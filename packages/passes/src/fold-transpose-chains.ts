/**
 * fold-transpose-chains: composes consecutive Transposes and turns Transposes that only move
 * size-1 axes into Reshapes (which fold-reshape-chains can then merge with their neighbours).
 *
 * Requires: nothing; the size-1 rule needs a static output shape.
 * Ensures:  no Transpose reads a Transpose; no Transpose keeps its non-unit axes in order (those
 *           are Reshapes now, or gone when the shape does not change). Data is bit-identical.
 *
 *     before:  %1 = Transpose(%x) {perm=[1, 0, 2]} : f32[3,2,4]      (%x: f32[2,3,4])
 *              %2 = Transpose(%1) {perm=[2, 1, 0]} : f32[4,2,3]
 *     after:   %2 = Transpose(%x) {perm=[2, 0, 1]} : f32[4,2,3]
 *     before:  %1 = Transpose(%y) {perm=[1, 0, 3, 2]} : f32[8,1,4,1]  (%y: f32[1,8,1,4])
 *     after:   %k = const i64[4] [8, 1, 4, 1]
 *              %1 = Reshape(%y, %k) : f32[8,1,4,1]
 */
import type { Node } from '@paradit/ir';
import { RewriteRule, intsAttr, replaceWith, rewriteTo, sameShape, staticShapeOf } from './rewrite';
import { rewritePass } from './rewriter';

/** A Transpose's permutation (ONNX default: reverse the axes). */
export function permOf(n: Node): readonly number[] | undefined {
  const x = n.inputs[0];
  if (!x) return undefined;
  const a = n.attrs['perm'];
  return a && a.kind === 'ints' ? a.value : [...x.shape.keys()].reverse();
}

// Transpose(Transpose(x, p), q) -> Transpose(x, r) with r[i] = p[q[i]]   (x when r is the identity)
const transposeOfTranspose: RewriteRule = (n, view) => {
  if (n.op !== 'Transpose') return undefined;
  const inner = view.producerOf(n.inputs[0], 'Transpose');
  if (!inner) return undefined;
  const p = permOf(inner);
  const q = permOf(n);
  const x = inner.inputs[0];
  if (!p || !q || !x || p.length !== q.length) return undefined;
  const r = q.map((i) => p[i]!);
  if (r.every((a, i) => a === i)) return replaceWith(x);
  return rewriteTo((b) => b.op('Transpose', [x], { perm: intsAttr(r) }));
};

// Transpose(x, p) keeping the non-unit axes in order -> Reshape(x, shape(out))   (x when shapes match)
const unitAxesTranspose: RewriteRule = (n) => {
  if (n.op !== 'Transpose') return undefined;
  const x = n.inputs[0];
  const p = permOf(n);
  if (!x || !p) return undefined;
  let last = -1;
  for (const a of p) {
    if (x.shape[a] === 1) continue; // symbolic dims count as non-unit
    if (a < last) return undefined;
    last = a;
  }
  const out = n.outputs[0]!;
  if (sameShape(x.shape, out.shape)) return replaceWith(x);
  const shape = staticShapeOf(out);
  return shape ? rewriteTo((b) => b.reshape(x, shape)) : undefined;
};

const FOLD_TRANSPOSE_RULES: readonly RewriteRule[] = [transposeOfTranspose, unitAxesTranspose];

export const foldTransposeChains = rewritePass(
  'fold-transpose-chains',
  'composes consecutive Transposes and turns Transposes that only move size-1 axes into Reshapes',
  FOLD_TRANSPOSE_RULES,
);
