/**
 * The fp8 ops (ops/paradit-fp8.ts): e4m3 rounding against the exact dtype table, per-row scales
 * with their edge cases (zero row, NaN, Inf), linear_fp8 on a 2x3 . 3x2 example quantized by hand,
 * shape errors, and the printer/parser round trip of a module that uses both ops.
 */
import {
  E4M3_MAX, GraphBuilder, Module, Tensor, e4m3Bits, f32ToFp8Bits, fp8BitsToF32, fp8RowScale, interpret, parseModule, printModule, quantizeWeightColumns, roundE4m3, roundTo,
  mulberry32, structurallyEqual, tensorType, verifyModule,
} from '@paradit/ir';
import type { AttrValue } from '@paradit/ir';

const i = (value: number): AttrValue => ({ kind: 'int', value });

/** x [2,3] (graph input) -> quantize_fp8_rows -> linear_fp8 with w [3,2] quantized at build time. */
function fp8Linear(w: Tensor, bias: Tensor | undefined, oDtype: number): Module {
  const b = new GraphBuilder(18);
  const x = b.input('x', tensorType('f32', [2, 3]));
  const [q, s] = b.add('quantize_fp8_rows', [x], {}, { name: 'quant', numOutputs: 2 });
  const { wq, ws } = quantizeWeightColumns(w, false);
  const ins = [q!, s!, b.constant(wq, 'wq'), b.constant(ws, 'ws'), ...(bias ? [b.constant(bias, 'bias')] : [])];
  const [y] = b.add('linear_fp8', ins, { transB: i(1), oDtype: i(oDtype) }, { name: 'lin' });
  return new Module(b.build([y!]), { '': 18 });
}

const W = Tensor.from('f32', [3, 2], [1, 0.5, 2, -1, -3, 0.25]);

describe('roundE4m3', () => {
  it('equals the exact f8e4m3fn table rounding (ties to even, saturating) on a dense sweep', () => {
    const xs: number[] = [0, -0, 448, -448, 449, 464, 465, 1e6, -1e6, 2 ** -9, 2 ** -10, 3 * 2 ** -11, 2 ** -6, 0.1, 14.93, 44.8, 240, 248, 232];
    for (let k = 0; k < 1500; k++) xs.push(((k * 7919) % 4000) / 8.9 - 224, Math.fround(1.37 ** ((k % 60) - 30)) * (k % 2 ? -1 : 1));
    for (const x of xs) expect(Object.is(roundE4m3(x), roundTo('f8e4m3fn', x)) || roundE4m3(x) === roundTo('f8e4m3fn', x)).toBe(true);
    expect(roundE4m3(NaN)).toBeNaN();
  });
  it('hand-checked values', () => {
    expect(roundE4m3(14.9333)).toBe(15); // step 1 in [8,16)
    expect(roundE4m3(-44.8)).toBe(-44); // step 4 in [32,64)
    expect(roundE4m3(298.67)).toBe(288); // step 32 in [256,448]
    expect(roundE4m3(40)).toBe(40); // exact
    expect(roundE4m3(42)).toBe(40); // tie between 40 (mantissa 010) and 44 (011): even
    expect(roundE4m3(46)).toBe(48); // tie between 44 (011) and 48 (100): even
  });
});

describe('e4m3Bits', () => {
  it('inverts the code table for every finite code, signed zero included, and rounds other values', () => {
    for (let c = 0; c < 256; c++) {
      const v = fp8BitsToF32('f8e4m3fn', c);
      if (!Number.isNaN(v)) expect(e4m3Bits(v)).toBe(c);
    }
    expect(e4m3Bits(14.9333)).toBe(f32ToFp8Bits('f8e4m3fn', 14.9333));
    expect(e4m3Bits(NaN)).toBe(0x7f);
  });
});

describe('fp8RowScale', () => {
  it('is amax/448 in fp32, 1 for a zero row, NaN for non-finite rows', () => {
    expect(fp8RowScale(2)).toBe(Math.fround(2 / 448));
    expect(fp8RowScale(0)).toBe(1);
    expect(fp8RowScale(NaN)).toBeNaN();
    expect(fp8RowScale(Infinity)).toBeNaN();
  });
});

describe('quantize_fp8_rows', () => {
  it('quantizes each row with its own scale (hand-computed)', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [2, 3]));
    const [q, s] = b.add('quantize_fp8_rows', [x], {}, { name: 'quant', numOutputs: 2 });
    const m = new Module(b.build([q!, s!]), { '': 18 });
    const [qt, st] = interpret(m, [Tensor.from('f32', [2, 3], [1, -2, 0.5, 3, 0.1, -0.3])]);
    expect(qt!.dtype).toBe('f8e4m3fn');
    expect(st!.shape).toEqual([2, 1]);
    // row 0: amax 2 -> 1/s = 224, -448, 112 (all exact e4m3); row 1: amax 3 -> 448, 14.93 -> 15, -44.8 -> -44
    expect(Array.from(qt!.data)).toEqual([224, -448, 112, 448, 15, -44]);
    expect(Array.from(st!.data)).toEqual([Math.fround(2 / 448), Math.fround(3 / 448)]);
  });
  it('zero rows get scale 1 (no NaN); a NaN or Inf poisons only its row', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [3, 2]));
    const [q, s] = b.add('quantize_fp8_rows', [x], {}, { name: 'quant', numOutputs: 2 });
    const m = new Module(b.build([q!, s!]), { '': 18 });
    const [qt, st] = interpret(m, [Tensor.from('f32', [3, 2], [0, 0, NaN, 1, Infinity, 2])]);
    expect(Array.from(qt!.data.slice(0, 2))).toEqual([0, 0]);
    expect(st!.data[0]).toBe(1);
    expect(st!.data[1]).toBeNaN();
    expect(st!.data[2]).toBeNaN();
    expect(Array.from(qt!.data.slice(2)).every(Number.isNaN)).toBe(true);
  });
});

describe('linear_fp8', () => {
  it('computes (Xq . Wq) * s_m * ws_n on a hand-quantized 2x3 . 3x2 example', () => {
    const x = Tensor.from('f32', [2, 3], [1, -2, 0.5, 3, 0.1, -0.3]);
    const [y] = interpret(fp8Linear(W, undefined, 1), [x]);
    // Wq (per column): col 0 [1,2,-3] amax 3 -> [144, 288, -448]; col 1 [0.5,-1,0.25] amax 1 -> [224,-448,112].
    const s0 = 2 / 448, s1 = 3 / 448, w0 = 3 / 448, w1 = 1 / 448;
    const want = [
      (224 * 144 - 448 * 288 - 112 * 448) * s0 * w0, // -4.3929 (exact product -4.5)
      (224 * 224 + 448 * 448 + 112 * 112) * s0 * w1, // 2.625 (exact)
      (448 * 144 + 15 * 288 + 44 * 448) * s1 * w0, // 3.9704 (exact 4.1)
      (448 * 224 - 15 * 448 - 44 * 112) * s1 * w1, // 1.3259 (exact 1.325)
    ];
    expect(y!.dtype).toBe('f32');
    Array.from(y!.data).forEach((v, k) => expect(v).toBeCloseTo(want[k]!, 5));
  });
  it('adds the bias and rounds once to oDtype (bf16 by default)', () => {
    const x = Tensor.from('f32', [2, 3], [1, -2, 0.5, 0, 0, 0]);
    const [y] = interpret(fp8Linear(W, Tensor.from('f32', [2], [0.5, -1]), 16), [x]);
    expect(y!.dtype).toBe('bf16');
    expect(y!.data[1]).toBe(roundTo('bf16', 2.625 - 1));
    // the zero row: scale 1, q = 0, y = bias exactly
    expect(Array.from(y!.data.slice(2))).toEqual([0.5, -1]);
  });
  it('rejects operands that are not e4m3 / f32 scales, with expected vs got', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [2, 3]));
    const s = b.input('s', tensorType('f32', [2, 1]));
    const w = b.input('w', tensorType('f8e4m3fn', [2, 3]));
    const ws = b.input('ws', tensorType('f32', [2]));
    expect(() => b.add('linear_fp8', [x, s, w, ws], {}, { name: 'bad' })).toThrow(/linear_fp8 'bad'.*q and wq must be f8e4m3fn, got f32 and f8e4m3fn/);
    const q = b.input('q', tensorType('f8e4m3fn', [2, 3]));
    expect(() => b.add('linear_fp8', [q, s, w, b.input('ws2', tensorType('f32', [3]))], {}, { name: 'bad2' })).toThrow(/ws must be \[N\] = \[2\], got \[3\]/);
    expect(() => b.add('linear_fp8', [q, b.input('s2', tensorType('f32', [3, 1])), w, ws], {}, { name: 'bad3' })).toThrow(/s must be \[...,1\]/);
  });
  it('round-trips through the printer and parser, and verifies', () => {
    const m = fp8Linear(W, Tensor.from('f32', [2], [0.5, -1]), 16);
    expect(() => verifyModule(m)).not.toThrow();
    const text = printModule(m);
    expect(text).toContain('quantize_fp8_rows');
    expect(text).toContain('f8e4m3fn[2,3]');
    const back = parseModule(text);
    expect(printModule(back)).toBe(text);
    expect(structurallyEqual(back, m)).toBe(true);
    const x = Tensor.from('f32', [2, 3], [1, -2, 0.5, 3, 0.1, -0.3]);
    expect(Array.from(interpret(back, [x])[0]!.data)).toEqual(Array.from(interpret(m, [x])[0]!.data));
  });
  it('one layer costs the rel. L2 docs/fp8.md derives (~0.0265 per element, ~0.0375 per K-term dot product)', () => {
    // Gaussian-like x [16,256] and w [256,32] (sum of 6 uniforms), fp32 reference product.
    const r = mulberry32(3);
    const g = (): number => r() + r() + r() + r() + r() + r() - 3;
    const [M, K, N] = [16, 256, 32];
    const x = Tensor.from('f32', [M, K], Array.from({ length: M * K }, g));
    const w = Tensor.from('f32', [K, N], Array.from({ length: K * N }, g));
    const b = new GraphBuilder(18);
    const xi = b.input('x', tensorType('f32', [M, K]));
    const [q, s] = b.add('quantize_fp8_rows', [xi], {}, { name: 'quant', numOutputs: 2 });
    const { wq, ws } = quantizeWeightColumns(w, false);
    const [y] = b.add('linear_fp8', [q!, s!, b.constant(wq), b.constant(ws)], { oDtype: i(1) }, { name: 'lin' });
    const [qt, st, yt] = interpret(new Module(b.build([q!, s!, y!]), { '': 18 }), [x]);
    const rel = (got: (k: number) => number, want: (k: number) => number, n: number): number => {
      let num = 0, den = 0;
      for (let k = 0; k < n; k++) {
        num += (got(k) - want(k)) ** 2;
        den += want(k) ** 2;
      }
      return Math.sqrt(num / den);
    };
    const elem = rel((k) => qt!.data[k]! * st!.data[Math.floor(k / K)]!, (k) => x.data[k]!, M * K);
    const ref = new Float64Array(M * N);
    for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) ref[m * N + n] = ref[m * N + n]! + x.data[m * K + k]! * w.data[k * N + n]!;
    const dot = rel((k) => yt!.data[k]!, (k) => ref[k]!, M * N);
    expect(elem).toBeGreaterThan(0.024);
    expect(elem).toBeLessThan(0.029);
    expect(dot).toBeGreaterThan(0.032);
    expect(dot).toBeLessThan(0.043);
  });
  it('E4M3_MAX is the largest finite e4m3fn value', () => {
    expect(roundTo('f8e4m3fn', 1e9)).toBe(E4M3_MAX);
  });
});
