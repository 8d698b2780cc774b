/**
 * The one module that touches `onnx-proto` (protobufjs code generated from onnx 1.10's
 * onnx.proto). Everything else in ParaDiT sees the narrow interfaces below: plain data whose
 * fields are all optional (decoding fills defaults; encoding accepts any subset).
 *
 * int64 fields decode as Long objects (protobufjs uses `long` when it can find it) or as plain
 * numbers; `int64ToNumber` turns either into a JS number. Values beyond 2^53 clamp to
 * ±Number.MAX_SAFE_INTEGER: the only such values in real models are sentinels such as INT64_MAX
 * as a Slice end, which every rule clamps to the axis size anyway, and keeping every integer
 * a safe integer keeps integer arithmetic in the rules exact.
 *
 * Enum fields newer than onnx 1.10 (data types FLOAT8E4M3FN = 17 and beyond) arrive as bare
 * numbers; fields added to the schema after 1.10 are skipped by the decoder.
 */
import { onnx } from 'onnx-proto';
import { IrError } from '../errors';

/** The parts of a `long` Long that conversion needs. */
interface LongLike {
  readonly low: number;
  readonly high: number;
  readonly unsigned: boolean;
}

type Int64 = number | LongLike;

export interface StringEntryP {
  key?: string | null;
  value?: string | null;
}

export interface DimP {
  dimValue?: Int64 | null;
  dimParam?: string | null;
  denotation?: string | null;
}

interface TensorTypeP {
  elemType?: number | null;
  shape?: { dim?: DimP[] | null } | null;
}

export interface TypeP {
  tensorType?: TensorTypeP | null;
  sequenceType?: object | null;
  mapType?: object | null;
  optionalType?: object | null;
  sparseTensorType?: object | null;
}

export interface TensorP {
  name?: string | null;
  dims?: Int64[] | null;
  dataType?: number | null;
  segment?: object | null;
  rawData?: Uint8Array | null;
  floatData?: number[] | null;
  int32Data?: number[] | null;
  int64Data?: Int64[] | null;
  doubleData?: number[] | null;
  uint64Data?: Int64[] | null;
  stringData?: Uint8Array[] | null;
  externalData?: StringEntryP[] | null;
  dataLocation?: number | null;
  docString?: string | null;
}

export interface AttributeP {
  name?: string | null;
  refAttrName?: string | null;
  type?: number | null;
  f?: number | null;
  i?: Int64 | null;
  s?: Uint8Array | null;
  t?: TensorP | null;
  g?: GraphP | null;
  sparseTensor?: object | null;
  tp?: object | null;
  floats?: number[] | null;
  ints?: Int64[] | null;
  strings?: Uint8Array[] | null;
  tensors?: TensorP[] | null;
  graphs?: GraphP[] | null;
  sparseTensors?: object[] | null;
  typeProtos?: object[] | null;
}

export interface NodeP {
  input?: string[] | null;
  output?: string[] | null;
  name?: string | null;
  opType?: string | null;
  domain?: string | null;
  attribute?: AttributeP[] | null;
  docString?: string | null;
}

export interface ValueInfoP {
  name?: string | null;
  type?: TypeP | null;
  docString?: string | null;
}

export interface GraphP {
  node?: NodeP[] | null;
  name?: string | null;
  initializer?: TensorP[] | null;
  sparseInitializer?: object[] | null;
  docString?: string | null;
  input?: ValueInfoP[] | null;
  output?: ValueInfoP[] | null;
  valueInfo?: ValueInfoP[] | null;
}

interface OpsetP {
  domain?: string | null;
  version?: Int64 | null;
}

export interface FunctionP {
  name?: string | null;
  input?: string[] | null;
  output?: string[] | null;
  attribute?: string[] | null;
  node?: NodeP[] | null;
  docString?: string | null;
  opsetImport?: OpsetP[] | null;
  domain?: string | null;
}

export interface ModelP {
  irVersion?: Int64 | null;
  opsetImport?: OpsetP[] | null;
  producerName?: string | null;
  producerVersion?: string | null;
  domain?: string | null;
  modelVersion?: Int64 | null;
  docString?: string | null;
  graph?: GraphP | null;
  metadataProps?: StringEntryP[] | null;
  functions?: FunctionP[] | null;
}

/** AttributeProto.AttributeType codes. */
export const ATTR = {
  UNDEFINED: 0, FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8,
  TENSORS: 9, GRAPHS: 10, SPARSE_TENSOR: 11, SPARSE_TENSORS: 12, TYPE_PROTO: 13, TYPE_PROTOS: 14,
} as const;

/** TensorProto.DataLocation.EXTERNAL. */
export const DATA_LOCATION_EXTERNAL = 1;

const TWO_32 = 4294967296;

/** int64 / uint64 field value -> number, clamped to ±Number.MAX_SAFE_INTEGER (see header). */
export function int64ToNumber(x: Int64 | null | undefined): number {
  if (x === null || x === undefined) return 0;
  let v: number;
  if (typeof x === 'number') v = x;
  else if (x.unsigned) v = (x.high >>> 0) * TWO_32 + (x.low >>> 0);
  else v = (x.high | 0) * TWO_32 + (x.low >>> 0);
  if (v > Number.MAX_SAFE_INTEGER) return Number.MAX_SAFE_INTEGER;
  if (v < -Number.MAX_SAFE_INTEGER) return -Number.MAX_SAFE_INTEGER;
  return v;
}

export function int64sToNumbers(xs: readonly Int64[] | null | undefined): number[] {
  if (!xs) return [];
  const out = new Array<number>(xs.length);
  for (let i = 0; i < xs.length; i++) out[i] = int64ToNumber(xs[i]);
  return out;
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Decodes a serialized ModelProto. Throws IrError('E_PARSE') naming `what` (e.g. "model.onnx")
 * when the bytes are not a protobuf of that shape.
 */
export function decodeModel(bytes: Uint8Array, what: string): ModelP {
  try {
    return onnx.ModelProto.decode(bytes) as ModelP;
  } catch (e) {
    throw new IrError(
      'E_PARSE',
      `${what} is not a valid ONNX model: ${reason(e)}; the file may be truncated or not an ONNX protobuf`,
    );
  }
}

/** Decodes a serialized TensorProto (model-zoo test data such as input_0.pb). */
export function decodeTensor(bytes: Uint8Array, what: string): TensorP {
  try {
    return onnx.TensorProto.decode(bytes) as TensorP;
  } catch (e) {
    throw new IrError(
      'E_PARSE',
      `${what} is not a valid ONNX TensorProto: ${reason(e)}; the file may be truncated or not a serialized tensor`,
    );
  }
}

export function encodeModel(m: ModelP): Uint8Array {
  return onnx.ModelProto.encode(m as unknown as onnx.IModelProto).finish();
}

export function encodeTensor(t: TensorP): Uint8Array {
  return onnx.TensorProto.encode(t as unknown as onnx.ITensorProto).finish();
}

const utf8 = new TextDecoder('utf-8');
const utf8Enc = new TextEncoder();

export function bytesToString(b: Uint8Array | null | undefined): string {
  return b ? utf8.decode(b) : '';
}

export function stringToBytes(s: string): Uint8Array {
  return utf8Enc.encode(s);
}
