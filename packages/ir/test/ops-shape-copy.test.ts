/**
 * The strided-copy kernel (shape-copy.ts) against a naive per-element reference, on seeded
 * random views: every dim merge, block-copy, broadcast, negative-stride and tiled-transpose path
 * must give exactly the same elements as reading each index one by one. Also Transpose, Slice
 * and Expand on large activations against the same naive reference.
 */
import { Tensor } from '@paradit/ir';
import { copyStrided } from '../src/ops/shape-copy';
import { i64v, ints, iota, konst, runOp, vals } from './shape-test-utils';
import { mulberry32 } from '../src/prng';

const rng = mulberry32;

function naive(src: Float32Array, offset: number, shape: readonly number[], strides: readonly number[]): number[] {
  const out: number[] = [];
  const n = shape.reduce((a, b) => a * b, 1);
  const idx = new Array<number>(shape.length).fill(0);
  for (let e = 0; e < n; e++) {
    let o = offset;
    for (let k = 0; k < shape.length; k++) o += idx[k]! * strides[k]!;
    out.push(src[o]!);
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++idx[k]! < shape[k]!) break;
      idx[k] = 0;
    }
  }
  return out;
}

const rowMajor = (shape: readonly number[]): number[] => {
  const s: number[] = [];
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
};

function shuffle<T>(xs: T[], r: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

describe('copyStrided', () => {
  test('random permuted, broadcast and reversed views match the naive reference', () => {
    const r = rng(7);
    for (let trial = 0; trial < 300; trial++) {
      const rank = 1 + Math.floor(r() * 4);
      // Every third trial has one long dim, so block copies and tiled transposes kick in.
      const long = trial % 3 === 0 ? Math.floor(r() * rank) : -1;
      const base = Array.from({ length: rank }, (_, k) => 1 + Math.floor(r() * (k === long ? 70 : 6)));
      const src = Float32Array.from({ length: base.reduce((a, b) => a * b, 1) }, (_, i) => i);
      const st = rowMajor(base);
      const perm = shuffle([...Array(rank).keys()], r);
      const shape = perm.map((p) => base[p]!);
      let offset = 0;
      const strides = perm.map((p, k) => {
        const u = r();
        if (u < 0.15) {
          shape[k] = 1 + Math.floor(r() * 5); // broadcast a fresh dim (stride 0)
          return 0;
        }
        if (u < 0.3) {
          offset += (base[p]! - 1) * st[p]!; // reversed
          return -st[p]!;
        }
        return st[p]!;
      });
      const dst = new Float32Array(shape.reduce((a, b) => a * b, 1));
      copyStrided(src, offset, shape, strides, dst);
      expect(Array.from(dst)).toEqual(naive(src, offset, shape, strides));
    }
  });

  test('the tiled 2-D transpose path (last two dims swapped, ragged tiles)', () => {
    const src = Float32Array.from({ length: 3 * 70 * 45 }, (_, i) => i);
    const view = [3, 45, 70];
    const strides = [70 * 45, 1, 45];
    const dst = new Float32Array(src.length);
    copyStrided(src, 0, view, strides, dst);
    expect(Array.from(dst)).toEqual(naive(src, 0, view, strides));
  });
});

describe('big activations through the rules', () => {
  test('Transpose [2,40,3,33] by every pattern used in attention layouts', () => {
    const x = iota([2, 40, 3, 33]);
    for (const perm of [[0, 2, 1, 3], [0, 1, 3, 2], [3, 2, 1, 0], [0, 2, 3, 1], [1, 0, 3, 2]]) {
      const out = runOp('Transpose', [x], { perm: ints(perm) }).outputs[0]!;
      const st = rowMajor(x.shape);
      expect(vals(out)).toEqual(naive(x.data as Float32Array, 0, perm.map((p) => x.shape[p]!), perm.map((p) => st[p]!)));
    }
  });

  test('Slice of the last axis with negative step and Expand of a row', () => {
    const x = iota([4, 64]);
    const out = runOp('Slice', [x, konst(i64v([60])), konst(i64v([3])), konst(i64v([1])), konst(i64v([-3]))]).outputs[0]!;
    expect(out.shape).toEqual([4, 19]);
    expect(vals(out)).toEqual(naive(x.data as Float32Array, 60, [4, 19], [64, -3]));
    const e = runOp('Expand', [Tensor.from('f32', [1, 64], vals(iota([64]))), konst(i64v([5, 64]))]).outputs[0]!;
    expect(vals(e)).toEqual(naive(iota([64]).data as Float32Array, 0, [5, 64], [0, 1]));
  });
});
