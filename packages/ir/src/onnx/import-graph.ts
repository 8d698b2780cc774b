/**
 * GraphProto -> Graph: binds names in nested scopes (subgraphs read enclosing values), turns
 * initializers into lazy constants, adds every node through GraphBuilder (which runs the op's
 * shape rule), and checks each value the model annotates (value_info, graph outputs) against the
 * inferred type.
 */
import * as fs from 'fs';
import type { AttrValue, Attrs, Graph, TensorType } from '../graph';
import { ConstData, Value, formatType, tensorType } from '../graph';
import { GraphBuilder } from '../builder';
import { SequenceLowering, lowerableSequences } from './sequences';
import { IrError } from '../errors';
import { byteSize, isFloat } from '../dtype';
import { numel } from '../tensor';
import type { AttributeP, GraphP, NodeP, TensorP, ValueInfoP } from './proto';
import { ATTR, DATA_LOCATION_EXTERNAL, bytesToString, int64ToNumber, int64sToNumbers } from './proto';
import { tensorFromProto, tensorProtoDtype, tensorProtoShape } from './tensor-proto';
import { parseExternalRef } from './external-data';
import { randomTensor, tensorSeed } from './random-weights';
import { declaredConflict, declaredTensorType, typeFromProto } from './types';
import { nodeName } from './scan';

/** State shared by the whole import of one model. */
export interface ImportContext {
  readonly opset: number;
  /** Folder that external data locations are relative to. */
  readonly baseDir: string | undefined;
  /** Seed for random weights, when the caller asked for them. */
  readonly randomSeed: number | undefined;
  /** Set once any initializer was given random data. */
  usedRandom: boolean;
  /** Graph-only import: absent float weights get stand-in data, recorded as absent (not random). */
  readonly graphOnly?: boolean;
  /** Set once any initializer's external data was absent under graphOnly. */
  usedAbsent?: boolean;
  /** Symbols already used by the model (dim_param), so fresh ones do not collide. */
  readonly symbols: Set<string>;
  /** Size of each external data file by path (undefined: missing), stat'ed once. */
  readonly fileSizes: Map<string, number | undefined>;
}

/** Names visible in one graph: its own, then those of enclosing graphs. */
export class Scope {
  private readonly names = new Map<string, Value>();
  constructor(private readonly parent?: Scope) {}

  lookup(name: string): Value | undefined {
    return this.names.get(name) ?? this.parent?.lookup(name);
  }

  define(name: string, v: Value, what: string): void {
    if (this.names.has(name)) throw new IrError('E_PARSE', `${what} defines '${name}', which is already defined (ONNX values are assigned once)`);
    this.names.set(name, v);
  }
}

const RANDOM_HINT = 'pass --random-weights to compile with seeded random weights (benchmarking)';

function fileSize(ctx: ImportContext, file: string): number | undefined {
  if (!ctx.fileSizes.has(file)) {
    let size: number | undefined;
    try {
      size = fs.statSync(file).size;
    } catch {
      size = undefined;
    }
    ctx.fileSizes.set(file, size);
  }
  return ctx.fileSizes.get(file);
}

/** An initializer as a lazy constant: nothing is read or decoded until its data is needed. */
function importInitializer(ctx: ImportContext, tp: TensorP, builder: GraphBuilder): Value {
  const name = tp.name ?? '';
  const what = `initializer '${name}'`;
  const dtype = tensorProtoDtype(tp, what);
  const shape = tensorProtoShape(tp, what);
  const type = tensorType(dtype, shape);
  const bytes = numel(shape) * byteSize(dtype);
  if (tp.dataLocation === DATA_LOCATION_EXTERNAL) {
    const ref = parseExternalRef(tp, ctx.baseDir, what);
    const size = fileSize(ctx, ref.file);
    if (size === undefined) {
      if (ctx.randomSeed === undefined && !ctx.graphOnly) {
        throw new IrError('E_INPUT', `${what} keeps its data in '${ref.file}', which does not exist; put the weights file next to the model, or ${RANDOM_HINT}`);
      }
      if (!isFloat(dtype)) {
        throw new IrError(
          'E_INPUT',
          `${what} (${formatType(type)}) keeps its data in '${ref.file}', which does not exist; ` +
            `${ctx.graphOnly && ctx.randomSeed === undefined ? 'a graph-only import stands in for float weights only' : 'random weights replace float tensors only'}, so this file is required`,
        );
      }
      if (ctx.randomSeed === undefined) ctx.usedAbsent = true;
      else ctx.usedRandom = true;
      const seed = tensorSeed(ctx.randomSeed ?? 0, name);
      const source = ctx.randomSeed === undefined ? { kind: 'random' as const, seed, standIn: true } : { kind: 'random' as const, seed };
      return builder.lazyConstant(new ConstData(type, source, () => randomTensor(dtype, shape, seed)), name);
    }
    if (ref.offset + bytes > size) {
      // Checked now (one stat per file) so a wrong or truncated weights file fails at import.
      throw new IrError(
        'E_INPUT',
        `${what} needs bytes ${ref.offset}..${ref.offset + bytes} of '${ref.file}', but the file has ${size} bytes; ` +
          'the weights file is truncated or belongs to another model',
      );
    }
    const source = { kind: 'external', file: ref.file, offset: ref.offset, length: bytes } as const;
    const baseDir = ctx.baseDir;
    return builder.lazyConstant(new ConstData(type, source, () => tensorFromProto(tp, { baseDir, what })), name);
  }
  const raw = tp.rawData;
  if (raw && raw.length > 0 && raw.length !== bytes) {
    throw new IrError('E_PARSE', `${what}: raw_data has ${raw.length} bytes, but ${formatType(type)} needs ${bytes}`);
  }
  return builder.lazyConstant(new ConstData(type, { kind: 'inline' }, () => tensorFromProto(tp, { what })), name);
}

function attrKind(a: AttributeP): number {
  if (a.type) return a.type;
  // IR version 1 models may leave `type` unset: infer it from the field that is present.
  const has = (f: string): boolean => Object.prototype.hasOwnProperty.call(a, f);
  if (a.g) return ATTR.GRAPH;
  if (a.t) return ATTR.TENSOR;
  if (a.graphs?.length) return ATTR.GRAPHS;
  if (a.tensors?.length) return ATTR.TENSORS;
  if (a.ints?.length) return ATTR.INTS;
  if (a.floats?.length) return ATTR.FLOATS;
  if (a.strings?.length) return ATTR.STRINGS;
  if (has('s')) return ATTR.STRING;
  if (has('i')) return ATTR.INT;
  return ATTR.FLOAT;
}

function importAttr(ctx: ImportContext, a: AttributeP, owner: string, builder: GraphBuilder, scope: Scope): AttrValue {
  const name = a.name ?? '';
  const what = `attribute '${name}' of node '${owner}'`;
  const sub = (g: GraphP, prefix: string): Graph =>
    importGraph(ctx, g, new GraphBuilder(ctx.opset, builder), new Scope(scope), prefix, name);
  const kind = attrKind(a);
  switch (kind) {
    case ATTR.FLOAT:
      return { kind: 'float', value: a.f ?? 0 };
    case ATTR.INT:
      return { kind: 'int', value: int64ToNumber(a.i) };
    case ATTR.STRING:
      return { kind: 'string', value: bytesToString(a.s) };
    case ATTR.TENSOR:
      if (!a.t) throw new IrError('E_PARSE', `${what} is a TENSOR attribute without a tensor`, owner);
      return { kind: 'tensor', value: tensorFromProto(a.t, { baseDir: ctx.baseDir, what }) };
    case ATTR.GRAPH:
      if (!a.g) throw new IrError('E_PARSE', `${what} is a GRAPH attribute without a graph`, owner);
      return { kind: 'graph', value: sub(a.g, `${owner}/${name}/`) };
    case ATTR.FLOATS:
      return { kind: 'floats', value: Object.freeze([...(a.floats ?? [])]) };
    case ATTR.INTS:
      return { kind: 'ints', value: Object.freeze(int64sToNumbers(a.ints)) };
    case ATTR.STRINGS:
      return { kind: 'strings', value: Object.freeze((a.strings ?? []).map(bytesToString)) };
    case ATTR.TENSORS:
      return { kind: 'tensors', value: Object.freeze((a.tensors ?? []).map((t) => tensorFromProto(t, { baseDir: ctx.baseDir, what }))) };
    case ATTR.GRAPHS:
      return { kind: 'graphs', value: Object.freeze((a.graphs ?? []).map((g, k) => sub(g, `${owner}/${name}[${k}]/`))) };
    default:
      throw new IrError('E_UNSUPPORTED', `${what} has attribute type ${kind} (sparse tensor or type proto), which ParaDiT does not support`, owner);
  }
}

function conflictError(op: string, node: string, value: string, conflict: string): IrError {
  return new IrError(
    'E_OP',
    `${op} '${node}': output '${value}' is ${conflict}; the model's type annotation (value_info or graph output) ` +
      'disagrees with the op semantics: a broken export, or a ParaDiT shape-rule bug',
    node,
  );
}

function importNode(
  ctx: ImportContext,
  n: NodeP,
  name: string,
  builder: GraphBuilder,
  scope: Scope,
  declared: ReadonlyMap<string, ValueInfoP>,
  sequences: SequenceLowering,
): void {
  const op = n.opType ?? '';
  const inputs = (n.input ?? []).map((x) => {
    if (!x || sequences.isPending(x)) return null; // a lowered sequence has no value of its own
    const v = scope.lookup(x);
    if (!v) {
      throw new IrError(
        'E_PARSE',
        `${op} '${name}' reads '${x}', which no graph input, initializer or earlier node defines (ONNX nodes must be in topological order)`,
        name,
      );
    }
    return v;
  });
  const attrs: Record<string, AttrValue> = {};
  for (const a of n.attribute ?? []) attrs[a.name ?? ''] = importAttr(ctx, a, name, builder, scope);
  if (sequences.handle(n, name, inputs, attrs, builder, (o, v) => scope.define(o, v, `${op} '${name}'`))) return;
  const outNames = [...(n.output ?? [])];
  while (outNames.length > 0 && !outNames[outNames.length - 1]) outNames.pop();
  const decl: (TensorType | undefined)[] = outNames.map((o) => (o ? declaredTensorType(declared.get(o)) : undefined));
  let outs: Value[];
  try {
    outs = builder.add(op, inputs, Object.freeze(attrs) as Attrs, { name, numOutputs: outNames.length, outputNames: outNames, declared: decl });
  } catch (e) {
    if (e instanceof IrError) throw e;
    throw new IrError('E_OP', `${op} '${name}': ${(e as Error).message}`, name);
  }
  outs.forEach((v, k) => {
    const o = outNames[k];
    if (!o) return;
    const vi = declared.get(o);
    const c = vi ? declaredConflict(v.type, vi) : undefined;
    if (c) throw conflictError(op, name, o, c);
    scope.define(o, v, `${op} '${name}'`);
  });
}

/** A fresh symbol for an input dimension the model leaves unnamed. */
function freshSymbol(ctx: ImportContext, input: string, axis: number): string {
  let s = `${input}_d${axis}`;
  for (let k = 1; ctx.symbols.has(s); k++) s = `${input}_d${axis}_${k}`;
  ctx.symbols.add(s);
  return s;
}

/**
 * Imports one graph into `builder`. `prefix` is put before synthesized node names of this graph
 * (subgraphs: "<node>/<attribute>/"); `defaultName` names a graph the model leaves unnamed.
 */
export function importGraph(ctx: ImportContext, g: GraphP, builder: GraphBuilder, scope: Scope, prefix: string, defaultName: string): Graph {
  const declared = new Map<string, ValueInfoP>();
  for (const vi of g.valueInfo ?? []) if (vi.name) declared.set(vi.name, vi);
  for (const vi of g.output ?? []) if (vi.name) declared.set(vi.name, vi);

  if ((g.sparseInitializer ?? []).length > 0) {
    const names = (g.sparseInitializer as { values?: { name?: string } }[]).map((s) => `'${s.values?.name ?? ''}'`);
    throw new IrError('E_UNSUPPORTED', `sparse initializers (${names.slice(0, 4).join(', ')}) are not supported; store them as dense initializers`);
  }
  const initNames = new Set<string>();
  for (const tp of g.initializer ?? []) {
    const name = tp.name ?? '';
    initNames.add(name);
    scope.define(name, importInitializer(ctx, tp, builder), `initializer '${name}'`);
  }
  for (const vi of g.input ?? []) {
    const name = vi.name ?? '';
    if (initNames.has(name)) continue; // IR < 4 lists initializers as inputs too
    const type = typeFromProto(vi, `input '${name}'`, (axis) => freshSymbol(ctx, name, axis));
    scope.define(name, builder.input(name, type), `input '${name}'`);
  }
  const sequences = new SequenceLowering(lowerableSequences(g));
  (g.node ?? []).forEach((n, i) => importNode(ctx, n, nodeName(n, i, prefix), builder, scope, declared, sequences));

  const outputs = (g.output ?? []).map((vi) => {
    const name = vi.name ?? '';
    const v = scope.lookup(name);
    if (!v) throw new IrError('E_PARSE', `graph output '${name}' is not defined by any node, input or initializer`);
    const c = declaredConflict(v.type, vi);
    if (c) throw new IrError('E_OP', `graph output '${name}' is ${c}`);
    return v;
  });
  return builder.build(outputs, g.name || defaultName);
}
