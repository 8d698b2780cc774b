/**
 * Per-op scalar C code for pointwise ops: given the C expressions of the (broadcast) operands in
 * their compute types, the C expression of the result in the output's compute type. Float math
 * runs in float (double for f64); the emitter rounds the result to the output dtype afterwards.
 * `scalarOpFor` returns undefined for ops that are not pointwise.
 */
import type { DType, ElementwiseOp, Node } from '@paradit/ir';
import { AttrReader, isFloat } from '@paradit/ir';
import { computeType, isFloatCompute, literal } from './c-types';
import { CodegenError } from './codegen-error';

export interface ScalarOp {
  readonly name: string;
  emit(args: readonly string[]): string;
}

type Make = (ctx: OpCtx) => ScalarOp;

interface OpCtx {
  readonly node: Node;
  readonly attr: AttrReader;
  readonly ins: readonly DType[];
  readonly out: DType;
  /** float function name for the output compute type: f('exp') -> expf or exp. */
  f(name: string): string;
  /** literal in the output compute type. */
  lit(v: number): string;
  fail(why: string): never;
}

const op = (name: string, emit: (a: readonly string[]) => string): ScalarOp => ({ name, emit });
const un = (name: string, f: (c: OpCtx, x: string) => string): Make => (c) => op(name, (a) => f(c, a[0]!));
const bin = (name: string, f: (c: OpCtx, x: string, y: string) => string): Make => (c) => op(name, (a) => f(c, a[0]!, a[1]!));

function needFloat(c: OpCtx): void {
  if (!isFloatCompute(c.ins[0]!)) c.fail(`expected a float input, got ${c.ins[0]}`);
}

const fl = (name: string, body: (c: OpCtx, x: string) => string): Make => (c) => {
  needFloat(c);
  return op(name, (a) => body(c, a[0]!));
};

function castExpr(from: DType, to: DType, x: string): string {
  if (from === to) return x;
  const t = computeType(to);
  if (to === 'bool') return `((${x}) != 0)`;
  if (from === 'bool') return `(${t})((${x}) ? 1 : 0)`;
  if (isFloatCompute(from) && !isFloatCompute(to)) {
    return to === 'u64' ? `(unsigned long long)(${x})` : `(${t})(long long)(${x})`;
  }
  return `(${t})(${x})`;
}

function geluOf(c: OpCtx, x: string): string {
  const mode = c.attr.string('approximate', 'none');
  if (mode === 'tanh') return c.out === 'f64' ? `pdt_gelu_tanh_d(${x})` : `pdt_gelu_tanh(${x})`;
  if (mode !== 'none') c.fail(`attribute 'approximate' must be 'none' or 'tanh', got '${mode}'`);
  return c.out === 'f64' ? `pdt_gelu_erf_d(${x})` : `pdt_gelu_erf(${x})`;
}

function clipBounds(c: OpCtx): [string | undefined, string | undefined] {
  if (c.node.inputs.length > 1) return [undefined, undefined]; // bounds are inputs (handled by the caller)
  if (c.attr.has('min') || c.attr.has('max')) return [c.lit(c.attr.float('min', -3.4028234663852886e38)), c.lit(c.attr.float('max', 3.4028234663852886e38))];
  return [undefined, undefined];
}

/** Ops that may have a scalar form: every ONNX elementwise op (so a new one must state its CUDA form) and ParaDiT's pointwise ops. */
type PointwiseOp = ElementwiseOp | 'gelu' | 'silu' | 'modulate' | 'gated_residual';

const TABLE: { readonly [K in PointwiseOp]: Make | undefined } = {
  // Pass their input through: Identity is a view and Dropout a pass-through in kernels/plan.ts.
  Identity: undefined,
  Dropout: undefined,
  Abs: un('abs', (_c, x) => `(${x} < 0 ? -${x} : ${x})`),
  Neg: un('neg', (_c, x) => `(-${x})`),
  Exp: fl('exp', (c, x) => `${c.f('exp')}(${x})`),
  Log: fl('log', (c, x) => `${c.f('log')}(${x})`),
  Sqrt: fl('sqrt', (c, x) => `${c.f('sqrt')}(${x})`),
  Reciprocal: fl('rcp', (c, x) => `(${c.lit(1)} / ${x})`),
  Sin: fl('sin', (c, x) => `${c.f('sin')}(${x})`),
  Cos: fl('cos', (c, x) => `${c.f('cos')}(${x})`),
  Tan: fl('tan', (c, x) => `${c.f('tan')}(${x})`),
  Tanh: fl('tanh', (c, x) => `${c.f('tanh')}(${x})`),
  Asin: fl('asin', (c, x) => `${c.f('asin')}(${x})`),
  Acos: fl('acos', (c, x) => `${c.f('acos')}(${x})`),
  Atan: fl('atan', (c, x) => `${c.f('atan')}(${x})`),
  Sinh: fl('sinh', (c, x) => `${c.f('sinh')}(${x})`),
  Cosh: fl('cosh', (c, x) => `${c.f('cosh')}(${x})`),
  Asinh: fl('asinh', (c, x) => `${c.f('asinh')}(${x})`),
  Acosh: fl('acosh', (c, x) => `${c.f('acosh')}(${x})`),
  Atanh: fl('atanh', (c, x) => `${c.f('atanh')}(${x})`),
  Erf: fl('erf', (c, x) => `${c.f('erf')}(${x})`),
  Floor: fl('floor', (c, x) => `${c.f('floor')}(${x})`),
  Ceil: fl('ceil', (c, x) => `${c.f('ceil')}(${x})`),
  Round: fl('round', (c, x) => `${c.f('rint')}(${x})`),
  Sigmoid: fl('sigmoid', (c, x) => `(${c.lit(1)} / (${c.lit(1)} + ${c.f('exp')}(-${x})))`),
  silu: fl('silu', (c, x) => `(${x} / (${c.lit(1)} + ${c.f('exp')}(-${x})))`),
  Relu: un('relu', (c, x) => `(${x} < 0 ? ${c.lit(0)} : ${x})`),
  Sign: un('sign', (c, x) => `(${x} > 0 ? ${c.lit(1)} : (${x} < 0 ? ${c.lit(-1)} : ${x}))`),
  Softplus: fl('softplus', (c, x) => `(${x} > 0 ? ${x} + ${c.f('log1p')}(${c.f('exp')}(-${x})) : ${c.f('log1p')}(${c.f('exp')}(${x})))`),
  Softsign: fl('softsign', (c, x) => `(${x} / (${c.lit(1)} + ${c.f('fabs')}(${x})))`),
  HardSigmoid: fl('hardsigmoid', (c, x) => `${c.f('fmax')}(${c.lit(0)}, ${c.f('fmin')}(${c.lit(1)}, ${c.lit(c.attr.float('alpha', 0.2))} * ${x} + ${c.lit(c.attr.float('beta', 0.5))}))`),
  HardSwish: fl('hardswish', (c, x) => `(${x} * ${c.f('fmax')}(${c.lit(0)}, ${c.f('fmin')}(${c.lit(1)}, ${x} / ${c.lit(6)} + ${c.lit(0.5)})))`),
  Elu: fl('elu', (c, x) => `(${x} >= 0 ? ${x} : ${c.lit(c.attr.float('alpha', 1))} * ${c.f('expm1')}(${x}))`),
  Selu: fl('selu', (c, x) => {
    const g = c.lit(c.attr.float('gamma', 1.05070102214813232421875));
    return `(${x} > 0 ? ${g} * ${x} : ${g} * ${c.lit(c.attr.float('alpha', 1.67326319217681884765625))} * ${c.f('expm1')}(${x}))`;
  }),
  Celu: fl('celu', (c, x) => {
    const a = c.lit(c.attr.float('alpha', 1));
    return `(${c.f('fmax')}(${c.lit(0)}, ${x}) + ${c.f('fmin')}(${c.lit(0)}, ${a} * ${c.f('expm1')}(${x} / ${a})))`;
  }),
  LeakyRelu: fl('leakyrelu', (c, x) => `(${x} >= 0 ? ${x} : ${c.lit(c.attr.float('alpha', 0.01))} * ${x})`),
  ThresholdedRelu: fl('thresholdedrelu', (c, x) => `(${x} > ${c.lit(c.attr.float('alpha', 1))} ? ${x} : ${c.lit(0)})`),
  Mish: fl('mish', (c, x) => `(${x} * ${c.f('tanh')}(${x} > 20 ? ${x} : ${c.f('log1p')}(${c.f('exp')}(${x}))))`),
  Gelu: fl('gelu', geluOf),
  gelu: fl('gelu', geluOf),
  IsNaN: un('isnan', (_c, x) => `(${x} != ${x})`),
  IsInf: (c) => {
    const neg = c.attr.int('detect_negative', 1) === 1;
    const pos = c.attr.int('detect_positive', 1) === 1;
    return op('isinf', ([x]) => `(${pos ? `${x} == ${literal(c.ins[0]!, Infinity)}` : 'false'} || ${neg ? `${x} == ${literal(c.ins[0]!, -Infinity)}` : 'false'})`);
  },
  Not: un('not', (_c, x) => `(!${x})`),
  BitwiseNot: un('bitnot', (c, x) => `(${computeType(c.out)})(~${x})`),
  Add: bin('add', (_c, x, y) => `(${x} + ${y})`),
  Sub: bin('sub', (_c, x, y) => `(${x} - ${y})`),
  Mul: bin('mul', (_c, x, y) => `(${x} * ${y})`),
  Div: bin('div', (c, x, y) => (isFloatCompute(c.out) ? `(${x} / ${y})` : `(${y} == 0 ? ${c.lit(0)} : ${x} / ${y})`)),
  Pow: (c) => {
    if (isFloatCompute(c.out)) return op('pow', ([x, y]) => `${c.f('pow')}(${x}, (${computeType(c.out)})(${y}))`);
    return op('pow', ([x, y]) => `(${computeType(c.out)})pow((double)(${x}), (double)(${y}))`);
  },
  Mod: (c) => {
    const fmod = c.attr.int('fmod', 0) === 1;
    if (fmod) return op('fmod', ([x, y]) => (isFloatCompute(c.out) ? `${c.f('fmod')}(${x}, ${y})` : `(${x} % ${y})`));
    if (isFloatCompute(c.out)) c.fail(`fmod=0 is only defined for integer inputs; set fmod=1 for ${c.out}`);
    return op('mod', ([x, y]) => `pdt_pymod(${x}, ${y})`);
  },
  Equal: bin('eq', (_c, x, y) => `(${x} == ${y})`),
  Less: bin('lt', (_c, x, y) => `(${x} < ${y})`),
  LessOrEqual: bin('le', (_c, x, y) => `(${x} <= ${y})`),
  Greater: bin('gt', (_c, x, y) => `(${x} > ${y})`),
  GreaterOrEqual: bin('ge', (_c, x, y) => `(${x} >= ${y})`),
  And: bin('and', (_c, x, y) => `(${x} && ${y})`),
  Or: bin('or', (_c, x, y) => `(${x} || ${y})`),
  Xor: bin('xor', (_c, x, y) => `(${x} != ${y})`),
  BitwiseAnd: bin('bitand', (c, x, y) => `(${computeType(c.out)})(${x} & ${y})`),
  BitwiseOr: bin('bitor', (c, x, y) => `(${computeType(c.out)})(${x} | ${y})`),
  BitwiseXor: bin('bitxor', (c, x, y) => `(${computeType(c.out)})(${x} ^ ${y})`),
  BitShift: (c) => {
    const left = c.attr.string('direction') === 'LEFT';
    const bits = { u8: 8, u16: 16, u32: 32, u64: 64 }[c.out as 'u8'] ?? 64;
    return op('shift', ([x, y]) => `(${y} >= ${bits} ? ${c.lit(0)} : (${computeType(c.out)})(${x} ${left ? '<<' : '>>'} ${y}))`);
  },
  PRelu: bin('prelu', (_c, x, y) => `(${x} < 0 ? ${y} * ${x} : ${x})`),
  Max: (c) => op('max', (a) => a.reduce((p, q) => `pdt_max(${p}, ${q})`)),
  Min: (c) => op('min', (a) => a.reduce((p, q) => `pdt_min(${p}, ${q})`)),
  Sum: () => op('sum', (a) => `(${a.join(' + ')})`),
  Mean: (c) => op('mean', (a) => `((${a.join(' + ')}) / ${c.lit(a.length)})`),
  Where: () => op('where', ([k, x, y]) => `(${k} ? ${x} : ${y})`),
  Clip: (c) => {
    const [lo, hi] = clipBounds(c);
    const n = c.node.inputs.length;
    return op('clip', (a) => {
      let x = a[0]!;
      const l = lo ?? (n > 1 && c.node.inputs[1] ? a[1] : undefined);
      const h = hi ?? (n > 2 && c.node.inputs[2] ? a[2] : undefined);
      if (l) x = `pdt_max(${x}, ${l})`;
      if (h) x = `pdt_min(${x}, ${h})`;
      return x;
    });
  },
  Cast: (c) => op('cast', ([x]) => castExpr(c.ins[0]!, c.out, x!)),
  CastLike: (c) => op('cast', ([x]) => castExpr(c.ins[0]!, c.out, x!)),
  modulate: () => op('modulate', ([x, shift, scale]) => `(${x} * (1.0f + ${scale}) + ${shift})`),
  gated_residual: () => op('gated_residual', ([x, g, y]) => `(${x} + ${g} * ${y})`),
};

/** The scalar op of a pointwise node, or undefined when the op is not pointwise. */
export function scalarOpFor(node: Node, ins: readonly DType[], out: DType): ScalarOp | undefined {
  const make = Object.prototype.hasOwnProperty.call(TABLE, node.op) ? TABLE[node.op as PointwiseOp] : undefined;
  if (!make) return undefined;
  const fail = (why: string): never => {
    throw CodegenError.at(node, why);
  };
  const dbl = out === 'f64';
  const ctx: OpCtx = {
    node,
    attr: new AttrReader(node.attrs, fail),
    ins,
    out,
    f: (name) => (dbl || !isFloat(out) ? name : `${name}f`),
    lit: (v) => literal(out, v),
    fail,
  };
  return make(ctx);
}

/** Cast between compute types (used by the emitters for mixed-dtype operands). */
export { castExpr };
