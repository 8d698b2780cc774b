/** compareTensors / withinTolerance: hand-computed errors, NaN handling, tolerance policy. */
import { Tensor } from '@paradit/ir';
import { compareTensors, defaultTolerance, withinTolerance } from '@paradit/runtime';

const t = (v: number[]): Tensor => Tensor.from('f32', [v.length], v);

describe('compareTensors', () => {
  test('max abs and relative L2 by hand', () => {
    // diff [0, 0.5, 0, -1]: ||d|| = sqrt(1.25); ||ref|| = sqrt(1 + 4 + 9 + 16) = sqrt(30)
    const c = compareTensors(t([1, 2.5, 3, 3]), t([1, 2, 3, 4]));
    expect(c.maxAbs).toBe(1);
    expect(c.relL2).toBeCloseTo(Math.sqrt(1.25 / 30), 12);
    expect(c.nanMismatch).toBe(0);
  });

  test('a NaN where the reference has a number is infinitely wrong, even if all else matches', () => {
    const c = compareTensors(t([Number.NaN, Number.NaN, 3]), t([1, 2, 3]));
    expect(c.nanMismatch).toBe(2);
    expect(c.relL2).toBe(Infinity);
    expect(withinTolerance(c, 1)).toBe(false);
  });

  test('NaN in both at the same place and equal infinities count as equal', () => {
    const c = compareTensors(t([Number.NaN, Infinity, 2]), t([Number.NaN, Infinity, 2]));
    expect(c).toEqual({ maxAbs: 0, relL2: 0, nanMismatch: 0 });
  });

  test('a zero reference: exact match passes, anything else is infinite', () => {
    expect(compareTensors(t([0, 0]), t([0, 0])).relL2).toBe(0);
    expect(compareTensors(t([0, 1e-9]), t([0, 0])).relL2).toBe(Infinity);
  });

  test('tolerance policy and length mismatch', () => {
    expect(defaultTolerance('f32')).toBe(1e-4);
    expect(defaultTolerance('bf16')).toBe(5e-2);
    expect(() => compareTensors(t([1]), t([1, 2]))).toThrow(/cannot compare \[1\] with \[2\]/);
  });
});
