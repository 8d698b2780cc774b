/**
 * fuse-activations: GELU (erf and tanh forms, and ONNX Gelu) becomes `gelu`, SiLU becomes `silu`.
 *
 * Requires: constants folded (the GELU coefficients are constants).
 * Ensures: pointwise activation subgraphs are single ops; an fp32 activation between an up-Cast
 *   and a down-Cast runs on the narrow input (the op computes in fp32 anyway).
 *
 * The decomposed GELU is matched as a polynomial in x and t = Erf(..)/Tanh(..) (see
 * polynomial.ts), so any operand order, association, `/ 2` for `* 0.5`, `Pow(x, 3)` or `x*x*x`
 * and a distributed `c*x + c*0.044715*x^3` all match:
 *
 *   Before:  %e = Erf(Div(%x, 1.4142135))
 *            %y = Mul(Mul(%x, 0.5), Add(%e, 1))
 *   After:   %y = gelu(%x) {approximate='none'}
 *
 *   Before:  %y = Mul(%x, Sigmoid(%x))
 *   After:   %y = silu(%x)
 */
import type { Value } from '@paradit/ir';
import { isFloat } from '@paradit/ir';
import type { GraphView, RewriteRule } from './rewrite';
import { rewritePass } from './rewriter';
import { fuseTo, orders } from './fusion-match';
import { leaves, polyEquals, polynomial } from './polynomial';

const SQRT_HALF = Math.SQRT1_2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_CUBIC = 0.044715;

const approximate = (mode: 'none' | 'tanh') => ({ approximate: { kind: 'string' as const, value: mode } });

/** The GELU of the expression at `root`, when it is one: its input and approximation. */
function matchGelu(view: GraphView, root: Value): { readonly x: Value; readonly mode: 'none' | 'tanh' } | undefined {
  const ls = leaves(view, root);
  if (ls.length !== 2) return undefined;
  for (const [t, x] of [[ls[0]!, ls[1]!], [ls[1]!, ls[0]!]] as [Value, Value][]) {
    const f = view.producer(t);
    if (!f || (f.op !== 'Erf' && f.op !== 'Tanh') || !view.hasSingleUser(t) || x.dtype !== root.dtype) continue;
    const outer = polynomial(view, root, x, t);
    if (!outer || !polyEquals(outer, { '1,0': 0.5, '1,1': 0.5 }, root.dtype)) continue;
    const inner = polynomial(view, f.inputs[0]!, x);
    if (!inner) continue;
    if (f.op === 'Erf' && polyEquals(inner, { '1,0': SQRT_HALF }, root.dtype)) return { x, mode: 'none' };
    if (f.op === 'Tanh' && polyEquals(inner, { '1,0': SQRT_2_OVER_PI, '3,0': SQRT_2_OVER_PI * GELU_CUBIC }, root.dtype)) return { x, mode: 'tanh' };
  }
  return undefined;
}

// x * 0.5 * (1 + Erf(x / sqrt 2)) -> gelu(x) {none};  x * 0.5 * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 x^3))) -> gelu(x) {tanh}
const decomposedGelu: RewriteRule = (n, view) => {
  if (n.op !== 'Mul' && n.op !== 'Div' && n.op !== 'Add') return undefined;
  const out = n.outputs[0]!;
  if (!isFloat(out.dtype)) return undefined;
  const g = matchGelu(view, out);
  if (!g || g.x.shape.length !== out.shape.length || g.x.shape.some((d, i) => d !== out.shape[i])) return undefined;
  return fuseTo(n, (b) => b.op('gelu', [g.x], approximate(g.mode)));
};

// Gelu(x) {approximate} -> gelu(x) {approximate}
const fromOnnxGelu: RewriteRule = (n) => {
  if (n.op !== 'Gelu') return undefined;
  const a = n.attrs['approximate'];
  const mode = a && a.kind === 'string' ? a.value : 'none';
  if (mode !== 'none' && mode !== 'tanh') return undefined;
  return fuseTo(n, (b) => b.op('gelu', [n.inputs[0]], approximate(mode)));
};

// Mul(x, Sigmoid(x)) -> silu(x)
const decomposedSilu: RewriteRule = (n, view) => {
  if (n.op !== 'Mul') return undefined;
  for (const [x, s] of orders(n)) {
    const sig = view.producerOf(s, 'Sigmoid');
    if (sig && sig.inputs[0] === x && isFloat(x.dtype) && x.shape.length === n.outputs[0]!.shape.length && x.shape.every((d, i) => d === n.outputs[0]!.shape[i])) {
      return fuseTo(n, (b) => b.op('silu', [x]));
    }
  }
  return undefined;
};

const WIDTH: Readonly<Record<string, number>> = { f16: 2, bf16: 2, f32: 4, f64: 8 };

// Cast(gelu|silu(Cast(x -> wider)) -> dtype(x)) -> gelu|silu(x)
const narrowCastActivation: RewriteRule = (n, view) => {
  if (n.op !== 'Cast') return undefined;
  const act = view.producer(n.inputs[0]);
  if (!act || (act.op !== 'gelu' && act.op !== 'silu') || !view.hasSingleUser(n.inputs[0]!)) return undefined;
  const up = view.producerOf(act.inputs[0], 'Cast');
  const x = up?.inputs[0];
  if (!x || x.dtype !== n.outputs[0]!.dtype || (WIDTH[x.dtype] ?? 9) >= (WIDTH[up.outputs[0]!.dtype] ?? 0)) return undefined;
  return fuseTo(n, (b) => b.op(act.op, [x], act.attrs));
};

const fuseActivationsRules: readonly RewriteRule[] = [fromOnnxGelu, decomposedSilu, decomposedGelu, narrowCastActivation];

export const fuseActivations = rewritePass('fuse-activations', 'Fuses GELU (erf and tanh forms, ONNX Gelu) and SiLU into gelu / silu', fuseActivationsRules);
