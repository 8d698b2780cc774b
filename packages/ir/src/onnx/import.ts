/**
 * ONNX model -> Module. `loadModel` reads a .onnx file (or a folder holding model.onnx);
 * `importModel` takes the bytes. Order of work, so that a bad model fails fast and completely:
 *
 *   decode (E_PARSE) -> IR version and opset checks -> inline model-local functions ->
 *   list every unsupported op at once (E_UNSUPPORTED) -> build the graph through GraphBuilder,
 *   checking declared types (E_OP) and the presence of external data files (E_INPUT).
 *
 * Initializers become lazy constants: external data is read tensor by tensor on first use, so
 * importing or inspecting a multi-GB model reads only the small constants that shape inference
 * needs. With `randomWeights`, float initializers whose external data file is missing get seeded
 * random data instead (inline and present external data are always used as is; a missing file
 * holding non-float data is still an error). Module.meta.randomWeights is set when any was.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Module } from '../graph';
import { GraphBuilder } from '../builder';
import { IrError } from '../errors';
import type { GraphP, ModelP } from './proto';
import { decodeModel, int64ToNumber } from './proto';
import { PARADIT_DOMAIN, checkSupported, isDefaultDomain } from './scan';
import { inlineFunctions } from './functions';
import { ImportContext, Scope, importGraph } from './import-graph';

export const MIN_IR_VERSION = 3;
export const MAX_IR_VERSION = 10;
export const MIN_OPSET = 7;
export const MAX_OPSET = 23;

export interface RandomWeightsOptions {
  /** Same seed, same weights (per tensor name). */
  readonly seed: number;
}

export interface ImportOptions {
  /** Folder that external data locations are relative to (the model file's folder). */
  readonly baseDir?: string;
  /** Replace float initializers whose external data file is missing by seeded random data. */
  readonly randomWeights?: RandomWeightsOptions;
  /**
   * Graph only (inspect): float initializers whose external data file is missing are imported
   * with stand-in data (seeded, never reported as values) and Module.meta.absentWeights is set.
   */
  readonly graphOnly?: boolean;
  /** Path the bytes came from: recorded in Module.meta.source and named in messages. */
  readonly source?: string;
}

export type LoadOptions = Omit<ImportOptions, 'baseDir' | 'source'>;

/** The model file a path names: the path itself, or `<dir>/model.onnx` for a folder. */
export function resolveModelPath(pathOrDir: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(pathOrDir);
  } catch {
    throw new IrError('E_INPUT', `no ONNX model at '${pathOrDir}' (expected a .onnx file or a folder holding model.onnx)`);
  }
  if (!st.isDirectory()) return pathOrDir;
  const file = path.join(pathOrDir, 'model.onnx');
  if (!fs.existsSync(file)) throw new IrError('E_INPUT', `folder '${pathOrDir}' holds no model.onnx`);
  return file;
}

/** Reads and imports a model file (or a folder holding model.onnx); external data is read lazily. */
export function loadModel(pathOrDir: string, opts: LoadOptions = {}): Module {
  const file = resolveModelPath(pathOrDir);
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new IrError('E_INPUT', `cannot read '${file}': ${(e as Error).message}`);
  }
  return importModel(bytes, { ...opts, baseDir: path.dirname(path.resolve(file)), source: file });
}

function opsetsOf(m: ModelP, what: string): Record<string, number> {
  const opsets: Record<string, number> = {};
  for (const o of m.opsetImport ?? []) {
    // ParaDiT's own domain is implied by its ops (export adds it back), so modules round-trip.
    if (o.domain === PARADIT_DOMAIN) continue;
    opsets[isDefaultDomain(o.domain) ? '' : o.domain!] = int64ToNumber(o.version);
  }
  const v = opsets[''];
  if (v === undefined) {
    throw new IrError('E_UNSUPPORTED', `${what} imports no version of the default ONNX domain; ParaDiT reads opsets ${MIN_OPSET} to ${MAX_OPSET}`);
  }
  if (v < MIN_OPSET || v > MAX_OPSET) {
    throw new IrError(
      'E_UNSUPPORTED',
      `${what} uses ONNX opset ${v}; ParaDiT reads opsets ${MIN_OPSET} to ${MAX_OPSET} (convert it with onnx.version_converter)`,
    );
  }
  return opsets;
}

/** Every dim_param the model's graph inputs use (fresh symbols must not collide with them). */
function inputSymbols(g: GraphP): Set<string> {
  const s = new Set<string>();
  for (const vi of g.input ?? []) for (const d of vi.type?.tensorType?.shape?.dim ?? []) if (d.dimParam) s.add(d.dimParam);
  return s;
}

/** Imports a serialized ModelProto. */
export function importModel(bytes: Uint8Array, opts: ImportOptions = {}): Module {
  const what = opts.source ? path.basename(opts.source) : 'the model';
  const m = decodeModel(bytes, what);
  const graph0 = m.graph;
  if (!graph0 || (!graph0.node?.length && !graph0.output?.length && !graph0.input?.length)) {
    throw new IrError(
      'E_PARSE',
      `${what} is not a valid ONNX model: it decodes as protobuf but holds no graph; the file may be truncated or not an ONNX model`,
    );
  }
  const irVersion = int64ToNumber(m.irVersion);
  if (irVersion < MIN_IR_VERSION || irVersion > MAX_IR_VERSION) {
    throw new IrError(
      'E_UNSUPPORTED',
      `${what} has IR version ${irVersion}; ParaDiT reads IR versions ${MIN_IR_VERSION} to ${MAX_IR_VERSION}`,
    );
  }
  const opsets = opsetsOf(m, what);
  const opset = opsets['']!;
  const graph = inlineFunctions(graph0, m.functions ?? [], opset);
  checkSupported(graph, what);

  const ctx: ImportContext = {
    opset,
    baseDir: opts.baseDir,
    randomSeed: opts.randomWeights?.seed,
    usedRandom: false,
    graphOnly: opts.graphOnly === true,
    usedAbsent: false,
    symbols: inputSymbols(graph),
    fileSizes: new Map(),
  };
  const g = importGraph(ctx, graph, new GraphBuilder(opset), new Scope(), '', 'main');
  return new Module(g, opsets, {
    irVersion,
    producerName: m.producerName ?? '',
    producerVersion: m.producerVersion ?? '',
    ...(opts.source ? { source: opts.source } : {}),
    ...(ctx.usedRandom ? { randomWeights: true } : {}),
    ...(ctx.usedAbsent ? { absentWeights: true } : {}),
  });
}

