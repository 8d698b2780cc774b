/**
 * Binary elementwise ops with numpy broadcasting: arithmetic, comparisons, logic, bitwise ops
 * and PRelu. Integer arithmetic follows C/numpy: Div truncates toward zero, results wrap into
 * the dtype's range (the output rounding in Tensor.normalized does the wrap), Mod takes the
 * divisor's sign unless fmod=1.
 */
import type { DType } from '../dtype';
import { isFloat } from '../dtype';
import type { ElementwiseOp } from './op-kinds';
import type { OpRule, RuleCtx } from './rule';
import { need, tensorType } from './rule';
import type { Binary } from './broadcast';
import { ADD_ROW, DIV_ROW, MUL_ROW, SUB_ROW, rowOf } from './broadcast';
import { binaryRule, broadcastType, checkArity, checkClass, checkDtype, flagAttr, runBinary } from './elementwise-common';

type BinaryOp = Extract<
  ElementwiseOp,
  | 'Add' | 'Sub' | 'Mul' | 'Div' | 'Pow' | 'Mod'
  | 'Equal' | 'Less' | 'LessOrEqual' | 'Greater' | 'GreaterOrEqual' | 'And' | 'Or' | 'Xor'
  | 'BitwiseAnd' | 'BitwiseOr' | 'BitwiseXor' | 'BitShift' | 'PRelu'
>;

/** Integer dtypes whose products wrap modulo a divisor of 2^32, so Math.imul is exact for them. */
const IMUL_DTYPES: ReadonlySet<DType> = new Set(['i8', 'u8', 'i16', 'u16', 'i32', 'u32']);

function mulFn(_ctx: RuleCtx, d: DType): Binary {
  return IMUL_DTYPES.has(d) ? Math.imul : (x, y) => x * y;
}

function divFn(_ctx: RuleCtx, d: DType): Binary {
  if (isFloat(d)) return (x, y) => x / y;
  return (x, y) => (y === 0 ? 0 : Math.trunc(x / y)); // C semantics; numpy also gives 0 for /0
}

function modFn(ctx: RuleCtx, d: DType): Binary {
  const fmod = flagAttr(ctx, 'fmod', 0);
  if (fmod) return (x, y) => x % y; // C fmod: sign of the dividend
  if (isFloat(d)) ctx.fail(`fmod=0 is only defined for integer inputs; set fmod=1 for ${d}`);
  return (x, y) => {
    const r = x % y;
    return r !== 0 && r < 0 !== y < 0 ? r + y : r; // Python-style: sign of the divisor
  };
}

const TWO32 = 4294967296;

/**
 * Lifts a 32-bit bitwise op to every integer a double holds exactly, on two's-complement 64-bit
 * patterns: the high and low 32-bit words are combined separately.
 */
function bitwise64(op: (a: number, b: number) => number): Binary {
  return (x, y) => {
    if ((x | 0) === x && (y | 0) === y) return op(x, y);
    const xh = Math.floor(x / TWO32);
    const yh = Math.floor(y / TWO32);
    return op(xh, yh) * TWO32 + (op(x - xh * TWO32, y - yh * TWO32) >>> 0);
  };
}

const BITS: Partial<Record<DType, number>> = { u8: 8, u16: 16, u32: 32, u64: 64 };

function bitShiftFn(ctx: RuleCtx, d: DType): Binary {
  const dir = ctx.attr.string('direction');
  const bits = BITS[d] ?? 64;
  if (dir === 'RIGHT') return (x, y) => (y >= bits ? 0 : Math.floor(x / 2 ** y));
  if (dir !== 'LEFT') ctx.fail(`attribute 'direction' must be 'LEFT' or 'RIGHT', got '${dir}'`);
  return (x, y) => {
    if (y >= bits) return 0;
    const v = x * 2 ** y; // exact: scaling by a power of two; the output rounding wraps it
    if (bits === 64 && v >= 2 ** 53) return Number(BigInt.asUintN(64, BigInt(x) << BigInt(y)));
    return v;
  };
}

const fixed = (f: Binary) => (): Binary => f;

const PRelu: OpRule = {
  doc: 'PRelu(X, slope): x < 0 ? slope x : x; slope broadcasts to X (unidirectionally).',
  infer(ctx) {
    checkArity(ctx, 2, 2);
    const x = need(ctx, ctx.inputs, 0);
    const s = need(ctx, ctx.inputs, 1);
    checkClass(ctx, x.dtype, 'numeric', 'input 0 (X)');
    checkDtype(ctx, s.dtype, x.dtype, 'input 1 (slope)');
    const out = broadcastType(ctx, [x, s], x.dtype);
    const same = out.shape.length === x.shape.length && out.shape.every((d, i) => d === x.shape[i] || typeof x.shape[i] === 'string');
    if (!same) ctx.fail(`slope [${s.shape.join(',')}] must broadcast to X [${x.shape.join(',')}] without growing it`);
    return [tensorType(x.dtype, x.shape, x.placement)];
  },
  run(ctx) {
    const x = need(ctx, ctx.inputs, 0);
    return [runBinary(ctx, rowOf((v, a) => (v < 0 ? a * v : v)), x.dtype)];
  },
};

const sameOrNumeric = (opset: number): 'same' | 'numeric' => (opset >= 12 ? 'numeric' : 'same');

export const binaryRules: { readonly [K in BinaryOp]: OpRule } = {
  Add: binaryRule('Add(A, B): a + b.', 'numeric', fixed((x, y) => x + y), { row: () => ADD_ROW }),
  Sub: binaryRule('Sub(A, B): a - b.', 'numeric', fixed((x, y) => x - y), { row: () => SUB_ROW }),
  Mul: binaryRule('Mul(A, B): a * b.', 'numeric', mulFn, { row: (d) => (IMUL_DTYPES.has(d) ? undefined : MUL_ROW) }),
  Div: binaryRule('Div(A, B): a / b; integers truncate toward zero.', 'numeric', divFn, { row: (d) => (isFloat(d) ? DIV_ROW : undefined) }),
  Pow: binaryRule('Pow(X, Y): x^y; Y may have another numeric dtype (opset 12+); output has X\'s dtype.', 'numeric', fixed(Math.pow), {
    second: sameOrNumeric,
  }),
  Mod: binaryRule('Mod(A, B) {fmod=0}: remainder with the divisor\'s sign, or C fmod (dividend\'s sign) when fmod=1.', 'numeric', modFn),
  Equal: binaryRule('Equal(A, B) -> bool.', 'any', fixed((x, y) => (x === y ? 1 : 0)), { out: 'bool' }),
  Less: binaryRule('Less(A, B) -> bool.', 'numeric', fixed((x, y) => (x < y ? 1 : 0)), { out: 'bool' }),
  LessOrEqual: binaryRule('LessOrEqual(A, B) -> bool.', 'numeric', fixed((x, y) => (x <= y ? 1 : 0)), { out: 'bool' }),
  Greater: binaryRule('Greater(A, B) -> bool.', 'numeric', fixed((x, y) => (x > y ? 1 : 0)), { out: 'bool' }),
  GreaterOrEqual: binaryRule('GreaterOrEqual(A, B) -> bool.', 'numeric', fixed((x, y) => (x >= y ? 1 : 0)), { out: 'bool' }),
  And: binaryRule('And(A: bool, B: bool) -> bool.', 'bool', fixed((x, y) => (x && y ? 1 : 0))),
  Or: binaryRule('Or(A: bool, B: bool) -> bool.', 'bool', fixed((x, y) => (x || y ? 1 : 0))),
  Xor: binaryRule('Xor(A: bool, B: bool) -> bool.', 'bool', fixed((x, y) => (!x !== !y ? 1 : 0))),
  BitwiseAnd: binaryRule('BitwiseAnd(A, B: integer): a & b.', 'integer', fixed(bitwise64((a, b) => a & b))),
  BitwiseOr: binaryRule('BitwiseOr(A, B: integer): a | b.', 'integer', fixed(bitwise64((a, b) => a | b))),
  BitwiseXor: binaryRule('BitwiseXor(A, B: integer): a ^ b.', 'integer', fixed(bitwise64((a, b) => a ^ b))),
  BitShift: binaryRule("BitShift(X, Y: unsigned) {direction='LEFT'|'RIGHT'}: x << y or x >> y.", 'unsigned', bitShiftFn),
  PRelu,
};
