/**
 * ONNX TypeProto <-> TensorType, and the check of a model's declared types (graph outputs,
 * value_info) against the types ParaDiT infers.
 *
 * Dimensions: dim_value -> number, dim_param -> that symbol, neither -> a fresh symbol the caller
 * supplies. Placement has no ONNX form and is dropped on export.
 */
import type { Dim, TensorType } from '../graph';
import { formatType, tensorType } from '../graph';
import { dtypeFromOnnx, dtypeToOnnx, onnxTypeName } from '../dtype';
import { IrError } from '../errors';
import type { DimP, TypeP, ValueInfoP } from './proto';
import { int64ToNumber } from './proto';

/** What kind of type a TypeProto is, for messages ("a sequence"). */
function typeKind(t: TypeP): string {
  if (t.sequenceType) return 'a sequence';
  if (t.mapType) return 'a map';
  if (t.optionalType) return 'an optional';
  if (t.sparseTensorType) return 'a sparse tensor';
  return 'an untyped value';
}

/** A dimension as the model declares it: a size, a symbol, or undefined (neither). */
function declaredDim(d: DimP): Dim | undefined {
  if (d.dimValue !== null && d.dimValue !== undefined) {
    const v = int64ToNumber(d.dimValue);
    return v >= 0 ? v : undefined;
  }
  if (d.dimParam) return d.dimParam;
  return undefined;
}

/**
 * The TensorType of a graph input or declared value. `fresh(i)` names dimension i when the
 * model gives neither a size nor a symbol. Throws E_UNSUPPORTED for non-tensor types, unknown
 * ranks and unsupported dtypes; `what` names the value ("input 'x'").
 */
export function typeFromProto(vi: ValueInfoP, what: string, fresh: (axis: number) => string): TensorType {
  const t = vi.type;
  const tt = t?.tensorType;
  if (!t || !tt) {
    throw new IrError('E_UNSUPPORTED', `${what} is ${t ? typeKind(t) : 'an untyped value'}; ParaDiT supports tensor values only`);
  }
  const code = tt.elemType ?? 0;
  const dtype = dtypeFromOnnx(code);
  if (!dtype) throw new IrError('E_UNSUPPORTED', `${what} has data type ${onnxTypeName(code)}, which ParaDiT does not support`);
  if (!tt.shape) {
    throw new IrError('E_UNSUPPORTED', `${what} has no shape (unknown rank); ParaDiT needs the rank of every model input`);
  }
  const shape = (tt.shape.dim ?? []).map((d, i) => declaredDim(d) ?? fresh(i));
  return tensorType(dtype, shape);
}

/**
 * The declared type as far as it is known, for refining inference: undefined when the model
 * declares no tensor type, no shape, or a dtype ParaDiT lacks. Unknown dims become a placeholder
 * symbol (never used as a size).
 */
export function declaredTensorType(vi: ValueInfoP | undefined): TensorType | undefined {
  const tt = vi?.type?.tensorType;
  if (!tt || !tt.shape) return undefined;
  const dtype = dtypeFromOnnx(tt.elemType ?? 0);
  if (!dtype) return undefined;
  return tensorType(dtype, (tt.shape.dim ?? []).map((d) => declaredDim(d) ?? '?'));
}

/** "f32[2,?,s0]" for a declared type (unknown parts shown as ?). */
function formatDeclared(vi: ValueInfoP): string {
  const tt = vi.type?.tensorType;
  if (!tt) return 'non-tensor';
  const dt = dtypeFromOnnx(tt.elemType ?? 0) ?? onnxTypeName(tt.elemType ?? 0);
  if (!tt.shape) return `${dt}[?rank]`;
  return `${dt}[${(tt.shape.dim ?? []).map((d) => declaredDim(d) ?? '?').join(',')}]`;
}

/**
 * Compares an inferred type with what the model declares. Returns a description of the conflict
 * (dtype, rank or a static size differs), or undefined when they agree. Symbols never conflict.
 */
export function declaredConflict(inferred: TensorType, vi: ValueInfoP): string | undefined {
  const tt = vi.type?.tensorType;
  if (!tt) return undefined;
  const code = tt.elemType ?? 0;
  const conflict = (): string => `declared ${formatDeclared(vi)} by the model, but ParaDiT infers ${formatType(inferred)}`;
  if (code !== 0 && dtypeFromOnnx(code) !== inferred.dtype) return conflict();
  if (!tt.shape) return undefined;
  const dims = tt.shape.dim ?? [];
  if (dims.length !== inferred.shape.length) return conflict();
  for (let i = 0; i < dims.length; i++) {
    const d = declaredDim(dims[i]!);
    const s = inferred.shape[i]!;
    if (typeof d === 'number' && typeof s === 'number' && d !== s) return conflict();
  }
  return undefined;
}

/** A ValueInfoProto for a value of type `t`. */
export function valueInfoToProto(name: string, t: TensorType): ValueInfoP {
  return {
    name,
    type: {
      tensorType: {
        elemType: dtypeToOnnx(t.dtype),
        shape: { dim: t.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}
