/** Small builders for hand-written ONNX protos in the onnx-*.test.ts files. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { AttributeP, GraphP, NodeP, TensorP, ValueInfoP } from '../src/onnx/proto';
import { ATTR, encodeModel, stringToBytes } from '../src/onnx/proto';
import { IrError } from '../src/errors';

export const FLOAT = 1;
export const INT64 = 7;
export const BOOL = 9;

/** A ValueInfoProto; a dim of null has neither dim_value nor dim_param. */
export function vi(name: string, elemType: number, dims?: readonly (number | string | null)[]): ValueInfoP {
  const shape = dims && { dim: dims.map((d) => (d === null ? {} : typeof d === 'number' ? { dimValue: d } : { dimParam: d })) };
  return { name, type: { tensorType: shape ? { elemType, shape } : { elemType } } };
}

export function node(opType: string, input: string[], output: string[], attribute: AttributeP[] = [], name = '', domain = ''): NodeP {
  return { opType, input, output, attribute, name, domain };
}

export const attrInt = (name: string, i: number): AttributeP => ({ name, type: ATTR.INT, i });
export const attrInts = (name: string, ints: number[]): AttributeP => ({ name, type: ATTR.INTS, ints });
export const attrFloat = (name: string, f: number): AttributeP => ({ name, type: ATTR.FLOAT, f });
export const attrString = (name: string, s: string): AttributeP => ({ name, type: ATTR.STRING, s: stringToBytes(s) });
export const attrGraph = (name: string, g: GraphP): AttributeP => ({ name, type: ATTR.GRAPH, g });
export const attrTensor = (name: string, t: TensorP): AttributeP => ({ name, type: ATTR.TENSOR, t });

export function f32Tensor(name: string, dims: number[], values: number[]): TensorP {
  return { name, dims, dataType: FLOAT, floatData: values };
}

export function i64Tensor(name: string, dims: number[], values: number[]): TensorP {
  return { name, dims, dataType: INT64, int64Data: values };
}

export interface ModelSpec {
  readonly ir?: number;
  readonly opset?: number;
  readonly functions?: Parameters<typeof encodeModel>[0]['functions'];
  /** Extra opset imports (domain -> version). */
  readonly domains?: Readonly<Record<string, number>>;
}

export function modelBytes(graph: GraphP, spec: ModelSpec = {}): Uint8Array {
  return encodeModel({
    irVersion: spec.ir ?? 8,
    opsetImport: [{ domain: '', version: spec.opset ?? 17 }, ...Object.entries(spec.domains ?? {}).map(([domain, version]) => ({ domain, version }))],
    producerName: 'test',
    graph,
    functions: spec.functions ?? [],
  });
}

export function tempDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `paradit-${tag}-`));
}

/** Runs `f` and returns the IrError it throws (failing the test when it throws nothing else). */
export function irErrorOf(f: () => unknown): IrError {
  try {
    f();
  } catch (e) {
    if (e instanceof IrError) return e;
    throw e;
  }
  throw new Error('expected an IrError, but nothing was thrown');
}
