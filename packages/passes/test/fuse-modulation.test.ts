/**
 * fuse-modulation: AdaLN modulation (FLUX's Add(scale, 1), CogVideoX's 1+scale behind an
 * Unsqueeze, addcmul order) and gated residuals in both operand orders; must-not-fire; an error
 * case; numerics within relative L2 1e-6 (fp32).
 */
import { fuseModulation } from '../src/fuse-modulation';
import { expectIr, ir, runOne } from './helpers';
import { expectFusedClose } from './fusion-helpers';

describe('fuse-modulation', () => {
  test('x * (1 + scale) + shift becomes modulate(x, shift, scale), with 1+scale direct or behind an Unsqueeze', () => {
    const sig = '%x: f32[2,5,8], %sc: f32[2,1,8], %sh: f32[2,1,8], %s2: f32[2,8]';
    const before = ir(`graph main(${sig}) {
      %one = const f32[] [1.0]
      %t = Add(%sc, %one)
      %m = Mul(%x, %t)
      %y1 = Add(%m, %sh)
      %t2 = Add(%one, %s2)
      %ax = const i64[1] [1]
      %u2 = Unsqueeze(%t2, %ax)
      %m2 = Mul(%u2, %x)
      %y2 = Add(%sh, %m2)
      return %y1, %y2 }`);
    const after = runOne(fuseModulation, before);
    expectIr(
      after,
      `graph main(${sig}) {
        %y1 = modulate(%x, %sh, %sc)
        %ax = const i64[1] [1]
        %u = Unsqueeze(%s2, %ax)
        %y2 = modulate(%x, %sh, %u)
        return %y1, %y2 }`,
    );
    expectFusedClose(before, after);
  });

  test('x + gate * y becomes gated_residual(x, gate, y) in both orders', () => {
    const sig = '%x: f32[2,5,8], %g: f32[2,1,8], %y: f32[2,5,8]';
    const before = ir(`graph main(${sig}) {
      %m = Mul(%g, %y)
      %z1 = Add(%x, %m)
      %n = Mul(%y, %g)
      %z2 = Add(%n, %x)
      return %z1, %z2 }`);
    const after = runOne(fuseModulation, before);
    expectIr(after, `graph main(${sig}) { %z1 = gated_residual(%x, %g, %y) %z2 = gated_residual(%x, %g, %y) return %z1, %z2 }`);
    expectFusedClose(before, after);
  });

  test('must not fire: 2 + scale, a constant shift or gate, a gate of full shape, a shared product', () => {
    const m = ir(`graph main(%x: f32[2,5,8], %sc: f32[2,1,8], %sh: f32[2,1,8], %y: f32[2,5,8]) {
      %two = const f32[] [2.0]
      %t = Add(%sc, %two)
      %m = Mul(%x, %t)
      %y1 = Add(%m, %sh)
      %one = const f32[] [1.0]
      %t1 = Add(%sc, %one)
      %m1 = Mul(%x, %t1)
      %cb = const f32[8] [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
      %y2 = Add(%m1, %cb)
      %g = Mul(%cb, %y)
      %y3 = Add(%x, %g)
      %f = Mul(%y, %x)
      %y4 = Add(%x, %f)
      %h = Mul(%sc, %y)
      %y5 = Add(%x, %h)
      return %y1, %y2, %y3, %y4, %y5, %h }`);
    expect(runOne(fuseModulation, m)).toBe(m);
  });

  test('error: modulate operands of different dtypes are rejected with expected vs got', () => {
    expect(() => ir(`graph main(%x: f32[2,5,8], %s: f16[2,1,8]) { %y = modulate(%x, %s, %s) return %y }`)).toThrow(
      /shift must have x's dtype f32, got f16/,
    );
  });
});
