/**
 * The device byte codecs shared by the plan writer and the backends: bit patterns checked by hand
 * (bf16 1.0 = 0x3F80, round-to-nearest-even, f16 1.0 = 0x3C00, little-endian i64), and a round
 * trip for every plan dtype.
 */
import { Tensor } from '@paradit/ir';
import { PLAN_DTYPE_BYTES, decodeTensor, encodeTensor } from '@paradit/runtime';
import type { PlanDType } from '@paradit/runtime';

const u16 = (b: Uint8Array): number[] => Array.from(new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2));

describe('plan byte codecs', () => {
  it('bf16: exact values keep their top 16 bits; f32 data is rounded to nearest even', () => {
    expect(u16(encodeTensor(Tensor.from('bf16', [3], [1, -2, 0.5]), 'bf16'))).toEqual([0x3f80, 0xc000, 0x3f00]);
    // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even (1.0); 1 + 3*2^-8 rounds up.
    expect(u16(encodeTensor(Tensor.from('f32', [2], [1 + 2 ** -8, 1 + 3 * 2 ** -8]), 'bf16'))).toEqual([0x3f80, 0x3f82]);
  });

  it('f16 and i64 bit patterns', () => {
    expect(u16(encodeTensor(Tensor.from('f16', [2], [1, -0.5]), 'f16'))).toEqual([0x3c00, 0xb800]);
    const b = encodeTensor(Tensor.from('i64', [2], [-1, 2 ** 40]), 'i64');
    expect(Array.from(b.slice(0, 8))).toEqual([255, 255, 255, 255, 255, 255, 255, 255]);
    expect(Array.from(b.slice(8, 16))).toEqual([0, 0, 0, 0, 0, 1, 0, 0]);
  });

  it.each(['f32', 'f16', 'bf16', 'i32', 'i64', 'bool', 'u8'] as const)('%s round trips', (d: PlanDType) => {
    const vals = d === 'bool' ? [1, 0, 1, 1] : d === 'u8' ? [0, 7, 255, 3] : d.startsWith('i') ? [-3, 0, 5, 1e6] : [1.5, -0.25, 3, 1024];
    const t = Tensor.from(d, [2, 2], vals);
    const bytes = encodeTensor(t, d);
    expect(bytes.byteLength).toBe(4 * PLAN_DTYPE_BYTES[d]);
    // Decode from an odd offset too (buffers inside a space need not be aligned for typed views).
    const shifted = new Uint8Array(bytes.byteLength + 1);
    shifted.set(bytes, 1);
    for (const src of [bytes, shifted.subarray(1)]) {
      const back = decodeTensor(src, d, [2, 2]);
      expect(back.dtype).toBe(d);
      expect(Array.from(back.data)).toEqual(vals);
    }
  });
});
