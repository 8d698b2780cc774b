/**
 * Module -> ONNX ModelProto bytes. Value names are made unique across the whole model and
 * deterministic: graph inputs first (keeping their names), then every constant, then node outputs
 * in definition order; a taken or empty name gets a suffix or a name derived from its node.
 * Constants from all graphs (subgraphs included) become initializers of the main graph, which
 * subgraphs read by outer-scope name. Initializers are inline raw_data, or with
 * `externalDataFile` those of at least `externalMinBytes` go to that file. Every node output that
 * is not a graph output gets a value_info entry with its type (symbols as dim_param).
 *
 * Invariant checked by the tests: importModel(exportModel(m)) has the same ops, types, attributes
 * and interpreter outputs as m.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { AttrValue, Graph, Module, Value } from '../graph';
import { IrError } from '../errors';
import type { AttributeP, GraphP, ModelP, NodeP, TensorP, ValueInfoP } from './proto';
import { ATTR, DATA_LOCATION_EXTERNAL, encodeModel, stringToBytes } from './proto';
import { encodeRawData, tensorToProto } from './tensor-proto';
import { ExternalDataWriter } from './external-data';
import { valueInfoToProto } from './types';
import { PARADIT_DOMAIN } from './scan';
import { dtypeToOnnx } from '../dtype';

export interface ExportOptions {
  /**
   * Write initializers of at least `externalMinBytes` bytes to this file (created or truncated);
   * the model records its base name, so save the .onnx in the same folder.
   */
  readonly externalDataFile?: string;
  /** Default 1024 bytes. */
  readonly externalMinBytes?: number;
  /** Emit value_info for intermediate values (default true). */
  readonly valueInfo?: boolean;
}

export interface SaveOptions {
  /** Put initializers of at least `externalMinBytes` bytes (default 1024) in `<file>.data`. */
  readonly externalData?: boolean;
  readonly externalMinBytes?: number;
  readonly valueInfo?: boolean;
}

/** Protobuf messages cannot exceed 2 GiB; leave room for the graph itself. */
const MAX_INLINE_BYTES = 2 ** 31 - 64 * 2 ** 20;

/** Unique names: the base itself, else base_1, base_2, ... */
class Namer {
  private readonly used = new Set<string>();
  private readonly next = new Map<string, number>();

  unique(base: string): string {
    if (!this.used.has(base)) {
      this.used.add(base);
      return base;
    }
    let k = this.next.get(base) ?? 1;
    while (this.used.has(`${base}_${k}`)) k++;
    this.next.set(base, k + 1);
    const s = `${base}_${k}`;
    this.used.add(s);
    return s;
  }
}

class Exporter {
  private readonly values = new Namer();
  private readonly nodes = new Namer();
  private readonly names = new Map<Value, string>();
  private inlineBytes = 0;
  readonly initializers: TensorP[] = [];

  constructor(
    private readonly writer: ExternalDataWriter | undefined,
    private readonly minExternal: number,
    private readonly withValueInfo: boolean,
  ) {}

  private define(v: Value, fallback: string): string {
    const name = this.values.unique(v.name || fallback);
    this.names.set(v, name);
    return name;
  }

  private ref(v: Value): string {
    const n = this.names.get(v);
    if (n === undefined) throw new IrError('E_VERIFY', `export: value '${v.name || v.id}' is read before it is defined`);
    return n;
  }

  /** Names the main graph's inputs and every constant of the model (as initializers). */
  prepare(main: Graph): void {
    main.inputs.forEach((v, i) => this.define(v, `input_${i}`));
    const visit = (g: Graph): void => {
      for (const c of g.constants()) if (!this.names.has(c)) this.addInitializer(c);
      for (const n of g.nodes) for (const sg of n.subgraphs()) visit(sg);
    };
    visit(main);
  }

  private addInitializer(v: Value): void {
    const name = this.define(v, 'const');
    const t = v.constant!.tensor();
    const raw = encodeRawData(t);
    const tp: TensorP = { name, dims: [...t.shape], dataType: dtypeToOnnx(t.dtype) };
    if (this.writer && raw.length >= this.minExternal) {
      tp.dataLocation = DATA_LOCATION_EXTERNAL;
      tp.externalData = this.writer.append(raw);
    } else {
      this.inlineBytes += raw.length;
      if (this.inlineBytes > MAX_INLINE_BYTES) {
        throw new IrError('E_INPUT', 'the model\'s weights exceed the 2 GiB protobuf limit; export with an external data file');
      }
      tp.rawData = raw;
    }
    this.initializers.push(tp);
  }

  graph(g: Graph, isMain: boolean): GraphP {
    if (!isMain) g.inputs.forEach((v, i) => this.define(v, `${g.name}_input_${i}`));
    const outputs = new Set(g.outputs);
    const valueInfo: ValueInfoP[] = [];
    const nodes = g.nodes.map((n, i): NodeP => {
      const attribute = Object.keys(n.attrs).map((k) => this.attr(k, n.attrs[k]!));
      const name = this.nodes.unique(n.name || `${n.op}_${i}`);
      const input = n.inputs.map((v) => (v ? this.ref(v) : ''));
      const output = n.outputs.map((v, k) => this.define(v, `${name}_out${k}`));
      if (this.withValueInfo) n.outputs.forEach((v, k) => outputs.has(v) || valueInfo.push(valueInfoToProto(output[k]!, v.type)));
      return { name, opType: n.op, domain: /^[A-Z]/.test(n.op) ? '' : PARADIT_DOMAIN, input, output, attribute };
    });
    return {
      name: g.name,
      node: nodes,
      input: g.inputs.map((v) => valueInfoToProto(this.ref(v), v.type)),
      output: g.outputs.map((v) => valueInfoToProto(this.ref(v), v.type)),
      valueInfo,
      initializer: isMain ? this.initializers : [],
    };
  }

  private attr(name: string, a: AttrValue): AttributeP {
    switch (a.kind) {
      case 'float':
        return { name, type: ATTR.FLOAT, f: a.value };
      case 'int':
        return { name, type: ATTR.INT, i: a.value };
      case 'string':
        return { name, type: ATTR.STRING, s: stringToBytes(a.value) };
      case 'tensor':
        return { name, type: ATTR.TENSOR, t: tensorToProto(a.value, '') };
      case 'graph':
        return { name, type: ATTR.GRAPH, g: this.graph(a.value, false) };
      case 'floats':
        return { name, type: ATTR.FLOATS, floats: [...a.value] };
      case 'ints':
        return { name, type: ATTR.INTS, ints: [...a.value] };
      case 'strings':
        return { name, type: ATTR.STRINGS, strings: a.value.map(stringToBytes) };
      case 'tensors':
        return { name, type: ATTR.TENSORS, tensors: a.value.map((t) => tensorToProto(t, '')) };
      case 'graphs':
        return { name, type: ATTR.GRAPHS, graphs: a.value.map((g) => this.graph(g, false)) };
      default: {
        const never: never = a;
        throw new Error(`unhandled attribute ${JSON.stringify(never)}`);
      }
    }
  }
}

/** The oldest IR version that allows an opset (ONNX's release table), at least 3. */
function irVersionFor(opset: number): number {
  if (opset >= 21) return 10;
  if (opset >= 19) return 9;
  if (opset >= 15) return 8;
  if (opset >= 12) return 7;
  if (opset >= 11) return 6;
  if (opset >= 10) return 5;
  if (opset >= 9) return 4;
  return 3;
}

function serialize(m: Module, writer: ExternalDataWriter | undefined, opts: ExportOptions): Uint8Array {
  const ex = new Exporter(writer, opts.externalMinBytes ?? 1024, opts.valueInfo ?? true);
  ex.prepare(m.graph);
  const graph = ex.graph(m.graph, true);
  const opsetImport = Object.entries(m.opsets).map(([domain, version]) => ({ domain, version }));
  if (!(PARADIT_DOMAIN in m.opsets) && (graph.node ?? []).some((n) => n.domain === PARADIT_DOMAIN)) {
    opsetImport.push({ domain: PARADIT_DOMAIN, version: 1 });
  }
  const irVersion = Math.min(10, Math.max(m.meta.irVersion, irVersionFor(m.opset)));
  const model: ModelP = { irVersion, opsetImport, producerName: 'paradit', producerVersion: '0.1.0', graph };
  return encodeModel(model);
}

/** Serializes a module as an ONNX ModelProto (and its large initializers to `externalDataFile`). */
export function exportModel(m: Module, opts: ExportOptions = {}): Uint8Array {
  if (!opts.externalDataFile) return serialize(m, undefined, opts);
  const writer = new ExternalDataWriter(opts.externalDataFile, path.basename(opts.externalDataFile));
  try {
    return serialize(m, writer, opts);
  } finally {
    writer.close();
  }
}

/**
 * Writes `m` to `file`, with initializers in `<file>.data` beside it when `externalData` is set.
 * Writes to temporary names first, so a failure leaves no half-written model.
 */
export function saveModel(m: Module, file: string, opts: SaveOptions = {}): void {
  const dataFile = `${file}.data`;
  const tmpModel = `${file}.tmp-${process.pid}`;
  const tmpData = `${dataFile}.tmp-${process.pid}`;
  try {
    let bytes: Uint8Array;
    if (opts.externalData) {
      const writer = new ExternalDataWriter(tmpData, path.basename(dataFile));
      try {
        bytes = serialize(m, writer, opts);
      } finally {
        writer.close();
      }
    } else bytes = serialize(m, undefined, opts);
    fs.writeFileSync(tmpModel, bytes);
    if (fs.existsSync(tmpData)) fs.renameSync(tmpData, dataFile);
    fs.renameSync(tmpModel, file);
  } finally {
    for (const t of [tmpModel, tmpData]) if (fs.existsSync(t)) fs.unlinkSync(t);
  }
}
