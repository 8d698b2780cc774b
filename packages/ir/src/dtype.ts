/**
 * Element types, their ONNX codes, and correct rounding into narrow float formats.
 *
 * Storage convention used by Tensor and the interpreter: every float type narrower than 64 bits
 * (f32, f16, bf16, the fp8 kinds) is held in a Float32Array whose values are exactly
 * representable in that type; f64, every integer type and bool are held in a Float64Array
 * (integers are exact up to 2^53, which covers every shape and index a DiT uses).
 */

export type DType =
  | 'f32' | 'f16' | 'bf16' | 'f64'
  | 'f8e4m3fn' | 'f8e4m3fnuz' | 'f8e5m2' | 'f8e5m2fnuz'
  | 'i8' | 'i16' | 'i32' | 'i64'
  | 'u8' | 'u16' | 'u32' | 'u64'
  | 'bool';

interface DTypeInfo {
  readonly onnx: number;
  readonly bytes: number;
  readonly kind: 'float' | 'int' | 'uint' | 'bool';
}

/** Exhaustive per-dtype table; a new dtype does not compile until it has its row. */
export const DTYPES: { readonly [K in DType]: DTypeInfo } = {
  f32: { onnx: 1, bytes: 4, kind: 'float' },
  u8: { onnx: 2, bytes: 1, kind: 'uint' },
  i8: { onnx: 3, bytes: 1, kind: 'int' },
  u16: { onnx: 4, bytes: 2, kind: 'uint' },
  i16: { onnx: 5, bytes: 2, kind: 'int' },
  i32: { onnx: 6, bytes: 4, kind: 'int' },
  i64: { onnx: 7, bytes: 8, kind: 'int' },
  bool: { onnx: 9, bytes: 1, kind: 'bool' },
  f16: { onnx: 10, bytes: 2, kind: 'float' },
  f64: { onnx: 11, bytes: 8, kind: 'float' },
  u32: { onnx: 12, bytes: 4, kind: 'uint' },
  u64: { onnx: 13, bytes: 8, kind: 'uint' },
  bf16: { onnx: 16, bytes: 2, kind: 'float' },
  f8e4m3fn: { onnx: 17, bytes: 1, kind: 'float' },
  f8e4m3fnuz: { onnx: 18, bytes: 1, kind: 'float' },
  f8e5m2: { onnx: 19, bytes: 1, kind: 'float' },
  f8e5m2fnuz: { onnx: 20, bytes: 1, kind: 'float' },
};

export const ALL_DTYPES = Object.keys(DTYPES) as DType[];

const ONNX_NAMES: Record<number, string> = {
  0: 'UNDEFINED', 1: 'FLOAT', 2: 'UINT8', 3: 'INT8', 4: 'UINT16', 5: 'INT16', 6: 'INT32', 7: 'INT64',
  8: 'STRING', 9: 'BOOL', 10: 'FLOAT16', 11: 'DOUBLE', 12: 'UINT32', 13: 'UINT64', 14: 'COMPLEX64',
  15: 'COMPLEX128', 16: 'BFLOAT16', 17: 'FLOAT8E4M3FN', 18: 'FLOAT8E4M3FNUZ', 19: 'FLOAT8E5M2',
  20: 'FLOAT8E5M2FNUZ', 21: 'UINT4', 22: 'INT4', 23: 'FLOAT4E2M1', 24: 'FLOAT8E8M0', 25: 'UINT2', 26: 'INT2',
};

const BY_ONNX = new Map<number, DType>(ALL_DTYPES.map((d) => [DTYPES[d].onnx, d]));

/** The ONNX TensorProto.DataType name of a code, for messages ("FLOAT16"). */
export function onnxTypeName(code: number): string {
  return ONNX_NAMES[code] ?? `data type ${code}`;
}

/** Maps an ONNX elem_type code to a DType, or undefined when ParaDiT does not support it. */
export function dtypeFromOnnx(code: number): DType | undefined {
  return BY_ONNX.get(code);
}

export function dtypeToOnnx(d: DType): number {
  return DTYPES[d].onnx;
}

export function isFloat(d: DType): boolean {
  return DTYPES[d].kind === 'float';
}

export function isInteger(d: DType): boolean {
  const k = DTYPES[d].kind;
  return k === 'int' || k === 'uint';
}

export function byteSize(d: DType): number {
  return DTYPES[d].bytes;
}

/** True when values of this dtype live in a Float32Array (see the file header). */
export function usesF32Storage(d: DType): boolean {
  return isFloat(d) && d !== 'f64';
}

// ---------------------------------------------------------------------------------------------
// Bit-level conversions. Scratch views are module-level so no call allocates.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** fp32 -> bf16 bits, round to nearest even; NaN stays a quiet NaN. */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

/** fp32 -> IEEE binary16 bits, round to nearest even, with subnormals and overflow to inf. */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // rounds to zero
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rem = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rem > half || (rem === half && (h & 1) === 1)) h += 1;
    return sign | h;
  }
  const rem = mant & 0x1fff;
  let h = (e << 10) | (mant >>> 13);
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h += 1; // may carry into the exponent: correct
  e = h >>> 10;
  return sign | h;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Layout of an 8-bit float kind (ONNX FLOAT8 types). */
interface Fp8Format {
  readonly expBits: number;
  readonly mantBits: number;
  readonly bias: number;
  /** fn: no infinities, only S.1111.111 is NaN; fnuz: no -0, 0x80 is the only NaN; ieee: e5m2. */
  readonly style: 'fn' | 'fnuz' | 'ieee';
}

const FP8: Record<'f8e4m3fn' | 'f8e4m3fnuz' | 'f8e5m2' | 'f8e5m2fnuz', Fp8Format> = {
  f8e4m3fn: { expBits: 4, mantBits: 3, bias: 7, style: 'fn' },
  f8e4m3fnuz: { expBits: 4, mantBits: 3, bias: 8, style: 'fnuz' },
  f8e5m2: { expBits: 5, mantBits: 2, bias: 15, style: 'ieee' },
  f8e5m2fnuz: { expBits: 5, mantBits: 2, bias: 16, style: 'fnuz' },
};

function fp8Table(fmt: Fp8Format): Float32Array {
  const t = new Float32Array(256);
  const maxExp = (1 << fmt.expBits) - 1;
  for (let b = 0; b < 256; b++) {
    const s = b & 0x80 ? -1 : 1;
    const e = (b >>> fmt.mantBits) & maxExp;
    const m = b & ((1 << fmt.mantBits) - 1);
    let v: number;
    if (fmt.style === 'fnuz' && b === 0x80) v = NaN;
    else if (fmt.style === 'fn' && e === maxExp && m === (1 << fmt.mantBits) - 1) v = NaN;
    else if (fmt.style === 'ieee' && e === maxExp) v = m ? NaN : s * Infinity;
    else if (e === 0) v = s * m * 2 ** (1 - fmt.bias - fmt.mantBits);
    else v = s * (1 + m / (1 << fmt.mantBits)) * 2 ** (e - fmt.bias);
    t[b] = v;
  }
  return t;
}

const FP8_TABLES = new Map<DType, Float32Array>();
function tableOf(d: keyof typeof FP8): Float32Array {
  let t = FP8_TABLES.get(d);
  if (!t) {
    t = fp8Table(FP8[d]);
    FP8_TABLES.set(d, t);
  }
  return t;
}

export function fp8BitsToF32(d: DType, b: number): number {
  return tableOf(d as keyof typeof FP8)[b & 0xff]!;
}

/**
 * fp32 -> fp8 bits, round to nearest even. With `saturate` (ONNX Cast's default) values beyond
 * the largest finite number clamp to it; otherwise they become inf (e5m2) or NaN.
 */
export function f32ToFp8Bits(d: DType, x: number, saturate = true): number {
  const fmt = FP8[d as keyof typeof FP8];
  const table = tableOf(d as keyof typeof FP8);
  if (Number.isNaN(x)) return fmt.style === 'fnuz' ? 0x80 : 0x7f;
  const neg = x < 0 || Object.is(x, -0);
  const a = Math.abs(x);
  // Largest finite magnitude's code.
  let maxCode = 0;
  for (let c = 0x7f; c > 0; c--) {
    if (Number.isFinite(table[c]!)) {
      maxCode = c;
      break;
    }
  }
  const maxVal = table[maxCode]!;
  let code: number;
  if (a === Infinity || a > maxVal) {
    if (saturate) code = maxCode;
    else if (fmt.style === 'ieee') code = a === Infinity || a >= maxVal * (1 + 2 ** -(fmt.mantBits + 1)) ? 0x7c : maxCode;
    else code = fmt.style === 'fnuz' ? 0x80 : 0x7f;
    if (code === 0x80) return 0x80;
  } else {
    // Binary search over the monotone positive codes, then round to nearest even.
    let lo = 0;
    let hi = maxCode;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (table[mid]! <= a) lo = mid;
      else hi = mid;
    }
    const dl = a - table[lo]!;
    const dh = table[hi]! - a;
    code = dl < dh ? lo : dh < dl ? hi : (lo & 1) === 0 ? lo : hi;
    if (table[hi]! <= a) code = hi;
  }
  if (neg && !(fmt.style === 'fnuz' && code === 0)) code |= 0x80;
  return code;
}

/** Rounds an fp32 value to the nearest value representable in dtype `d` (identity for f32/f64). */
export function roundTo(d: DType, x: number): number {
  switch (d) {
    case 'f32':
      return Math.fround(x);
    case 'bf16':
      return bf16BitsToF32(f32ToBf16Bits(x));
    case 'f16':
      return f16BitsToF32(f32ToF16Bits(x));
    case 'f8e4m3fn':
    case 'f8e4m3fnuz':
    case 'f8e5m2':
    case 'f8e5m2fnuz':
      return fp8BitsToF32(d, f32ToFp8Bits(d, x));
    default:
      return x;
  }
}

/** Rounds every element of a Float32Array in place to dtype `d`. */
export function roundArrayTo(d: DType, a: Float32Array): void {
  if (d === 'f32' || d === 'f64') return;
  if (d === 'bf16') {
    const u = new Uint32Array(a.buffer, a.byteOffset, a.length);
    for (let i = 0; i < u.length; i++) {
      const b = u[i]!;
      if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) u[i] = (b | 0x400000) & 0xffff0000;
      else u[i] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16;
    }
    return;
  }
  for (let i = 0; i < a.length; i++) a[i] = roundTo(d, a[i]!);
}

/**
 * Converts a number to integer dtype `d` the way a C cast of the stored bit pattern does:
 * truncation toward zero, then wrap-around modulo 2^bits (bool: nonzero -> 1).
 */
export function toIntegerDtype(d: DType, x: number): number {
  if (d === 'bool') return x !== 0 && !Number.isNaN(x) ? 1 : 0;
  if (!Number.isFinite(x)) return 0;
  const t = Math.trunc(x);
  switch (d) {
    case 'i8':
      return ((t % 256) + 256 + 128) % 256 - 128;
    case 'u8':
      return ((t % 256) + 256) % 256;
    case 'i16':
      return ((t % 65536) + 65536 + 32768) % 65536 - 32768;
    case 'u16':
      return ((t % 65536) + 65536) % 65536;
    case 'i32':
      return t | 0;
    case 'u32':
      return t >>> 0;
    default:
      return t; // i64/u64: exact within 2^53
  }
}
