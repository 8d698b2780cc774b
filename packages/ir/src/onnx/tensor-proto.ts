/**
 * TensorProto <-> Tensor. Reads every data field ONNX defines (raw_data, float_data, int32_data
 * which also carries f16/bf16/fp8/8- and 16-bit integer/bool bit patterns, int64_data,
 * double_data, uint64_data) and external data; writes raw_data (little-endian), the form every
 * ONNX consumer reads. Also the model-zoo test-data files (input_K.pb / output_K.pb).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { DType } from '../dtype';
import {
  bf16BitsToF32, byteSize, dtypeFromOnnx, dtypeToOnnx, f16BitsToF32, f32ToF16Bits, f32ToFp8Bits,
  fp8BitsToF32, onnxTypeName, toIntegerDtype,
} from '../dtype';
import { IrError } from '../errors';
import { Tensor, TensorData, allocData, numel } from '../tensor';
import { DATA_LOCATION_EXTERNAL, TensorP, decodeTensor, encodeTensor, int64ToNumber, int64sToNumbers } from './proto';
import { parseExternalRef, readExternalBytes } from './external-data';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const TWO_32 = 4294967296;

/** The dtype of a TensorProto, or an E_UNSUPPORTED error naming the tensor (`what`). */
export function tensorProtoDtype(tp: TensorP, what: string): DType {
  const code = tp.dataType ?? 0;
  if (code === 8) {
    throw new IrError('E_UNSUPPORTED', `${what} is a STRING tensor; ParaDiT supports numeric tensors only`);
  }
  const d = dtypeFromOnnx(code);
  if (!d) throw new IrError('E_UNSUPPORTED', `${what} has data type ${onnxTypeName(code)}, which ParaDiT does not support`);
  return d;
}

export function tensorProtoShape(tp: TensorP, what: string): number[] {
  const dims = int64sToNumbers(tp.dims);
  for (const d of dims) if (d < 0) throw new IrError('E_PARSE', `${what} has a negative dimension in [${dims.join(',')}]`);
  return dims;
}

/** A typed-array-safe copy when `bytes` sits at an offset that is not a multiple of `align`. */
function aligned(bytes: Uint8Array, align: number): Uint8Array {
  if (bytes.byteOffset % align === 0) return bytes;
  const c = new Uint8Array(bytes.length);
  c.set(bytes);
  return c;
}

let f16Table: Float32Array | undefined;
function f16Lookup(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
  }
  return f16Table;
}

/** Decodes `n` little-endian elements of `dtype` from raw bytes (any alignment) into fresh storage. */
export function decodeRawData(dtype: DType, raw: Uint8Array, n: number): TensorData {
  if (!LITTLE_ENDIAN) throw new IrError('E_UNSUPPORTED', 'reading ONNX raw_data needs a little-endian host');
  const size = byteSize(dtype);
  const b = aligned(raw, Math.min(size, 8));
  const buf = b.buffer;
  const off = b.byteOffset;
  const out = allocData(dtype, n);
  switch (dtype) {
    case 'f32':
      out.set(new Float32Array(buf, off, n));
      break;
    case 'f64':
      out.set(new Float64Array(buf, off, n));
      break;
    case 'bf16': {
      const src = new Uint16Array(buf, off, n);
      const dst = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) dst[i] = src[i]! << 16;
      break;
    }
    case 'f16': {
      const src = new Uint16Array(buf, off, n);
      const t = f16Lookup();
      for (let i = 0; i < n; i++) out[i] = t[src[i]!]!;
      break;
    }
    case 'f8e4m3fn':
    case 'f8e4m3fnuz':
    case 'f8e5m2':
    case 'f8e5m2fnuz':
      for (let i = 0; i < n; i++) out[i] = fp8BitsToF32(dtype, b[i]!);
      break;
    case 'u8':
      out.set(b.subarray(0, n));
      break;
    case 'i8':
      out.set(new Int8Array(buf, off, n));
      break;
    case 'u16':
      out.set(new Uint16Array(buf, off, n));
      break;
    case 'i16':
      out.set(new Int16Array(buf, off, n));
      break;
    case 'u32':
      out.set(new Uint32Array(buf, off, n));
      break;
    case 'i32':
      out.set(new Int32Array(buf, off, n));
      break;
    case 'bool':
      for (let i = 0; i < n; i++) out[i] = b[i] ? 1 : 0;
      break;
    case 'i64':
    case 'u64': {
      const lo = new Uint32Array(buf, off, 2 * n);
      const hi = dtype === 'i64' ? new Int32Array(buf, off, 2 * n) : lo;
      for (let i = 0; i < n; i++) {
        const v = hi[2 * i + 1]! * TWO_32 + lo[2 * i]!;
        out[i] = v > Number.MAX_SAFE_INTEGER ? Number.MAX_SAFE_INTEGER : v < -Number.MAX_SAFE_INTEGER ? -Number.MAX_SAFE_INTEGER : v;
      }
      break;
    }
    default: {
      const never: never = dtype;
      throw new Error(`unhandled dtype ${String(never)}`);
    }
  }
  return out;
}

/** Decodes the typed (non-raw) data field that ONNX uses for `dtype`. */
function decodeTypedField(dtype: DType, tp: TensorP, n: number, what: string): TensorData {
  const out = allocData(dtype, n);
  const check = (len: number, field: string): void => {
    if (len !== n) throw new IrError('E_PARSE', `${what}: ${field} has ${len} values, but its shape needs ${n}`);
  };
  switch (dtype) {
    case 'f32': {
      const src = tp.floatData ?? [];
      check(src.length, 'float_data');
      out.set(src);
      break;
    }
    case 'f64': {
      const src = tp.doubleData ?? [];
      check(src.length, 'double_data');
      out.set(src);
      break;
    }
    case 'i64': {
      const src = tp.int64Data ?? [];
      check(src.length, 'int64_data');
      for (let i = 0; i < n; i++) out[i] = int64ToNumber(src[i]);
      break;
    }
    case 'u32':
    case 'u64': {
      const src = tp.uint64Data ?? [];
      check(src.length, 'uint64_data');
      for (let i = 0; i < n; i++) out[i] = toIntegerDtype(dtype, int64ToNumber(src[i]));
      break;
    }
    default: {
      // int32_data: 32-bit and narrower integers and bool by value; f16, bf16 and fp8 as bit patterns.
      const src = tp.int32Data ?? [];
      check(src.length, 'int32_data');
      for (let i = 0; i < n; i++) {
        const x = src[i]!;
        if (dtype === 'f16') out[i] = f16BitsToF32(x & 0xffff);
        else if (dtype === 'bf16') out[i] = bf16BitsToF32(x & 0xffff);
        else if (dtype === 'f8e4m3fn' || dtype === 'f8e4m3fnuz' || dtype === 'f8e5m2' || dtype === 'f8e5m2fnuz') out[i] = fp8BitsToF32(dtype, x);
        else out[i] = toIntegerDtype(dtype, x);
      }
    }
  }
  return out;
}

interface TensorReadOptions {
  /** Folder that external data locations are relative to (the model's folder). */
  readonly baseDir?: string;
  /** Names the tensor in messages; defaults to "tensor '<name>'". */
  readonly what?: string;
}

/** Converts a TensorProto (inline or external data) to a Tensor. */
export function tensorFromProto(tp: TensorP, opts: TensorReadOptions = {}): Tensor {
  const what = opts.what ?? `tensor '${tp.name ?? ''}'`;
  const dtype = tensorProtoDtype(tp, what);
  const shape = tensorProtoShape(tp, what);
  if (tp.segment) throw new IrError('E_UNSUPPORTED', `${what} is a segment of a larger tensor; ParaDiT does not support segmented tensors`);
  const n = numel(shape);
  const bytes = n * byteSize(dtype);
  if (tp.dataLocation === DATA_LOCATION_EXTERNAL) {
    const ref = parseExternalRef(tp, opts.baseDir, what);
    return new Tensor(dtype, shape, decodeRawData(dtype, readExternalBytes(ref, bytes, what), n));
  }
  const raw = tp.rawData;
  if (raw && raw.length > 0) {
    if (raw.length !== bytes) {
      throw new IrError('E_PARSE', `${what}: raw_data has ${raw.length} bytes, but ${dtype}[${shape.join(',')}] needs ${bytes}`);
    }
    return new Tensor(dtype, shape, decodeRawData(dtype, raw, n));
  }
  return new Tensor(dtype, shape, decodeTypedField(dtype, tp, n, what));
}

/** Little-endian bytes of a tensor in ONNX raw_data layout (a fresh buffer). */
export function encodeRawData(t: Tensor): Uint8Array {
  const n = t.size;
  const d = t.data;
  const out = new Uint8Array(n * byteSize(t.dtype));
  const buf = out.buffer;
  switch (t.dtype) {
    case 'f32':
      new Float32Array(buf).set(d);
      break;
    case 'f64':
      new Float64Array(buf).set(d);
      break;
    case 'bf16': {
      // Values are exactly bf16 (storage invariant), so the top half of the fp32 bits is exact.
      const src = new Uint32Array(d.buffer, d.byteOffset, n);
      const dst = new Uint16Array(buf);
      for (let i = 0; i < n; i++) dst[i] = src[i]! >>> 16;
      break;
    }
    case 'f16': {
      const dst = new Uint16Array(buf);
      for (let i = 0; i < n; i++) dst[i] = f32ToF16Bits(d[i]!);
      break;
    }
    case 'f8e4m3fn':
    case 'f8e4m3fnuz':
    case 'f8e5m2':
    case 'f8e5m2fnuz':
      for (let i = 0; i < n; i++) out[i] = f32ToFp8Bits(t.dtype, d[i]!, false);
      break;
    case 'u8':
    case 'bool':
      out.set(d);
      break;
    case 'i8':
      new Int8Array(buf).set(d);
      break;
    case 'u16':
      new Uint16Array(buf).set(d);
      break;
    case 'i16':
      new Int16Array(buf).set(d);
      break;
    case 'u32':
      new Uint32Array(buf).set(d);
      break;
    case 'i32':
      new Int32Array(buf).set(d);
      break;
    case 'i64':
    case 'u64': {
      const lo = new Uint32Array(buf);
      const hi = new Int32Array(buf);
      for (let i = 0; i < n; i++) {
        const v = d[i]!;
        const h = Math.floor(v / TWO_32);
        lo[2 * i] = v - h * TWO_32;
        hi[2 * i + 1] = h;
      }
      break;
    }
    default: {
      const never: never = t.dtype;
      throw new Error(`unhandled dtype ${String(never)}`);
    }
  }
  return out;
}

/** A TensorProto holding `t` inline as raw_data. */
export function tensorToProto(t: Tensor, name: string): TensorP {
  return { name, dims: [...t.shape], dataType: dtypeToOnnx(t.dtype), rawData: encodeRawData(t) };
}

/** Reads a serialized TensorProto file (model-zoo `input_0.pb`, `output_0.pb`). */
export function readNamedTensorFile(file: string): { name: string; tensor: Tensor } {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new IrError('E_INPUT', `cannot read tensor file '${file}': ${(e as Error).message}`);
  }
  const tp = decodeTensor(bytes, path.basename(file));
  const tensor = tensorFromProto(tp, { baseDir: path.dirname(file), what: `tensor file '${file}'` });
  return { name: tp.name ?? '', tensor };
}

/** Reads a serialized TensorProto file and returns its tensor. */
export function readTensorFile(file: string): Tensor {
  return readNamedTensorFile(file).tensor;
}

/** Writes `t` as a serialized TensorProto named `name` (raw_data). */
export function writeTensorFile(file: string, t: Tensor, name = ''): void {
  fs.writeFileSync(file, encodeTensor(tensorToProto(t, name)));
}
