/**
 * Elementwise op rules: broadcasting (checked against a naive per-index reference), symbolic
 * dims, dtype rules and errors, every opset form, integer semantics and narrow-float rounding.
 * Expected values are hand-computed unless a test says otherwise.
 */
import { IrError, Tensor } from '@paradit/ir';
import {
  expectTensor, f32, float, inferOp, int, randomTensor, ravelBroadcast, runOp, str, t, ty, unravel,
} from './ops-elementwise-helpers';

const B = (values: number[], shape = [values.length]): Tensor => t('bool', shape, values);

describe('broadcasting', () => {
  test('same shape, scalar and row broadcasts', () => {
    expectTensor(runOp('Add', [f32([2, 2], [1, 2, 3, 4]), f32([2, 2], [10, 20, 30, 40])])[0]!, 'f32', [2, 2], [11, 22, 33, 44]);
    expectTensor(runOp('Sub', [f32([3], [1, 2, 3]), f32([], [1])])[0]!, 'f32', [3], [0, 1, 2]);
    expectTensor(runOp('Sub', [f32([], [1]), f32([3], [1, 2, 3])])[0]!, 'f32', [3], [0, -1, -2]);
    expectTensor(runOp('Mul', [f32([2, 3], [1, 2, 3, 4, 5, 6]), f32([3], [1, 10, 100])])[0]!, 'f32', [2, 3], [1, 20, 300, 4, 50, 600]);
    // Outer product: [2,1] + [1,3].
    expectTensor(runOp('Add', [f32([2, 1], [1, 2]), f32([1, 3], [10, 20, 30])])[0]!, 'f32', [2, 3], [11, 21, 31, 12, 22, 32]);
  });

  // Guards the merged-dims planner and the odometer against an independent per-index reference.
  test.each([
    [[2, 1, 3], [1, 4, 1]],
    [[3, 1, 4, 1], [2, 1, 5]],
    [[1, 1, 6], [5, 1, 1]],
    [[2, 3, 4], [3, 1]],
    [[4, 1], [1]],
    [[1, 2, 1, 2, 1], [2, 1, 2, 1, 2]],
  ])('general broadcast %j with %j matches a per-index reference', (sa, sb) => {
    const a = randomTensor(sa, 1);
    const b = randomTensor(sb, 2);
    const got = runOp('Sub', [a, b])[0]!;
    const rank = Math.max(sa.length, sb.length);
    const out: number[] = [];
    for (let d = 0; d < rank; d++) {
      const x = sa[sa.length - rank + d] ?? 1;
      const y = sb[sb.length - rank + d] ?? 1;
      out.push(Math.max(x, y));
    }
    expect([...got.shape]).toEqual(out);
    for (let i = 0; i < got.size; i++) {
      const idx = unravel(i, out);
      expect(got.data[i]).toBe(Math.fround(a.data[ravelBroadcast(idx, sa)]! - b.data[ravelBroadcast(idx, sb)]!));
    }
  });

  test('symbolic dims flow through broadcasting', () => {
    expect(inferOp('Add', [ty('f32', ['B', 1, 4]), ty('f32', [3, 1])])[0]!.shape).toEqual(['B', 3, 4]);
    expect(inferOp('Mul', [ty('f16', ['B', 'S', 64]), ty('f16', [64])])[0]!.shape).toEqual(['B', 'S', 64]);
    expect(inferOp('Where', [ty('bool', [1, 'S']), ty('f32', ['B', 1]), ty('f32', [])])[0]!.shape).toEqual(['B', 'S']);
    expect(inferOp('Equal', [ty('i64', ['N']), ty('i64', [1])])[0]).toEqual({ dtype: 'bool', shape: ['N'] });
  });

  test('incompatible shapes fail naming the node', () => {
    expect(() => inferOp('Add', [ty('f32', [2, 3]), ty('f32', [4])])).toThrow("Add 'n0': shapes [2,3] and [4] cannot be broadcast together");
  });
});

describe('dtype rules', () => {
  test('operands that must agree are checked', () => {
    expect(() => inferOp('Add', [ty('f32', [2]), ty('f16', [2])])).toThrow("Add 'n0': input 1 (B): expected f32 (the dtype of input 0), got f16");
    expect(() => inferOp('Where', [ty('bool', [2]), ty('f32', [2]), ty('i64', [2])])).toThrow('input 2 (Y): expected f32');
    expect(() => inferOp('Max', [ty('f32', [2]), ty('f32', [2]), ty('f64', [2])])).toThrow("Max 'n0': input 2: expected f32");
    expect(() => inferOp('Clip', [ty('i8', [2]), ty('f32', [])], {}, { opset: 13 })).toThrow('input 1 (min): expected i8');
  });

  test('ops reject dtypes outside their class', () => {
    expect(() => inferOp('Sqrt', [ty('i32', [2])])).toThrow("Sqrt 'n0': input 0 (X) must be a float type");
    expect(() => inferOp('And', [ty('f32', [2]), ty('f32', [2])])).toThrow('must be bool, got f32');
    expect(() => inferOp('BitShift', [ty('i32', [2]), ty('i32', [2])], { direction: str('LEFT') })).toThrow('unsigned integer');
    expect(() => inferOp('Where', [ty('f32', [2]), ty('f32', [2]), ty('f32', [2])])).toThrow('input 0 (condition) must be bool');
    try {
      inferOp('Exp', [ty('i64', [1])]);
      throw new Error('unreachable');
    } catch (e) {
      expect(e).toBeInstanceOf(IrError);
      expect((e as IrError).nodeName).toBe('n0');
    }
  });

  test('arity is checked', () => {
    expect(() => inferOp('Add', [ty('f32', [2])])).toThrow("Add 'n0': expected 2 inputs, got 1");
  });
});

describe('rounding of narrow float outputs', () => {
  test('bf16: results round to nearest even', () => {
    // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties to the even mantissa, 1.
    expectTensor(runOp('Add', [t('bf16', [1], [1]), t('bf16', [1], [2 ** -8])])[0]!, 'bf16', [1], [1]);
    // 3 * (1 + 2^-7) = 3.0234375, halfway between 3.015625 (odd) and 3.03125 (even).
    expectTensor(runOp('Mul', [t('bf16', [1], [3]), t('bf16', [1], [1 + 2 ** -7])])[0]!, 'bf16', [1], [3.03125]);
    expectTensor(runOp('Exp', [t('bf16', [1], [1])])[0]!, 'bf16', [1], [2.71875]);
  });

  test('f16: ties to even and overflow to inf', () => {
    // Spacing is 2 in [2048, 4096): 2049 -> 2048, 2051 -> 2052.
    expectTensor(runOp('Add', [t('f16', [2], [2048, 2048]), t('f16', [2], [1, 3])])[0]!, 'f16', [2], [2048, 2052]);
    expectTensor(runOp('Mul', [t('f16', [1], [60000]), t('f16', [1], [2])])[0]!, 'f16', [1], [Infinity]);
  });
});

describe('integer arithmetic', () => {
  test('Div truncates toward zero; division by zero gives 0', () => {
    const a = t('i32', [5], [7, -7, 7, -7, 5]);
    const b = t('i32', [5], [2, 2, -2, -2, 0]);
    expectTensor(runOp('Div', [a, b])[0]!, 'i32', [5], [3, -3, -3, 3, 0]);
    expectTensor(runOp('Div', [t('u8', [2], [255, 7]), t('u8', [2], [2, 3])])[0]!, 'u8', [2], [127, 2]);
  });

  test('results wrap into the dtype', () => {
    expectTensor(runOp('Add', [t('i32', [1], [2147483647]), t('i32', [1], [1])])[0]!, 'i32', [1], [-2147483648]);
    expectTensor(runOp('Mul', [t('i32', [1], [65536]), t('i32', [1], [65537])])[0]!, 'i32', [1], [65536]);
    expectTensor(runOp('Add', [t('u8', [2], [200, 5]), t('u8', [2], [100, 6])])[0]!, 'u8', [2], [44, 11]);
    expectTensor(runOp('Sub', [t('u8', [1], [1]), t('u8', [1], [2])])[0]!, 'u8', [1], [255]);
  });

  test('Mod: divisor sign by default, dividend sign with fmod=1', () => {
    const a = t('i32', [6], [-4, 7, 5, 4, -7, 8]);
    const b = t('i32', [6], [2, -3, 8, -2, 3, 5]);
    expectTensor(runOp('Mod', [a, b])[0]!, 'i32', [6], [0, -2, 5, 0, 2, 3]);
    expectTensor(runOp('Mod', [a, b], { fmod: int(1) })[0]!, 'i32', [6], [0, 1, 5, 0, -1, 3]);
    expectTensor(runOp('Mod', [f32([2], [-4.5, 7.5]), f32([2], [2, -2])], { fmod: int(1) })[0]!, 'f32', [2], [-0.5, 1.5]);
    expect(() => inferOp('Mod', [ty('f32', [2]), ty('f32', [2])])).toThrow("Mod 'n0': fmod=0 is only defined for integer inputs");
  });

  test('Pow keeps the base dtype; mixed operands only from opset 12', () => {
    expectTensor(runOp('Pow', [t('i32', [3], [2, 3, 4]), f32([3], [2, 0.5, -1])], {}, { opset: 15 })[0]!, 'i32', [3], [4, 1, 0]);
    expectTensor(runOp('Pow', [f32([2], [2, 9]), t('i64', [2], [3, 2])], {}, { opset: 15 })[0]!, 'f32', [2], [8, 81]);
    expect(() => inferOp('Pow', [ty('f32', [2]), ty('i64', [2])], {}, { opset: 11 })).toThrow('input 1 (B): expected f32');
  });

  test('bitwise ops on two\'s-complement 64-bit patterns', () => {
    const a = t('i64', [3], [-1, -6, 2 ** 40 + 5]);
    const b = t('i64', [3], [5, 3, 2 ** 40 + 3]);
    expectTensor(runOp('BitwiseAnd', [a, b])[0]!, 'i64', [3], [5, 2, 2 ** 40 + 1]);
    expectTensor(runOp('BitwiseOr', [a, b])[0]!, 'i64', [3], [-1, -5, 2 ** 40 + 7]);
    expectTensor(runOp('BitwiseXor', [a, b])[0]!, 'i64', [3], [-6, -7, 6]);
    expectTensor(runOp('BitwiseNot', [t('u8', [2], [5, 0])])[0]!, 'u8', [2], [250, 255]);
    expectTensor(runOp('BitwiseNot', [t('i32', [2], [5, -1])])[0]!, 'i32', [2], [-6, 0]);
    expectTensor(runOp('BitwiseAnd', [t('u32', [1], [0xffffffff]), t('u32', [1], [0x80000001])])[0]!, 'u32', [1], [0x80000001]);
  });

  test('BitShift wraps left shifts into the width', () => {
    const x = t('u8', [3], [200, 1, 16]);
    const y = t('u8', [3], [1, 7, 2]);
    expectTensor(runOp('BitShift', [x, y], { direction: str('LEFT') })[0]!, 'u8', [3], [144, 128, 64]);
    expectTensor(runOp('BitShift', [x, y], { direction: str('RIGHT') })[0]!, 'u8', [3], [100, 0, 4]);
    expectTensor(runOp('BitShift', [t('u64', [2], [1, 3]), t('u64', [2], [63, 63])], { direction: str('LEFT') })[0]!, 'u64', [2], [2 ** 63, 2 ** 63]);
    expect(() => inferOp('BitShift', [ty('u8', [1]), ty('u8', [1])], { direction: str('UP') })).toThrow("'direction' must be 'LEFT' or 'RIGHT'");
  });
});

describe('comparisons and logic output bool', () => {
  test('comparisons broadcast', () => {
    const a = f32([2, 2], [1, 2, 3, 4]);
    const b = f32([2], [2, 3]);
    expectTensor(runOp('Less', [a, b])[0]!, 'bool', [2, 2], [1, 1, 0, 0]);
    expectTensor(runOp('LessOrEqual', [a, b])[0]!, 'bool', [2, 2], [1, 1, 0, 0]);
    expectTensor(runOp('Greater', [a, b])[0]!, 'bool', [2, 2], [0, 0, 1, 1]);
    expectTensor(runOp('GreaterOrEqual', [a, f32([], [3])])[0]!, 'bool', [2, 2], [0, 0, 1, 1]);
    expectTensor(runOp('Equal', [t('i64', [3], [1, 2, 3]), t('i64', [1], [2])])[0]!, 'bool', [3], [0, 1, 0]);
    expectTensor(runOp('Equal', [f32([1], [NaN]), f32([1], [NaN])])[0]!, 'bool', [1], [0]);
  });

  test('And / Or / Xor / Not', () => {
    const a = B([1, 1, 0, 0]);
    const b = B([1, 0, 1, 0]);
    expectTensor(runOp('And', [a, b])[0]!, 'bool', [4], [1, 0, 0, 0]);
    expectTensor(runOp('Or', [a, b])[0]!, 'bool', [4], [1, 1, 1, 0]);
    expectTensor(runOp('Xor', [a, b])[0]!, 'bool', [4], [0, 1, 1, 0]);
    expectTensor(runOp('Not', [a])[0]!, 'bool', [4], [0, 0, 1, 1]);
  });
});

describe('unary math and activations', () => {
  const x = f32([5], [-2, -0.5, 0, 0.5, 2]);

  test('Erf and Gelu (exact and tanh)', () => {
    // Reference values of erf from tables (Abramowitz & Stegun 7.1).
    expectTensor(runOp('Erf', [f32([4], [0.5, -1, 2, 3.5])])[0]!, 'f32', [4], [0.5204998778, -0.8427007929, 0.9953222650, 0.9999992569], 1e-7);
    // gelu(x) = x Phi(x); Phi(2) = 0.97724986805, Phi(0.5) = 0.69146246127.
    expectTensor(runOp('Gelu', [x], {}, { opset: 20 })[0]!, 'f32', [5], [-0.0455002639, -0.1542687694, 0, 0.3457312306, 1.9544997361], 1e-7);
    // tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    const tanhRef = [-2, -0.5, 0, 0.5, 2].map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
    expectTensor(runOp('Gelu', [x], { approximate: str('tanh') }, { opset: 20 })[0]!, 'f32', [5], tanhRef, 1e-7);
    expect(tanhRef[4]).toBeCloseTo(1.9545976, 6);
    expect(() => inferOp('Gelu', [ty('f32', [1])], { approximate: str('fast') })).toThrow("Gelu 'n0': attribute 'approximate' must be 'none' or 'tanh', got 'fast'");
  });

  test('Round halves to even; Sign, Floor, Ceil, Abs, Neg', () => {
    expectTensor(runOp('Round', [f32([7], [0.5, 1.5, 2.5, -0.5, -1.5, 2.4, -2.6])])[0]!, 'f32', [7], [0, 2, 2, -0, -2, 2, -3]);
    expectTensor(runOp('Sign', [f32([4], [-3, 0, 2, NaN])])[0]!, 'f32', [4], [-1, 0, 1, NaN]);
    expectTensor(runOp('Floor', [f32([2], [-1.5, 1.5])])[0]!, 'f32', [2], [-2, 1]);
    expectTensor(runOp('Ceil', [f32([2], [-1.5, 1.5])])[0]!, 'f32', [2], [-1, 2]);
    expectTensor(runOp('Abs', [t('i8', [2], [-128, -3])])[0]!, 'i8', [2], [-128, 3]); // |-128| wraps, as in C
    expectTensor(runOp('Neg', [t('i32', [2], [5, -7])])[0]!, 'i32', [2], [-5, 7]);
  });

  test('activations with attributes', () => {
    expectTensor(runOp('Relu', [x])[0]!, 'f32', [5], [0, 0, 0, 0.5, 2]);
    expectTensor(runOp('LeakyRelu', [x], { alpha: float(0.1) })[0]!, 'f32', [5], [-0.2, -0.05, 0, 0.5, 2], 1e-7);
    expectTensor(runOp('ThresholdedRelu', [x], { alpha: float(0.5) })[0]!, 'f32', [5], [0, 0, 0, 0, 2]);
    expectTensor(runOp('HardSigmoid', [x])[0]!, 'f32', [5], [0.1, 0.4, 0.5, 0.6, 0.9], 1e-7);
    expectTensor(runOp('HardSwish', [f32([4], [-4, -1, 1, 4])])[0]!, 'f32', [4], [-0, -1 / 3, 2 / 3, 4], 1e-7);
    expectTensor(runOp('Elu', [x], { alpha: float(2) })[0]!, 'f32', [5], [2 * (Math.exp(-2) - 1), 2 * (Math.exp(-0.5) - 1), 0, 0.5, 2], 1e-7);
    expectTensor(runOp('Celu', [f32([2], [-1, 1])], { alpha: float(2) })[0]!, 'f32', [2], [2 * (Math.exp(-0.5) - 1), 1], 1e-7);
    const selu = runOp('Selu', [f32([2], [-1, 1])])[0]!;
    expectTensor(selu, 'f32', [2], [1.0507009873554805 * 1.6732632423543772 * (Math.exp(-1) - 1), 1.0507009873554805], 1e-6);
    expectTensor(runOp('Sigmoid', [f32([3], [0, -1000, 1000])])[0]!, 'f32', [3], [0.5, 0, 1]);
    expectTensor(runOp('Softplus', [f32([3], [0, 1000, -1000])])[0]!, 'f32', [3], [Math.fround(Math.LN2), 1000, 0]);
    expectTensor(runOp('Softsign', [f32([2], [1, -3])])[0]!, 'f32', [2], [0.5, -0.75]);
    expectTensor(runOp('Mish', [f32([1], [1])])[0]!, 'f32', [1], [Math.tanh(Math.log(1 + Math.E))], 1e-7);
  });

  test('IsNaN and IsInf with detect flags', () => {
    const v = f32([4], [Infinity, -Infinity, NaN, 1]);
    expectTensor(runOp('IsNaN', [v])[0]!, 'bool', [4], [0, 0, 1, 0]);
    expectTensor(runOp('IsInf', [v])[0]!, 'bool', [4], [1, 1, 0, 0]);
    expectTensor(runOp('IsInf', [v], { detect_positive: int(0) })[0]!, 'bool', [4], [0, 1, 0, 0]);
    expectTensor(runOp('IsInf', [v], { detect_negative: int(0) })[0]!, 'bool', [4], [1, 0, 0, 0]);
  });

  test('PRelu broadcasts the slope to X only', () => {
    const xs = f32([2, 2], [-1, 2, -3, 4]);
    expectTensor(runOp('PRelu', [xs, f32([2], [0.5, 0.25])])[0]!, 'f32', [2, 2], [-0.5, 2, -1.5, 4]);
    expect(() => inferOp('PRelu', [ty('f32', [2]), ty('f32', [3, 2])])).toThrow("PRelu 'n0': slope [3,2] must broadcast to X [2]");
  });
});

describe('variadic and selection ops', () => {
  test('Max / Min / Sum / Mean broadcast any number of inputs', () => {
    const a = f32([3], [1, 5, 3]);
    const b = f32([2, 1], [2, 4]);
    const c = f32([], [3]);
    expectTensor(runOp('Max', [a, b, c])[0]!, 'f32', [2, 3], [3, 5, 3, 4, 5, 4]);
    expectTensor(runOp('Min', [a, b, c])[0]!, 'f32', [2, 3], [1, 2, 2, 1, 3, 3]);
    expectTensor(runOp('Sum', [a, b, c])[0]!, 'f32', [2, 3], [6, 10, 8, 8, 12, 10]);
    expectTensor(runOp('Mean', [a, b, c])[0]!, 'f32', [2, 3], [2, 10 / 3, 8 / 3, 8 / 3, 4, 10 / 3], 1e-6);
    expectTensor(runOp('Max', [a])[0]!, 'f32', [3], [1, 5, 3]);
    expectTensor(runOp('Max', [f32([2], [NaN, 1]), f32([2], [1, NaN])])[0]!, 'f32', [2], [NaN, NaN]);
    expectTensor(runOp('Min', [t('u8', [2], [3, 200]), t('u8', [2], [7, 100])])[0]!, 'u8', [2], [3, 100]);
  });

  test('Where broadcasts its three inputs', () => {
    const cond = B([1, 0], [2, 1]);
    expectTensor(runOp('Where', [cond, f32([1, 3], [1, 2, 3]), f32([], [-1])])[0]!, 'f32', [2, 3], [1, 2, 3, -1, -1, -1]);
    expectTensor(runOp('Where', [B([1, 0, 1]), t('i64', [3], [1, 2, 3]), t('i64', [3], [7, 8, 9])])[0]!, 'i64', [3], [1, 8, 3]);
  });

  test('Clip: attributes before opset 11, inputs after', () => {
    const v = f32([4], [-3, -1, 1, 3]);
    expectTensor(runOp('Clip', [v], { min: float(-2), max: float(2) }, { opset: 6 })[0]!, 'f32', [4], [-2, -1, 1, 2]);
    expectTensor(runOp('Clip', [v], { max: float(0) }, { opset: 6 })[0]!, 'f32', [4], [-3, -1, 0, 0]);
    expectTensor(runOp('Clip', [v, f32([], [-2]), f32([], [2])], {}, { opset: 13 })[0]!, 'f32', [4], [-2, -1, 1, 2]);
    expectTensor(runOp('Clip', [v, null, f32([], [0])], {}, { opset: 13 })[0]!, 'f32', [4], [-3, -1, 0, 0]);
    expectTensor(runOp('Clip', [t('i8', [3], [-100, 0, 100]), t('i8', [], [-5])], {}, { opset: 13 })[0]!, 'i8', [3], [-5, 0, 100]);
    // min > max: every value becomes max (numpy.clip).
    expectTensor(runOp('Clip', [v, f32([], [2]), f32([], [1])], {}, { opset: 13 })[0]!, 'f32', [4], [1, 1, 1, 1]);
    expect(() => inferOp('Clip', [ty('f32', [4]), ty('f32', [2])], {}, { opset: 13 })).toThrow('input 1 (min) must be a scalar');
  });
});

describe('Cast and CastLike', () => {
  const to = (code: number) => ({ to: int(code) });

  test('float to integer truncates, then wraps', () => {
    const v = f32([5], [-1.7, 2.9, 3e9, NaN, -0.5]);
    expectTensor(runOp('Cast', [v], to(6))[0]!, 'i32', [5], [-1, 2, 3e9 - 2 ** 32, 0, 0]);
    expectTensor(runOp('Cast', [f32([3], [300, -1, 255.9])], to(2))[0]!, 'u8', [3], [44, 255, 255]);
    expectTensor(runOp('Cast', [t('i64', [2], [70000, -1])], to(5))[0]!, 'i16', [2], [4464, -1]);
  });

  test('to and from bool', () => {
    expectTensor(runOp('Cast', [f32([4], [0, -0, 0.5, NaN])], to(9))[0]!, 'bool', [4], [0, 0, 1, 1]);
    expectTensor(runOp('Cast', [B([1, 0])], to(1))[0]!, 'f32', [2], [1, 0]);
    expectTensor(runOp('Cast', [t('i32', [2], [0, -4])], to(9))[0]!, 'bool', [2], [0, 1]);
  });

  test('narrow floats round to nearest even', () => {
    expectTensor(runOp('Cast', [f32([3], [65520, 1 + 2 ** -11, 1 + 3 * 2 ** -11])], to(10))[0]!, 'f16', [3], [Infinity, 1, 1 + 2 ** -9]);
    expectTensor(runOp('Cast', [f32([2], [1 + 2 ** -8, 1 + 3 * 2 ** -8])], to(16))[0]!, 'bf16', [2], [1, 1 + 2 ** -6]);
    expectTensor(runOp('Cast', [t('bf16', [1], [1.5])], to(11))[0]!, 'f64', [1], [1.5]);
  });

  test('fp8 saturates by default, overflows when saturate=0', () => {
    const v = f32([3], [1000, -1000, 0.3]);
    expectTensor(runOp('Cast', [v], to(17), { opset: 19 })[0]!, 'f8e4m3fn', [3], [448, -448, 0.3125]);
    expectTensor(runOp('Cast', [v], { to: int(17), saturate: int(0) }, { opset: 19 })[0]!, 'f8e4m3fn', [3], [NaN, NaN, 0.3125]);
    expectTensor(runOp('Cast', [f32([1], [1e6])], to(19), { opset: 19 })[0]!, 'f8e5m2', [1], [57344]);
    expectTensor(runOp('Cast', [f32([1], [1e6])], { to: int(19), saturate: int(0) }, { opset: 19 })[0]!, 'f8e5m2', [1], [Infinity]);
  });

  test('unsupported targets fail clearly', () => {
    expect(() => inferOp('Cast', [ty('f32', [1])], to(8))).toThrow("Cast 'n0': cannot cast to STRING (attribute to=8)");
    try {
      inferOp('Cast', [ty('f32', [1])], to(8));
    } catch (e) {
      expect((e as IrError).code).toBe('E_UNSUPPORTED');
    }
    expect(() => inferOp('Cast', [ty('f32', [1])])).toThrow("missing required attribute 'to'");
  });

  test('CastLike takes the dtype of its second input', () => {
    expectTensor(runOp('CastLike', [f32([2], [1.9, -2.5]), t('i64', [0], [])])[0]!, 'i64', [2], [1, -2]);
    expect(inferOp('CastLike', [ty('f32', ['B']), ty('f16', [1])])[0]).toEqual({ dtype: 'f16', shape: ['B'] });
  });
});

describe('Identity and Dropout', () => {
  test('Identity passes its input through', () => {
    const v = t('i64', [2], [1, 2]);
    expect(runOp('Identity', [v])[0]).toBe(v);
  });

  test('Dropout at inference is the identity with an all-true mask', () => {
    const v = f32([3], [1, 2, 3]);
    const [y, mask] = runOp('Dropout', [v], { ratio: float(0.3) }, { opset: 7, numOutputs: 2 });
    expectTensor(y!, 'f32', [3], [1, 2, 3]);
    expectTensor(mask!, 'f32', [3], [1, 1, 1]); // opset < 10: mask has the input's dtype
    const [y2, mask2] = runOp('Dropout', [v, f32([], [0.5])], {}, { opset: 13, numOutputs: 2, consts: [1] });
    expectTensor(y2!, 'f32', [3], [1, 2, 3]);
    expectTensor(mask2!, 'bool', [3], [1, 1, 1]);
    const [y3] = runOp('Dropout', [v, f32([], [0]), B([1], [])], {}, { opset: 13, consts: [1, 2] });
    expectTensor(y3!, 'f32', [3], [1, 2, 3]);
  });

  test('training-mode Dropout that would drop values is rejected', () => {
    expect(() => runOp('Dropout', [f32([1], [1]), f32([], [0.5]), B([1], [])], {}, { opset: 13, consts: [1, 2] })).toThrow(
      "Dropout 'n0': training_mode is true with ratio 0.5",
    );
  });
});
