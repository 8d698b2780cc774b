/**
 * Unary elementwise ops: math functions, activations and predicates. Each entry gives its doc
 * line, the dtypes it accepts and its scalar function (made once per node from the attributes);
 * the shared `unaryRule` does the typing and the loop. Values are computed in doubles and rounded
 * into the output dtype afterwards.
 */
import type { DType } from '../dtype';
import type { ElementwiseOp } from './op-kinds';
import type { OpRule, RuleCtx } from './rule';
import type { UnaryLoop } from './elementwise-common';
import { finiteAttr, flagAttr, unaryRule } from './elementwise-common';

type UnaryOp = Extract<
  ElementwiseOp,
  | 'Abs' | 'Neg' | 'Exp' | 'Log' | 'Sqrt' | 'Reciprocal' | 'Sin' | 'Cos' | 'Tan' | 'Tanh'
  | 'Asin' | 'Acos' | 'Atan' | 'Sinh' | 'Cosh' | 'Asinh' | 'Acosh' | 'Atanh'
  | 'Sigmoid' | 'Relu' | 'Erf' | 'Floor' | 'Ceil' | 'Round' | 'Sign' | 'Not' | 'IsNaN' | 'IsInf'
  | 'Softplus' | 'Softsign' | 'HardSigmoid' | 'HardSwish' | 'Elu' | 'Selu' | 'Celu' | 'LeakyRelu'
  | 'ThresholdedRelu' | 'Gelu' | 'Mish' | 'BitwiseNot'
>;

// ---------------------------------------------------------------------------------------------
// Scalar math that Math lacks.

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const SQRT_PI = Math.sqrt(Math.PI);

const INV_N = new Float64Array(100).map((_, n) => 1 / n);
const INV_2N_PLUS_1 = new Float64Array(100).map((_, n) => 1 / (2 * n + 1));

/**
 * The error function to about 1e-13 relative accuracy: its Maclaurin series below |x| = 2.5
 * (terms stay below 200, so cancellation costs under 3 of 16 digits), Laplace's continued
 * fraction for erfc above, and +-1 beyond |x| = 6 where erfc underflows double precision.
 * Divisions are replaced by table lookups: this sits on the hot path of exact GELU.
 */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (!(a < 6)) return Number.isNaN(x) ? NaN : Math.sign(x);
  if (a < 2.5) {
    const mx2 = -x * x;
    let term = x; // (-1)^n x^(2n+1) / n!
    let sum = x;
    for (let n = 1; n < 80; n++) {
      term *= mx2 * INV_N[n]!;
      const t = term * INV_2N_PLUS_1[n]!;
      sum += t;
      if (t < 1e-17 && t > -1e-17) break; // |sum| >= 0.9 |x|, so this is a relative bound too
    }
    return TWO_OVER_SQRT_PI * sum;
  }
  // erfc(a) = exp(-a^2) / sqrt(pi) / (a + (1/2) / (a + 1 / (a + (3/2) / (a + 2 / ...)))).
  let t = a;
  for (let k = 50; k >= 1; k--) t = a + (k * 0.5) / t;
  const erfc = Math.exp(-a * a) / (SQRT_PI * t);
  return x > 0 ? 1 - erfc : erfc - 1;
}

/** Round half to even (numpy.round, ONNX Round). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  const r = d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
  return r === 0 && x < 0 ? -0 : r; // keep the sign of a negative value rounded to zero
}

/** log(1 + exp(x)) without overflow. */
export function softplus(x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x));
}

export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const SQRT_HALF = Math.SQRT1_2;

const geluErf = (x: number): number => 0.5 * x * (1 + erf(x * SQRT_HALF));
const geluTanh = (x: number): number => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));

/** Gelu's `approximate` attribute: 'none' (exact, erf) or 'tanh'. */
function geluMode(ctx: RuleCtx): 'none' | 'tanh' {
  const mode = ctx.attr.string('approximate', 'none');
  if (mode !== 'none' && mode !== 'tanh') ctx.fail(`attribute 'approximate' must be 'none' or 'tanh', got '${mode}'`);
  return mode;
}

// Whole-array loops of the ops DiT graphs apply to every activation. Each is its own function
// so the scalar math is inlined into it (a shared loop calling many different functions cannot).
const EXP_LOOP: UnaryLoop = (x, o) => {
  for (let i = 0; i < o.length; i++) o[i] = Math.exp(x[i]!);
};
const SQRT_LOOP: UnaryLoop = (x, o) => {
  for (let i = 0; i < o.length; i++) o[i] = Math.sqrt(x[i]!);
};
const RECIPROCAL_LOOP: UnaryLoop = (x, o) => {
  for (let i = 0; i < o.length; i++) o[i] = 1 / x[i]!;
};
const NEG_LOOP: UnaryLoop = (x, o) => {
  for (let i = 0; i < o.length; i++) o[i] = -x[i]!;
};
const TANH_LOOP: UnaryLoop = (x, o) => {
  for (let i = 0; i < o.length; i++) o[i] = Math.tanh(x[i]!);
};
const SIGMOID_LOOP: UnaryLoop = (x, o) => {
  for (let i = 0; i < o.length; i++) o[i] = sigmoid(x[i]!);
};
const ERF_LOOP: UnaryLoop = (x, o) => {
  for (let i = 0; i < o.length; i++) o[i] = erf(x[i]!);
};
const GELU_ERF_LOOP: UnaryLoop = (x, o) => {
  for (let i = 0; i < o.length; i++) o[i] = geluErf(x[i]!);
};
const GELU_TANH_LOOP: UnaryLoop = (x, o) => {
  for (let i = 0; i < o.length; i++) o[i] = geluTanh(x[i]!);
};
const hot = (loop: UnaryLoop): { loop: () => UnaryLoop } => ({ loop: () => loop });

/** Bitwise complement in two's complement; exact for every integer a double holds. */
function bitwiseNotFn(d: DType): (x: number) => number {
  if (d === 'u64') return (x) => 18446744073709551615 - x;
  return (x) => -x - 1; // ~x; the output rounding wraps it into the dtype's range
}

const SELU_ALPHA = 1.67326319217681884765625;
const SELU_GAMMA = 1.05070102214813232421875;

const fixed = (f: (x: number) => number) => (): ((x: number) => number) => f;

export const unaryRules: { readonly [K in UnaryOp]: OpRule } = {
  Abs: unaryRule('Abs(X): |x|.', 'numeric', fixed(Math.abs)),
  Neg: unaryRule('Neg(X): -x.', 'signed', fixed((x) => -x), hot(NEG_LOOP)),
  Exp: unaryRule('Exp(X): e^x.', 'float', fixed(Math.exp), hot(EXP_LOOP)),
  Log: unaryRule('Log(X): natural logarithm.', 'float', fixed(Math.log)),
  Sqrt: unaryRule('Sqrt(X): square root (NaN below 0).', 'float', fixed(Math.sqrt), hot(SQRT_LOOP)),
  Reciprocal: unaryRule('Reciprocal(X): 1/x.', 'float', fixed((x) => 1 / x), hot(RECIPROCAL_LOOP)),
  Sin: unaryRule('Sin(X).', 'float', fixed(Math.sin)),
  Cos: unaryRule('Cos(X).', 'float', fixed(Math.cos)),
  Tan: unaryRule('Tan(X).', 'float', fixed(Math.tan)),
  Tanh: unaryRule('Tanh(X).', 'float', fixed(Math.tanh), hot(TANH_LOOP)),
  Asin: unaryRule('Asin(X).', 'float', fixed(Math.asin)),
  Acos: unaryRule('Acos(X).', 'float', fixed(Math.acos)),
  Atan: unaryRule('Atan(X).', 'float', fixed(Math.atan)),
  Sinh: unaryRule('Sinh(X).', 'float', fixed(Math.sinh)),
  Cosh: unaryRule('Cosh(X).', 'float', fixed(Math.cosh)),
  Asinh: unaryRule('Asinh(X).', 'float', fixed(Math.asinh)),
  Acosh: unaryRule('Acosh(X).', 'float', fixed(Math.acosh)),
  Atanh: unaryRule('Atanh(X).', 'float', fixed(Math.atanh)),
  Sigmoid: unaryRule('Sigmoid(X): 1 / (1 + e^-x).', 'float', fixed(sigmoid), hot(SIGMOID_LOOP)),
  Relu: unaryRule('Relu(X): max(0, x).', 'numeric', fixed((x) => (x < 0 ? 0 : x))),
  Erf: unaryRule('Erf(X): the Gauss error function.', 'float', fixed(erf), hot(ERF_LOOP)),
  Floor: unaryRule('Floor(X).', 'float', fixed(Math.floor)),
  Ceil: unaryRule('Ceil(X).', 'float', fixed(Math.ceil)),
  Round: unaryRule('Round(X): to nearest, halves to even.', 'float', fixed(roundHalfEven)),
  Sign: unaryRule('Sign(X): -1, 0 or 1 (NaN stays NaN).', 'numeric', fixed((x) => (x > 0 ? 1 : x < 0 ? -1 : x))),
  Not: unaryRule('Not(X: bool): logical negation.', 'bool', fixed((x) => (x ? 0 : 1))),
  IsNaN: unaryRule('IsNaN(X) -> bool.', 'float', fixed((x) => (Number.isNaN(x) ? 1 : 0)), { out: 'bool' }),
  IsInf: unaryRule(
    'IsInf(X) {detect_negative=1, detect_positive=1} -> bool: x is an infinity of a detected sign.',
    'float',
    (ctx) => {
      const neg = flagAttr(ctx, 'detect_negative', 1);
      const pos = flagAttr(ctx, 'detect_positive', 1);
      return (x) => ((pos && x === Infinity) || (neg && x === -Infinity) ? 1 : 0);
    },
    { out: 'bool' },
  ),
  Softplus: unaryRule('Softplus(X): log(1 + e^x).', 'float', fixed(softplus)),
  Softsign: unaryRule('Softsign(X): x / (1 + |x|).', 'float', fixed((x) => x / (1 + Math.abs(x)))),
  HardSigmoid: unaryRule('HardSigmoid(X) {alpha=0.2, beta=0.5}: max(0, min(1, alpha x + beta)).', 'float', (ctx) => {
    const alpha = finiteAttr(ctx, 'alpha', 0.2);
    const beta = finiteAttr(ctx, 'beta', 0.5);
    return (x) => Math.max(0, Math.min(1, alpha * x + beta));
  }),
  HardSwish: unaryRule(
    'HardSwish(X): x max(0, min(1, x/6 + 1/2)).',
    'float',
    fixed((x) => x * Math.max(0, Math.min(1, x / 6 + 0.5))),
  ),
  Elu: unaryRule('Elu(X) {alpha=1}: x >= 0 ? x : alpha (e^x - 1).', 'float', (ctx) => {
    const alpha = finiteAttr(ctx, 'alpha', 1);
    return (x) => (x >= 0 ? x : alpha * Math.expm1(x));
  }),
  Selu: unaryRule('Selu(X) {alpha=1.6733, gamma=1.0507}: gamma (x > 0 ? x : alpha (e^x - 1)).', 'float', (ctx) => {
    const alpha = finiteAttr(ctx, 'alpha', SELU_ALPHA);
    const gamma = finiteAttr(ctx, 'gamma', SELU_GAMMA);
    return (x) => (x > 0 ? gamma * x : gamma * alpha * Math.expm1(x));
  }),
  Celu: unaryRule('Celu(X) {alpha=1}: max(0, x) + min(0, alpha (e^(x/alpha) - 1)).', 'float', (ctx) => {
    const alpha = finiteAttr(ctx, 'alpha', 1);
    if (alpha === 0) ctx.fail(`attribute 'alpha' must be nonzero, got 0`);
    return (x) => Math.max(0, x) + Math.min(0, alpha * Math.expm1(x / alpha));
  }),
  LeakyRelu: unaryRule('LeakyRelu(X) {alpha=0.01}: x >= 0 ? x : alpha x.', 'float', (ctx) => {
    const alpha = finiteAttr(ctx, 'alpha', 0.01);
    return (x) => (x >= 0 ? x : alpha * x);
  }),
  ThresholdedRelu: unaryRule('ThresholdedRelu(X) {alpha=1}: x > alpha ? x : 0.', 'float', (ctx) => {
    const alpha = finiteAttr(ctx, 'alpha', 1);
    return (x) => (x > alpha ? x : 0);
  }),
  Gelu: unaryRule(
    "Gelu(X) {approximate='none'|'tanh'}: x Phi(x) with the exact erf form or the tanh approximation.",
    'float',
    (ctx) => (geluMode(ctx) === 'tanh' ? geluTanh : geluErf),
    { loop: (ctx) => (geluMode(ctx) === 'tanh' ? GELU_TANH_LOOP : GELU_ERF_LOOP) },
  ),
  Mish: unaryRule('Mish(X): x tanh(softplus(x)).', 'float', fixed((x) => x * Math.tanh(softplus(x)))),
  BitwiseNot: unaryRule('BitwiseNot(X: integer): two\'s-complement ~x.', 'integer', (_ctx, d) => bitwiseNotFn(d)),
};
