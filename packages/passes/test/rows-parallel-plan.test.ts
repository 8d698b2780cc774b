/**
 * rows-parallel plan (packages/passes/src/rows-parallel/halo-plan.ts): halo rows from kernel,
 * stride, dilation and padding (hand-derived per case), no halo for a nearest upsample, the bytes
 * each rank receives (edge ranks have one neighbour), and the refusals that name the node.
 */
import { GraphBuilder, Module, Tensor, tensorType } from '@paradit/ir';
import type { Attrs } from '@paradit/ir';
import { formatRowsPlan, planRowsParallel } from '../src/rows-parallel/halo-plan';

const ints = (value: number[]): Attrs[string] => ({ kind: 'ints', value });

/** x f32[1,C,H,W] -> Conv(kernel k, stride s, dilation d, pads [pt,0,pb,0] on rows, same on cols). */
function convModel(o: { C?: number; H: number; W?: number; k: number; s?: number; d?: number; pt: number; pb: number }): Module {
  const { C = 2, H, W = 4, k, s = 1, d = 1, pt, pb } = o;
  const b = new GraphBuilder(18);
  const x = b.input('x', tensorType('f32', [1, C, H, W]));
  const w = b.constant(Tensor.zeros('f32', [C, C, k, k]), 'w');
  const attrs: Attrs = { kernel_shape: ints([k, k]), strides: ints([s, s]), dilations: ints([d, d]), pads: ints([pt, pt, pb, pb]) };
  const [y] = b.add('Conv', [x, w], attrs, { name: 'conv' });
  return new Module(b.build([y!]), { '': 18 });
}

describe('rows-parallel plan: convolution halos', () => {
  test('3x3, pad 1, stride 1: one row from each neighbour; edge ranks receive one side', () => {
    // A row is B*C*W*4 = 1*2*4*4 = 32 bytes.
    const p = planRowsParallel(convModel({ H: 8, k: 3, pt: 1, pb: 1 }), 4);
    expect(p.steps.map((s) => [s.kind, s.rowsPerRank, s.haloTop, s.haloBottom])).toEqual([['conv-halo', 2, 1, 1]]);
    expect(p.haloBytesByRank).toEqual([32, 64, 64, 32]);
    expect(formatRowsPlan(p)).toBe(["rows-parallel 4 (f32)", "  conv-halo Conv 'conv' rows 8 (2/rank) halo 1+1 bytes 32,64,64,32", '  total halo 32,64,64,32 all-reduce 0,0,0,0 gather 0,0,0,0'].join('\n'));
  });

  test('5x5, pad 2: two rows each side; bf16 halves the bytes', () => {
    const p = planRowsParallel(convModel({ H: 8, k: 5, pt: 2, pb: 2 }), 2, 'bf16');
    expect([p.steps[0]!.haloTop, p.steps[0]!.haloBottom]).toEqual([2, 2]);
    expect(p.haloBytesByRank).toEqual([2 * 16, 2 * 16]); // 2 rows of 1*2*4*2 bytes, one side each
  });

  test('stride 2 with pads (0, 1) (diffusers\' downsampler): output row i reads 2i..2i+2, so 0 above, 1 below', () => {
    const p = planRowsParallel(convModel({ H: 8, k: 3, s: 2, pt: 0, pb: 1 }), 2);
    expect([p.steps[0]!.rowsPerRank, p.steps[0]!.haloTop, p.steps[0]!.haloBottom]).toEqual([4, 0, 1]);
    expect(p.haloBytesByRank).toEqual([32, 0]); // rank 0 gets rank 1's first row; rank 1 needs nothing
  });

  test('3x3 dilation 2, pad 2: reach of 2 rows each side', () => {
    const p = planRowsParallel(convModel({ H: 8, k: 3, d: 2, pt: 2, pb: 2 }), 2);
    expect([p.steps[0]!.haloTop, p.steps[0]!.haloBottom]).toEqual([2, 2]);
  });

  test('a 1x1 conv needs no halo', () => {
    const p = planRowsParallel(convModel({ H: 8, k: 1, pt: 0, pb: 0 }), 4);
    expect(p.haloBytesByRank).toEqual([0, 0, 0, 0]);
  });

  test('degree 1: one rank, nothing received', () => {
    expect(planRowsParallel(convModel({ H: 8, k: 3, pt: 1, pb: 1 }), 1).haloBytesByRank).toEqual([0]);
  });
});

describe('rows-parallel plan: refusals name the node', () => {
  test('rows not divisible by the degree', () => {
    expect(() => planRowsParallel(convModel({ H: 6, k: 3, pt: 1, pb: 1 }), 4)).toThrow(
      "rows-parallel: Conv 'conv': 6 rows are not divisible by rows-parallel degree 4; use a degree that divides 6",
    );
  });

  test('a halo larger than a band', () => {
    expect(() => planRowsParallel(convModel({ H: 8, k: 5, pt: 2, pb: 2 }), 8)).toThrow(
      "rows-parallel: Conv 'conv': a halo of 2 rows is larger than a band of 1 rows at degree 8; use a smaller degree",
    );
  });

  test('a linear Resize reads across band edges', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [1, 2, 4, 4]));
    const scales = b.constant(Tensor.from('f32', [4], [1, 1, 2, 2]), 'scales');
    const [y] = b.add('Resize', [x, null, scales], { mode: { kind: 'string', value: 'linear' } }, { name: 'up' });
    const m = new Module(b.build([y!]), { '': 18 });
    expect(() => planRowsParallel(m, 2)).toThrow("rows-parallel: Resize 'up': mode 'linear' reads rows across band edges; only nearest upsampling is supported");
  });

  test('a degree that is not a positive integer', () => {
    expect(() => planRowsParallel(convModel({ H: 8, k: 3, pt: 1, pb: 1 }), 0)).toThrow('rows-parallel: degree must be a positive integer, got 0');
  });
});
