/**
 * C types of each dtype in emitted kernels: the storage type in device memory and the compute
 * type in registers (f16/bf16/f32 compute in float, f64 in double, integers as themselves),
 * with conversion, rounding and literal helpers. f8e4m3fn is its byte (`unsigned char`), for
 * kernels that only move it (the packing around an e4m3 all_to_all, --comm-dtype fp8): no kernel
 * computes on it here (cuda_fp8.h is not allowed); cuda-coverage refuses any other op reading or
 * writing it, and the fp8 kernels (fp8-quantize.ts, the FP8 gemm) convert it themselves.
 */
import type { DType } from '@paradit/ir';
import { CodegenError } from './codegen-error';

interface CType {
  readonly storage: string;
  readonly compute: string;
}

const TABLE: { readonly [K in DType]: CType | undefined } = {
  f32: { storage: 'float', compute: 'float' },
  f16: { storage: '__half', compute: 'float' },
  bf16: { storage: '__nv_bfloat16', compute: 'float' },
  f64: { storage: 'double', compute: 'double' },
  i8: { storage: 'signed char', compute: 'signed char' },
  i16: { storage: 'short', compute: 'short' },
  i32: { storage: 'int', compute: 'int' },
  i64: { storage: 'long long', compute: 'long long' },
  u8: { storage: 'unsigned char', compute: 'unsigned char' },
  u16: { storage: 'unsigned short', compute: 'unsigned short' },
  u32: { storage: 'unsigned int', compute: 'unsigned int' },
  u64: { storage: 'unsigned long long', compute: 'unsigned long long' },
  bool: { storage: 'unsigned char', compute: 'bool' },
  f8e4m3fn: { storage: 'unsigned char', compute: 'unsigned char' },
  f8e4m3fnuz: undefined,
  f8e5m2: undefined,
  f8e5m2fnuz: undefined,
};

function entry(d: DType): CType {
  const t = TABLE[d];
  if (!t) throw new CodegenError(`dtype ${d} has no CUDA kernel type here (fp8 is only supported inside GEMMs)`);
  return t;
}

export const storageType = (d: DType): string => entry(d).storage;
export const computeType = (d: DType): string => entry(d).compute;
export const isFloatCompute = (d: DType): boolean => d === 'f32' || d === 'f16' || d === 'bf16' || d === 'f64';
/** Dtypes the 16-byte vector load/store helpers handle (converted to float lanes). */
export const isVectorDtype = (d: DType): boolean => d === 'f32' || d === 'f16' || d === 'bf16';

export function byteSizeOf(d: DType): number {
  const s = entry(d).storage;
  if (s === 'double' || s.includes('long long')) return 8;
  if (s === 'float' || s.includes('int')) return 4;
  if (s === '__half' || s === '__nv_bfloat16' || s.includes('short')) return 2;
  return 1;
}

/** Expression converting a loaded storage element `x` to the compute type. */
export function fromStorage(d: DType, x: string): string {
  if (d === 'f16') return `__half2float(${x})`;
  if (d === 'bf16') return `__bfloat162float(${x})`;
  if (d === 'bool') return `(${x} != 0)`;
  return x;
}

/** Expression converting a compute value to the storage type. */
export function toStorage(d: DType, x: string): string {
  if (d === 'f16') return `__float2half_rn(${x})`;
  if (d === 'bf16') return `__float2bfloat16_rn(${x})`;
  if (d === 'bool') return `(unsigned char)((${x}) ? 1 : 0)`;
  return x;
}

/** Rounds a float compute value to what dtype d holds (the interpreter rounds every value). */
export function roundTo(d: DType, x: string): string {
  if (d === 'f16') return `pdt_round_f16(${x})`;
  if (d === 'bf16') return `pdt_round_bf16(${x})`;
  return x;
}

/** A C literal of value v in d's compute type. */
export function literal(d: DType, v: number): string {
  if (d === 'bool') return v ? 'true' : 'false';
  if (isFloatCompute(d)) {
    const dbl = d === 'f64';
    if (Number.isNaN(v)) return dbl ? '__longlong_as_double(0x7ff8000000000000LL)' : '__int_as_float(0x7fc00000)';
    if (v === Infinity) return dbl ? '__longlong_as_double(0x7ff0000000000000LL)' : '__int_as_float(0x7f800000)';
    if (v === -Infinity) return dbl ? '__longlong_as_double(0xfff0000000000000ULL)' : '__int_as_float(0xff800000)';
    let s = dbl ? v.toPrecision(17) : Math.fround(v).toPrecision(9);
    if (!/[.eE]/.test(s)) s += '.0';
    s = s.replace(/^(-?\d+)e/, '$1.0e');
    return dbl ? s : `${s}f`;
  }
  const c = computeType(d);
  if (d === 'i64') return v === -(2 ** 63) ? '(-9223372036854775807LL - 1)' : `${Math.trunc(v)}LL`;
  if (d === 'u64') return `${Math.trunc(v)}ULL`;
  if (d === 'u32') return `${Math.trunc(v)}u`;
  return `(${c})${Math.trunc(v)}`;
}
