/**
 * Tensor <-> device bytes in a plan dtype (little-endian, the layout CUDA kernels read): used by
 * the plan writer for weights.bin and by the backends for inputs, outputs and (CPU) every buffer.
 */
import { Tensor, e4m3Bits, f16BitsToF32, f32ToF16Bits, fp8BitsToF32, numel } from '@paradit/ir';
import type { PlanDType } from './schema';

export const PLAN_DTYPE_BYTES: { readonly [K in PlanDType]: number } = { f32: 4, f16: 2, bf16: 2, i32: 4, i64: 8, bool: 1, u8: 1, i8: 1, i16: 2, u16: 2, u32: 4, u64: 8, f8e4m3fn: 1 };

/** Writes `t` into `out` (which has exactly numel * size bytes) in plan dtype `d`, converting if needed. */
export function encodeInto(t: Tensor, d: PlanDType, out: Uint8Array): void {
  const n = t.data.length;
  if (out.byteLength !== n * PLAN_DTYPE_BYTES[d]) throw new Error(`encode: ${n} elements of ${d} need ${n * PLAN_DTYPE_BYTES[d]} bytes, got ${out.byteLength}`);
  const src = t.data;
  const buf = out.buffer;
  const off = out.byteOffset;
  const aligned = off % PLAN_DTYPE_BYTES[d] === 0;
  if (!aligned) {
    const tmp = new Uint8Array(out.byteLength);
    encodeInto(t, d, tmp);
    out.set(tmp);
    return;
  }
  switch (d) {
    case 'f32':
      new Float32Array(buf, off, n).set(src);
      return;
    case 'bf16': {
      const o = new Uint16Array(buf, off, n);
      if (t.dtype === 'bf16' && src instanceof Float32Array) {
        // Values are exact bf16 already: the top half of the f32 bits.
        const bits = new Uint32Array(src.buffer, src.byteOffset, n);
        for (let i = 0; i < n; i++) o[i] = bits[i]! >>> 16;
      } else {
        const f = Float32Array.from(src);
        const bits = new Uint32Array(f.buffer);
        for (let i = 0; i < n; i++) {
          const x = bits[i]!;
          // round to nearest even; NaN stays NaN
          o[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x40 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
        }
      }
      return;
    }
    case 'f16': {
      const o = new Uint16Array(buf, off, n);
      for (let i = 0; i < n; i++) o[i] = f32ToF16Bits(src[i]!);
      return;
    }
    case 'i32':
      new Int32Array(buf, off, n).set(src);
      return;
    case 'i64': {
      const o = new BigInt64Array(buf, off, n);
      for (let i = 0; i < n; i++) o[i] = BigInt(Math.trunc(src[i]!));
      return;
    }
    case 'bool':
    case 'u8': {
      const o = new Uint8Array(buf, off, n);
      for (let i = 0; i < n; i++) o[i] = d === 'bool' ? (src[i] ? 1 : 0) : src[i]!;
      return;
    }
    case 'i8':
      new Int8Array(buf, off, n).set(src);
      return;
    case 'i16':
      new Int16Array(buf, off, n).set(src);
      return;
    case 'u16':
      new Uint16Array(buf, off, n).set(src);
      return;
    case 'u32':
      new Uint32Array(buf, off, n).set(src);
      return;
    case 'u64': {
      const o = new BigUint64Array(buf, off, n);
      for (let i = 0; i < n; i++) o[i] = BigInt(Math.trunc(src[i]!));
      return;
    }
    case 'f8e4m3fn': {
      // Values of an f8e4m3fn tensor are exact e4m3 already; others round (saturating).
      const o = new Uint8Array(buf, off, n);
      for (let i = 0; i < n; i++) o[i] = e4m3Bits(src[i]!);
      return;
    }
  }
}

export function encodeTensor(t: Tensor, d: PlanDType): Uint8Array {
  const out = new Uint8Array(t.data.length * PLAN_DTYPE_BYTES[d]);
  encodeInto(t, d, out);
  return out;
}

/** Reads a tensor of plan dtype `d` and `shape` from `bytes` (copying). */
export function decodeTensor(bytes: Uint8Array, d: PlanDType, shape: readonly number[]): Tensor {
  const n = numel(shape);
  const need = n * PLAN_DTYPE_BYTES[d];
  if (bytes.byteLength < need) throw new Error(`decode: ${d}[${shape.join(',')}] needs ${need} bytes, got ${bytes.byteLength}`);
  const b = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice(0, need);
  const buf = b.buffer;
  const off = b.byteOffset;
  switch (d) {
    case 'f32':
      return new Tensor('f32', shape, new Float32Array(buf.slice(off, off + need)));
    case 'bf16': {
      const h = new Uint16Array(buf, off, n);
      const f = new Float32Array(n);
      const bits = new Uint32Array(f.buffer);
      for (let i = 0; i < n; i++) bits[i] = h[i]! << 16;
      return new Tensor('bf16', shape, f);
    }
    case 'f16': {
      const h = new Uint16Array(buf, off, n);
      const f = new Float32Array(n);
      for (let i = 0; i < n; i++) f[i] = f16BitsToF32(h[i]!);
      return new Tensor('f16', shape, f);
    }
    case 'i32':
      return new Tensor('i32', shape, Float64Array.from(new Int32Array(buf, off, n)));
    case 'i64': {
      const s = new BigInt64Array(buf, off, n);
      const o = new Float64Array(n);
      for (let i = 0; i < n; i++) o[i] = Number(s[i]!);
      return new Tensor('i64', shape, o);
    }
    case 'bool':
    case 'u8':
      return new Tensor(d, shape, Float64Array.from(new Uint8Array(buf, off, n)));
    case 'i8':
      return new Tensor(d, shape, Float64Array.from(new Int8Array(buf, off, n)));
    case 'i16':
      return new Tensor(d, shape, Float64Array.from(new Int16Array(buf, off, n)));
    case 'u16':
      return new Tensor(d, shape, Float64Array.from(new Uint16Array(buf, off, n)));
    case 'u32':
      return new Tensor(d, shape, Float64Array.from(new Uint32Array(buf, off, n)));
    case 'u64': {
      const s = new BigUint64Array(buf, off, n);
      const o = new Float64Array(n);
      for (let i = 0; i < n; i++) o[i] = Number(s[i]!);
      return new Tensor('u64', shape, o);
    }
    case 'f8e4m3fn': {
      const s = new Uint8Array(buf, off, n);
      const f = new Float32Array(n);
      for (let i = 0; i < n; i++) f[i] = fp8BitsToF32('f8e4m3fn', s[i]!);
      return new Tensor('f8e4m3fn', shape, f);
    }
  }
}
