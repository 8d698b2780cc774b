/**
 * fuse-modulation: AdaLN modulation `x * (1 + scale) + shift` becomes `modulate(x, shift, scale)`
 * and residual gating `x + gate * y` becomes `gated_residual(x, gate, y)`.
 *
 * Requires: fuse-activations, fuse-rope and fuse-norms have run (their patterns also contain
 *   `a + b * c`, which must not be taken for gating).
 * Ensures: each matched modulation / gated residual is one op. `1 + scale` may sit behind views
 *   (Unsqueeze/Reshape, as CogVideoX spells it); the views are re-applied to `scale`.
 *   Gating needs a non-constant gate that broadcasts (e.g. [B,1,D] against [B,S,D]) and a
 *   residual and update of the full output shape. That alone does not tell a gate from a rope
 *   table (x*cos + rot(x)*sin has the same shape), hence the Requires.
 *
 *   Before:  %t = Add(%scale, 1)                     # [B,1,D]
 *            %y = Add(Mul(%x, %t), %shift)           # x [B,S,D]
 *            %z = Add(%res, Mul(%gate, %y))
 *   After:   %y = modulate(%x, %shift, %scale)
 *            %z = gated_residual(%res, %gate, %y)
 */
import type { Node, Value } from '@paradit/ir';
import { isFloat } from '@paradit/ir';
import type { GraphView, RewriteRule } from './rewrite';
import { sameShape } from './rewrite';
import { rewritePass } from './rewriter';
import { applyViewChain, fuseTo, isConst, orders, viewChain } from './fusion-match';

/** `scale` when t = view*(Add(scale, 1)): the Add's other operand and the views above it. */
function onePlus(view: GraphView, t: Value): { readonly scale: Value; readonly chain: readonly Node[] } | undefined {
  const { base, chain } = viewChain(view, t);
  const add = view.producerOf(base, 'Add');
  if (!add) return undefined;
  for (const [s, one] of orders(add)) {
    if (isConst(view, one, 1) && sameShape(s.shape, base.shape)) return { scale: s, chain };
  }
  return undefined;
}

// Add(Mul(x, Add(scale, 1)), shift) -> modulate(x, shift, scale)
const fuseModulate: RewriteRule = (n, view) => {
  if (n.op !== 'Add' || !isFloat(n.outputs[0]!.dtype)) return undefined;
  const out = n.outputs[0]!;
  for (const [m, shift] of orders(n)) {
    const mul = view.producerOf(m, 'Mul');
    if (!mul || !view.hasSingleUser(m) || shift.constant) continue;
    for (const [x, t] of orders(mul)) {
      const op = onePlus(view, t);
      if (!op || !sameShape(x.shape, out.shape) || op.scale.constant) continue;
      return fuseTo(n, (b) => b.op('modulate', [x, shift, applyViewChain(b, op.scale, op.chain)]));
    }
  }
  return undefined;
};

/** True when `g` broadcasts into `shape` along at least one axis (a per-batch/per-channel gate). */
function broadcastsInto(g: Value, shape: readonly (number | string)[]): boolean {
  if (g.shape.length > shape.length) return false;
  const off = shape.length - g.shape.length;
  let strict = g.shape.length < shape.length;
  for (let i = 0; i < g.shape.length; i++) {
    const d = g.shape[i]!;
    const o = shape[off + i]!;
    if (d === o) continue;
    if (d !== 1) return false;
    strict = true;
  }
  return strict;
}

// Add(x, Mul(gate, y)) -> gated_residual(x, gate, y), gate non-constant and broadcast, x and y full-shaped
const fuseGatedResidual: RewriteRule = (n, view) => {
  if (n.op !== 'Add' || !isFloat(n.outputs[0]!.dtype)) return undefined;
  const out = n.outputs[0]!;
  for (const [x, m] of orders(n)) {
    const mul = view.producerOf(m, 'Mul');
    if (!mul || !view.hasSingleUser(m) || !sameShape(x.shape, out.shape) || x.constant) continue;
    for (const [g, y] of orders(mul)) {
      if (g.constant || y.constant || !sameShape(y.shape, out.shape) || !broadcastsInto(g, out.shape)) continue;
      return fuseTo(n, (b) => b.op('gated_residual', [x, g, y]));
    }
  }
  return undefined;
};

const fuseModulationRules: readonly RewriteRule[] = [fuseModulate, fuseGatedResidual];

export const fuseModulation = rewritePass('fuse-modulation', 'Fuses AdaLN modulation x*(1+scale)+shift and gated residuals x+gate*y', fuseModulationRules);
