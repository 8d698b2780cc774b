/**
 * Pad (shape-pad.ts) and Resize (shape-resize.ts). Pad values are the ONNX documentation's
 * examples (also checked against numpy.pad by hand); Resize values are worked out by hand from
 * the coordinate transforms (comments show the source coordinates).
 */
import { Tensor } from '@paradit/ir';
import { f32, float, i64v, inferOp, int, ints, iota, konst, runOp, str, ty, vals } from './shape-test-utils';

const close = (got: number[], want: number[], tol = 1e-5): void => {
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => expect(Math.abs(g - want[i]!)).toBeLessThanOrEqual(tol));
};

describe('Pad', () => {
  const x = f32([3, 2], [1.0, 1.2, 2.3, 3.4, 4.5, 5.7]);
  const pads = konst(i64v([0, 2, 0, 0]));

  test('constant, reflect, edge (inputs form, opset 13)', () => {
    const c = runOp('Pad', [x, pads], { mode: str('constant') }, { opset: 13 });
    expect(c.types[0]!.shape).toEqual([3, 4]);
    expect(vals(c.outputs[0])).toEqual(vals(f32([12], [0, 0, 1.0, 1.2, 0, 0, 2.3, 3.4, 0, 0, 4.5, 5.7])));
    expect(vals(runOp('Pad', [x, pads], { mode: str('reflect') }, { opset: 13 }).outputs[0])).toEqual(vals(f32([12], [1.0, 1.2, 1.0, 1.2, 2.3, 3.4, 2.3, 3.4, 4.5, 5.7, 4.5, 5.7])));
    expect(vals(runOp('Pad', [x, pads], { mode: str('edge') }, { opset: 13 }).outputs[0])).toEqual(vals(f32([12], [1.0, 1.0, 1.0, 1.2, 2.3, 2.3, 2.3, 3.4, 4.5, 4.5, 4.5, 5.7])));
  });

  test('wrap (opset 19)', () => {
    const r = runOp('Pad', [x, konst(i64v([2, 1, 1, 1]))], { mode: str('wrap') }, { opset: 19 });
    expect(r.types[0]!.shape).toEqual([6, 4]);
    const row = [[3.4, 2.3, 3.4, 2.3], [5.7, 4.5, 5.7, 4.5], [1.2, 1.0, 1.2, 1.0]];
    expect(vals(r.outputs[0])).toEqual(vals(f32([24], [...row[0]!, ...row[1]!, ...row[2]!, ...row[0]!, ...row[1]!, ...row[2]!])));
    expect(() => inferOp('Pad', [ty('f32', [2]), i64v([1, 1])], { mode: str('wrap') }, { opset: 18 })).toThrow(/mode must be constant, reflect or edge, got 'wrap'/);
  });

  test('reflect beyond the dim size repeats the reflection (numpy semantics)', () => {
    expect(vals(runOp('Pad', [f32([3], [1, 2, 3]), konst(i64v([5, 0]))], { mode: str('reflect') }).outputs[0])).toEqual([2, 1, 2, 3, 2, 1, 2, 3]);
  });

  test('constant_value input, negative pads crop, axes input (opset 18)', () => {
    expect(vals(runOp('Pad', [iota([4]), konst(i64v([1, 1])), konst(Tensor.scalar('f32', 2.5))]).outputs[0])).toEqual([2.5, 0, 1, 2, 3, 2.5]);
    expect(vals(runOp('Pad', [iota([4]), konst(i64v([-1, 1]))]).outputs[0])).toEqual([1, 2, 3, 0]);
    const r = runOp('Pad', [iota([2, 3]), konst(i64v([1, 1])), null, konst(i64v([-1]))], {}, { opset: 18 });
    expect(r.types[0]!.shape).toEqual([2, 5]);
    expect(vals(r.outputs[0])).toEqual([0, 0, 1, 2, 0, 0, 3, 4, 5, 0]);
  });

  test('Pad-2 attributes (pads, value) and Pad-1 paddings', () => {
    expect(vals(runOp('Pad', [iota([2])], { pads: ints([1, 0]), value: float(9) }, { opset: 2 }).outputs[0])).toEqual([9, 0, 1]);
    expect(vals(runOp('Pad', [iota([2])], { paddings: ints([0, 2]), value: float(7) }, { opset: 1 }).outputs[0])).toEqual([0, 1, 7, 7]);
  });

  test('symbolic dims and unknown pads', () => {
    expect(inferOp('Pad', [ty('f32', ['B', 4]), i64v([0, 1, 0, 1])])[0]!.shape).toEqual(['B', 6]);
    expect(inferOp('Pad', [ty('f32', ['B', 4]), i64v([1, 0, 0, 0])])[0]!.shape).toEqual(['n0_0', 4]);
    const r = runOp('Pad', [iota([2, 2]), i64v([0, 1, 0, 0])]);
    expect(r.types[0]!.shape).toEqual(['n0_0', 'n0_1']);
    expect(vals(r.outputs[0])).toEqual([0, 0, 1, 0, 2, 3]);
  });

  test('errors', () => {
    expect(() => inferOp('Pad', [ty('f32', [2, 2]), i64v([1, 1])])).toThrow("Pad 'n0': pads [1,1] must have 2 entries per padded axis (4), got 2");
    expect(() => inferOp('Pad', [ty('f32', [2]), i64v([-2, -1])])).toThrow(/crop axis 0 of size 2 below zero/);
    expect(() => inferOp('Pad', [ty('f32', [2]), i64v([1, 1]), ty('f16', [])])).toThrow(/constant_value must have the data dtype f32, got f16/);
  });
});

describe('Resize', () => {
  const x22 = f32([1, 1, 2, 2], [1, 2, 3, 4]);
  const noRoi = null;

  test('nearest, half_pixel, round_prefer_floor (upsample 2x3)', () => {
    // W: x = (o + 0.5)/3 - 0.5 = -0.33, 0, 0.33, 0.67, 1, 1.33 -> 0 0 0 1 1 1
    const r = runOp('Resize', [x22, noRoi, konst(f32([4], [1, 1, 2, 3]))], { mode: str('nearest') }, { opset: 13 });
    expect(r.types[0]!.shape).toEqual([1, 1, 4, 6]);
    expect(vals(r.outputs[0])).toEqual([1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4]);
  });

  test('linear, half_pixel and align_corners (upsample 2x)', () => {
    const r = runOp('Resize', [x22, noRoi, konst(f32([4], [1, 1, 2, 2]))], { mode: str('linear') }, { opset: 13 });
    // x = -0.25, 0.25, 0.75, 1.25 -> edge-clamped weights
    close(vals(r.outputs[0]), [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4]);
    const a = runOp('Resize', [x22, noRoi, konst(f32([4], [1, 1, 2, 2]))], { mode: str('linear'), coordinate_transformation_mode: str('align_corners') }, { opset: 13 });
    const t = 1 / 3;
    close(vals(a.outputs[0]), [1, 1 + t, 1 + 2 * t, 2, 1 + 2 * t, 2, 2 + t, 2 + 2 * t, 2 + t, 2 + 2 * t, 3, 3 + t, 3, 3 + t, 3 + 2 * t, 4]);
  });

  test('linear downsample by 0.6 (output width is scale*in, not the rounded size)', () => {
    // H: x = 0.5/0.6 - 0.5 = 1/3; W: x = 1/3 and 2
    const r = runOp('Resize', [f32([1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8]), noRoi, konst(f32([4], [1, 1, 0.6, 0.6]))], { mode: str('linear') }, { opset: 13 });
    expect(r.types[0]!.shape).toEqual([1, 1, 1, 2]);
    close(vals(r.outputs[0]), [2 + 2 / 3, 4 + 1 / 3]);
  });

  test('cubic (A = -0.75) inside and at the edge, with exclude_outside', () => {
    const x = f32([1, 1, 1, 8], [0, 1, 2, 3, 4, 5, 6, 7]);
    const r = runOp('Resize', [x, noRoi, konst(f32([4], [1, 1, 1, 2]))], { mode: str('cubic') }, { opset: 13 });
    const out = vals(r.outputs[0]);
    // o = 4..11: x = (o + 0.5)/2 - 0.5 has all four neighbours inside. At ratio 0.75 the weights
    // are (-9, 67, 225, -27)/256, giving x - 3/64 on ramp data; at ratio 0.25 mirrored: x + 3/64.
    for (let o = 4; o <= 11; o++) expect(out[o]).toBeCloseTo((o + 0.5) / 2 - 0.5 + (o % 2 === 0 ? -3 / 64 : 3 / 64), 6);
    // o = 0: x = -0.25, neighbours -2..1 read 0,0,0,1; weight of index 1 at ratio 0.75 is -27/256.
    expect(out[0]).toBeCloseTo(-0.10546875, 6);
    const ex = runOp('Resize', [x, noRoi, konst(f32([4], [1, 1, 1, 2]))], { mode: str('cubic'), exclude_outside: int(1) }, { opset: 13 });
    // Neighbours -2, -1 excluded and the rest renormalized: (-27/256) / (198/256) = -3/22.
    expect(vals(ex.outputs[0])[0]).toBeCloseTo(-3 / 22, 6);
  });

  test('sizes with nearest downsampling', () => {
    const r = runOp('Resize', [f32([1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8]), noRoi, null, konst(i64v([1, 1, 1, 2]))], { mode: str('nearest') }, { opset: 13 });
    expect(vals(r.outputs[0])).toEqual([1, 3]);
  });

  test('tf_crop_and_resize with extrapolation', () => {
    const x = iota([1, 1, 4, 4]).data.map((v) => v + 1);
    const roi = konst(f32([8], [0, 0, 0.4, 0.6, 1, 1, 0.6, 0.8]));
    const attrs = { mode: str('linear'), coordinate_transformation_mode: str('tf_crop_and_resize'), extrapolation_value: float(10) };
    const r = runOp('Resize', [Tensor.from('f32', [1, 1, 4, 4], x), roi, null, konst(i64v([1, 1, 3, 3]))], attrs, { opset: 13 });
    // rows 1.2, 1.5, 1.8; cols 1.8, 2.1, 2.4 of the plane 1 + 4*row + col
    close(vals(r.outputs[0]), [7.6, 7.9, 8.2, 8.8, 9.1, 9.4, 10, 10.3, 10.6]);
    const e = runOp('Resize', [f32([1, 1, 1, 4], [1, 2, 3, 4]), konst(f32([8], [0, 0, 0, 0.5, 1, 1, 1, 1.5])), null, konst(i64v([1, 1, 1, 3]))], attrs, { opset: 13 });
    // cols 1.5, 3, 4.5: the last lies outside the input
    close(vals(e.outputs[0]), [2.5, 4, 10]);
  });

  test('Resize-10 (X, scales): asymmetric, floor up / ceil down', () => {
    const r = runOp('Resize', [x22, konst(f32([4], [1, 1, 2, 3]))], { mode: str('nearest') }, { opset: 10 });
    expect(vals(r.outputs[0])).toEqual([1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4]);
    const d = runOp('Resize', [f32([1, 1, 1, 6], [1, 2, 3, 4, 5, 6]), konst(f32([4], [1, 1, 1, 0.4]))], { mode: str('nearest') }, { opset: 10 });
    // x = o / 0.4 = 0, 2.5 -> 0, 3 (ceil when downsampling)
    expect(vals(d.outputs[0])).toEqual([1, 4]);
  });

  test('opset 18: axes and keep_aspect_ratio_policy', () => {
    const x = iota([1, 1, 4, 4]);
    const r = runOp('Resize', [x, noRoi, null, konst(i64v([2, 3]))], { axes: ints([2, 3]), keep_aspect_ratio_policy: str('not_larger') }, { opset: 18 });
    // scale min(2/4, 3/4) = 0.5 on both axes: rows/cols 0.5 and 2.5 -> 0 and 2
    expect(r.types[0]!.shape).toEqual([1, 1, 2, 2]);
    expect(vals(r.outputs[0])).toEqual([0, 2, 8, 10]);
    const w = runOp('Resize', [x, noRoi, konst(f32([1], [0.5]))], { axes: ints([-1]) }, { opset: 18 });
    expect(w.types[0]!.shape).toEqual([1, 1, 4, 2]);
  });

  test('symbolic and unknown sizes; errors', () => {
    expect(inferOp('Resize', [ty('f32', ['N', 3, 'H', 8]), null, f32([4], [1, 1, 2, 2])], {}, { opset: 13 })[0]!.shape).toEqual(['N', 3, 'n0_2', 16]);
    expect(inferOp('Resize', [ty('f32', ['N', 3, 8, 8]), null, ty('f32', [4])], {}, { opset: 13 })[0]!.shape).toEqual(['n0_0', 'n0_1', 'n0_2', 'n0_3']);
    expect(() => inferOp('Resize', [ty('f32', [1, 1, 2, 2]), null, f32([4], [1, 1, 2, 2]), i64v([1, 1, 4, 4])], {}, { opset: 13 })).toThrow("Resize 'n0': give scales or sizes, not both");
    expect(() => inferOp('Resize', [ty('f32', [1, 2]), null, f32([2], [1, 2])], { antialias: int(1), mode: str('linear') }, { opset: 18 })).toThrow(/antialias=1 is not supported/);
    expect(() => inferOp('Resize', [ty('f32', [1, 2]), null, f32([2], [1, 2])], { mode: str('area') }, { opset: 13 })).toThrow(/mode must be nearest, linear or cubic, got 'area'/);
  });
});
