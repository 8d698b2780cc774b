/**
 * Conv, ConvTranspose and the pooling ops against naive N-D loops written here (direct
 * cross-correlation, scatter for the transpose) and hand-computed windows.
 */
import { Tensor } from '../src';
import { expectClose, inferOp, int, ints, rand, runOp, str, tt } from './ops-nn-helpers';

/** All multi-indices of a shape, row-major. */
function* indices(shape: readonly number[]): Generator<number[]> {
  const n = shape.reduce((a, b) => a * b, 1);
  for (let f = 0; f < n; f++) {
    const idx: number[] = [];
    let r = f;
    for (let i = shape.length - 1; i >= 0; i--) {
      idx.unshift(r % shape[i]!);
      r = Math.floor(r / shape[i]!);
    }
    yield idx;
  }
}
const flat = (shape: readonly number[], idx: readonly number[]): number => idx.reduce((o, v, i) => o * shape[i]! + v, 0);

interface Geo {
  strides: number[];
  dilations: number[];
  padsB: number[];
  group: number;
}

/** Direct convolution: y[n,m,o] = b[m] + sum_{c in group, k} x[n,c,o*s - p + k*d] w[m,c,k]. */
function naiveConv(x: Tensor, w: Tensor, b: Tensor | undefined, g: Geo, outSpatial: number[]): number[] {
  const [N, C] = x.shape as [number, number];
  const M = w.shape[0]!;
  const Cg = C / g.group;
  const Mg = M / g.group;
  const ks = w.shape.slice(2);
  const xs = x.shape.slice(2);
  const out: number[] = [];
  for (const [n, m, ...o] of indices([N, M, ...outSpatial])) {
    const grp = Math.floor(m! / Mg);
    let s = b ? b.data[m!]! : 0;
    for (let c = 0; c < Cg; c++) {
      for (const k of indices(ks)) {
        const pos = o.map((oi, i) => oi * g.strides[i]! - g.padsB[i]! + k[i]! * g.dilations[i]!);
        if (pos.some((p, i) => p < 0 || p >= xs[i]!)) continue;
        s += x.data[flat(x.shape, [n!, grp * Cg + c, ...pos])]! * w.data[flat(w.shape, [m!, c, ...k])]!;
      }
    }
    out.push(s);
  }
  return out;
}

/** Scatter form of the transposed convolution: y[n, m, i*s - p + k*d] += x[n,c,i] w[c,m',k]. */
function naiveConvT(x: Tensor, w: Tensor, g: Geo, outSpatial: number[]): number[] {
  const [N, C] = x.shape as [number, number];
  const Mg = w.shape[1]!;
  const M = Mg * g.group;
  const Cg = C / g.group;
  const outShape = [N, M, ...outSpatial];
  const y = new Array<number>(outShape.reduce((a, b) => a * b, 1)).fill(0);
  for (const [n, c, ...i] of indices(x.shape)) {
    const grp = Math.floor(c! / Cg);
    for (let mm = 0; mm < Mg; mm++) {
      for (const k of indices(w.shape.slice(2))) {
        const o = i.map((ii, d) => ii * g.strides[d]! - g.padsB[d]! + k[d]! * g.dilations[d]!);
        if (o.some((v, d) => v < 0 || v >= outSpatial[d]!)) continue;
        y[flat(outShape, [n!, grp * Mg + mm, ...o])]! += x.data[flat(x.shape, [n!, c!, ...i])]! * w.data[flat(w.shape, [c!, mm, ...k])]!;
      }
    }
  }
  return y;
}

describe('Conv', () => {
  test('2-D with groups, strides, dilations and asymmetric pads', () => {
    const x = rand([2, 4, 9, 8], 1);
    const w = rand([6, 2, 3, 2], 2);
    const b = rand([6], 3);
    const attrs = { group: int(2), strides: ints([2, 3]), dilations: ints([2, 1]), pads: ints([1, 0, 2, 1]) };
    const [y] = runOp('Conv', [x, w, b], attrs);
    // out = floor((9 + 1 + 2 - 5) / 2) + 1 = 4; floor((8 + 0 + 1 - 2) / 3) + 1 = 3
    const want = naiveConv(x, w, b, { strides: [2, 3], dilations: [2, 1], padsB: [1, 0], group: 2 }, [4, 3]);
    expectClose(y!, want, [2, 6, 4, 3]);
  });

  test('DiT patch embedding (stride = kernel) and a 1x1 conv', () => {
    const x = rand([1, 4, 8, 8], 4);
    const w = rand([6, 4, 2, 2], 5);
    const b = rand([6], 6);
    const [y] = runOp('Conv', [x, w, b], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) });
    expectClose(y!, naiveConv(x, w, b, { strides: [2, 2], dilations: [1, 1], padsB: [0, 0], group: 1 }, [4, 4]), [1, 6, 4, 4]);
    const w1 = rand([3, 4, 1, 1], 7);
    const [y1] = runOp('Conv', [x, w1]);
    expectClose(y1!, naiveConv(x, w1, undefined, { strides: [1, 1], dilations: [1, 1], padsB: [0, 0], group: 1 }, [8, 8]), [1, 3, 8, 8]);
  });

  test('1-D SAME_UPPER / SAME_LOWER and 3-D', () => {
    const x = rand([1, 3, 10], 8);
    const w = rand([4, 3, 4], 9);
    // SAME, stride 3: out = ceil(10/3) = 4; total pad = 3*3 + 4 - 10 = 3 -> upper (1, 2), lower (2, 1)
    const [u] = runOp('Conv', [x, w], { auto_pad: str('SAME_UPPER'), strides: ints([3]) });
    expectClose(u!, naiveConv(x, w, undefined, { strides: [3], dilations: [1], padsB: [1], group: 1 }, [4]), [1, 4, 4]);
    const [l] = runOp('Conv', [x, w], { auto_pad: str('SAME_LOWER'), strides: ints([3]) });
    expectClose(l!, naiveConv(x, w, undefined, { strides: [3], dilations: [1], padsB: [2], group: 1 }, [4]), [1, 4, 4]);
    const x3 = rand([1, 2, 4, 5, 6], 10);
    const w3 = rand([3, 2, 2, 3, 2], 11);
    const [y3] = runOp('Conv', [x3, w3], { pads: ints([1, 0, 1, 0, 1, 1]) });
    expectClose(y3!, naiveConv(x3, w3, undefined, { strides: [1, 1, 1], dilations: [1, 1, 1], padsB: [1, 0, 1], group: 1 }, [4, 4, 7]), [1, 3, 4, 4, 7]);
  });

  test('hand-computed 3x3 box filter with padding', () => {
    const x = Tensor.from('f32', [1, 1, 3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const w = Tensor.from('f32', [1, 1, 3, 3], new Array<number>(9).fill(1));
    const [y] = runOp('Conv', [x, w], { pads: ints([1, 1, 1, 1]) });
    expect(y!.toArray()).toEqual([12, 21, 16, 27, 45, 33, 24, 39, 28]);
  });

  test('symbolic batch flows; errors name expected and got', () => {
    expect(inferOp('Conv', [tt('f32', ['N', 4, 32, 32]), tt('f32', [8, 4, 2, 2])], { strides: ints([2, 2]) })[0]!.shape).toEqual(['N', 8, 16, 16]);
    expect(() => inferOp('Conv', [tt('f32', [1, 3, 8, 8]), tt('f32', [8, 4, 3, 3])])).toThrow(/X has 3 channels but W \[8,4,3,3\] expects 4 per group x 1 groups = 4/);
    expect(() => inferOp('Conv', [tt('f32', [1, 4, 8, 8]), tt('f32', [6, 1, 3, 3])], { group: int(4) })).toThrow(/6 output channels are not divisible by group 4/);
    expect(() => inferOp('Conv', [tt('f32', [1, 4, 8, 8]), tt('f32', [8, 4, 3, 3])], { kernel_shape: ints([2, 2]) })).toThrow(/disagrees with the weight/);
    expect(() => inferOp('Conv', [tt('f32', [1, 4, 2, 2]), tt('f32', [8, 4, 3, 3])])).toThrow(/smaller than the \(dilated\) kernel 3/);
    expect(() => inferOp('Conv', [tt('f32', [1, 4, 8, 8]), tt('f32', [8, 4, 3, 3]), tt('f32', [4])])).toThrow(/B must be \[8\]/);
    expect(() => inferOp('Conv', [tt('i64', [1, 4, 8, 8]), tt('i64', [8, 4, 3, 3])])).toThrow(/must be a float tensor, got i64/);
  });
});

describe('ConvTranspose', () => {
  test('groups, strides, dilations, pads and output_padding', () => {
    const x = rand([2, 4, 3, 4], 1);
    const w = rand([4, 3, 3, 2], 2);
    const attrs = { group: int(2), strides: ints([2, 3]), pads: ints([1, 0, 0, 1]), output_padding: ints([1, 1]), dilations: ints([1, 2]) };
    const [y] = runOp('ConvTranspose', [x, w], attrs);
    // out = s(in-1) + output_padding + (k-1)d + 1 - pads: 2*2+1+3-1 = 7; 3*3+1+3-1 = 12
    expectClose(y!, naiveConvT(x, w, { strides: [2, 3], dilations: [1, 2], padsB: [1, 0], group: 2 }, [7, 12]), [2, 6, 7, 12]);
  });

  test('output_shape and SAME_UPPER choose the pads', () => {
    const x = rand([1, 1, 3, 3], 3);
    const w = rand([1, 2, 3, 3], 4);
    // output_shape [10, 8], strides [3, 2]: total pad = 3*2+3-10 = -1 -> begin 0; 2*2+3-8 = -1 -> begin 0
    const [y] = runOp('ConvTranspose', [x, w], { strides: ints([3, 2]), output_shape: ints([10, 8]) });
    expectClose(y!, naiveConvT(x, w, { strides: [3, 2], dilations: [1, 1], padsB: [0, 0], group: 1 }, [10, 8]), [1, 2, 10, 8]);
    // SAME_UPPER, stride 2: out = 6, total = 2*2+3-6 = 1 -> begin 0 (odd pad at the end)
    const [s] = runOp('ConvTranspose', [x, w], { strides: ints([2, 2]), auto_pad: str('SAME_UPPER') });
    expectClose(s!, naiveConvT(x, w, { strides: [2, 2], dilations: [1, 1], padsB: [0, 0], group: 1 }, [6, 6]), [1, 2, 6, 6]);
  });

  test('bias and 1-D', () => {
    const x = Tensor.from('f32', [1, 1, 3], [1, 2, 3]);
    const w = Tensor.from('f32', [1, 1, 2], [1, 10]);
    const b = Tensor.from('f32', [1], [0.5]);
    // y = [1, 10+2, 20+3, 30] + 0.5
    expect(runOp('ConvTranspose', [x, w, b])[0]!.toArray()).toEqual([1.5, 12.5, 23.5, 30.5]);
  });

  test('errors', () => {
    expect(() => inferOp('ConvTranspose', [tt('f32', [1, 3, 4, 4]), tt('f32', [4, 2, 3, 3])])).toThrow(/X has 3 channels but W \[4,2,3,3\] expects 4 input channels/);
    expect(() => inferOp('ConvTranspose', [tt('f32', [1, 4, 4, 4]), tt('f32', [4, 2, 3, 3])], { output_padding: ints([1]) })).toThrow(/output_padding must have 2 values/);
  });
});

describe('pooling', () => {
  const x = Tensor.from('f32', [1, 1, 4, 4], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);

  test('MaxPool 2x2/2 with indices', () => {
    const [y, idx] = runOp('MaxPool', [x], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) }, { numOutputs: 2 });
    expect(y!.toArray()).toEqual([6, 8, 14, 16]);
    expect(idx!.dtype).toBe('i64');
    expect(idx!.toArray()).toEqual([5, 7, 13, 15]);
    const [, col] = runOp('MaxPool', [x], { kernel_shape: ints([2, 2]), strides: ints([2, 2]), storage_order: int(1) }, { numOutputs: 2 });
    expect(col!.toArray()).toEqual([1 + 4 * 1, 1 + 4 * 3, 3 + 4 * 1, 3 + 4 * 3]); // h + H*w
  });

  test('AveragePool 3x3/1 pad 1: count_include_pad off and on', () => {
    const a = { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) };
    const [ex] = runOp('AveragePool', [x], a);
    expect(ex!.toArray().slice(0, 2)).toEqual([(1 + 2 + 5 + 6) / 4, (1 + 2 + 3 + 5 + 6 + 7) / 6]);
    const [inc] = runOp('AveragePool', [x], { ...a, count_include_pad: int(1) });
    expect(inc!.data[0]).toBeCloseTo((1 + 2 + 5 + 6) / 9, 6);
  });

  test('ceil_mode adds a partial window but never one starting in the padding', () => {
    const x5 = rand([1, 1, 5, 5], 2);
    expect(runOp('MaxPool', [x5], { kernel_shape: ints([2, 2]), strides: ints([2, 2]), ceil_mode: int(1) })[0]!.shape).toEqual([1, 1, 3, 3]);
    expect(runOp('MaxPool', [x5], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) })[0]!.shape).toEqual([1, 1, 2, 2]);
    // in 4, k 2, s 2, pad end 1, ceil: ceil((4+1-2)/2)+1 = 3, but window 3 would start at 4 >= 4 + 0: dropped.
    expect(runOp('MaxPool', [x], { kernel_shape: ints([2, 2]), strides: ints([2, 2]), pads: ints([0, 0, 1, 1]), ceil_mode: int(1) })[0]!.shape).toEqual([1, 1, 2, 2]);
  });

  test('1-D and 3-D pools, dilation', () => {
    const x1 = Tensor.from('f32', [1, 1, 5], [3, 1, 4, 1, 5]);
    expect(runOp('MaxPool', [x1], { kernel_shape: ints([2]), dilations: ints([2]) })[0]!.toArray()).toEqual([4, 1, 5]);
    expect(runOp('AveragePool', [x1], { kernel_shape: ints([3]), strides: ints([2]) })[0]!.toArray()).toEqual([8 / 3, 10 / 3].map(Math.fround));
    const x3 = rand([1, 2, 3, 4, 4], 5);
    const [y3] = runOp('AveragePool', [x3], { kernel_shape: ints([3, 4, 4]) });
    const means = [0, 1].map((c) => x3.toArray().slice(c * 48, (c + 1) * 48).reduce((a, b) => a + b, 0) / 48);
    expectClose(y3!, means, [1, 2, 1, 1, 1]);
  });

  test('global pools', () => {
    const g = rand([2, 3, 4, 5], 6);
    const plane = (p: number): number[] => g.toArray().slice(p * 20, (p + 1) * 20);
    expectClose(runOp('GlobalAveragePool', [g])[0]!, [0, 1, 2, 3, 4, 5].map((p) => plane(p).reduce((a, b) => a + b, 0) / 20), [2, 3, 1, 1]);
    expectClose(runOp('GlobalMaxPool', [g])[0]!, [0, 1, 2, 3, 4, 5].map((p) => Math.max(...plane(p))), [2, 3, 1, 1]);
  });

  test('errors', () => {
    expect(() => inferOp('MaxPool', [tt('f32', [1, 1, 4, 4])])).toThrow(/missing required attribute 'kernel_shape'/);
    expect(() => inferOp('AveragePool', [tt('f32', [1, 1, 4, 4])], { kernel_shape: ints([2]) })).toThrow(/kernel_shape must have 2 values for 2 spatial axes, got \[2\]/);
    expect(() => inferOp('GlobalAveragePool', [tt('f32', [4, 4])])).toThrow(/rank >= 3/);
  });
});
