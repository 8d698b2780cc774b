/**
 * ONNX export: import(export(m)) is structurally equal to m and computes the same outputs;
 * names are unique and deterministic; every attribute kind survives; external data; and ONNX
 * Runtime (an independent implementation) runs the exported bytes to the interpreter's results.
 */
import * as fs from 'fs';
import * as path from 'path';
import { execFileSync } from 'child_process';
import {
  AttrValue, Graph, GraphBuilder, Module, Node, Tensor, Value, f16BitsToF32, importModel, interpret, loadModel,
  randomTensor, structurallyEqual, tensorType,
} from '../src';
import { exportModel, saveModel } from '../src/onnx/export';
import { decodeModel, int64ToNumber } from '../src/onnx/proto';
import type { GraphP } from '../src/onnx/proto';
import { tempDir } from './onnx-test-helpers';

const REPO_ROOT = path.resolve(__dirname, '../../..');

const OPSET = 18;
const attrInt = (value: number): AttrValue => ({ kind: 'int', value });

/** x:f32[B,4], cond:bool -> MatMul/Add/Reshape/Transpose/Softmax/LeakyRelu/If/Constant/Add/Cast. */
function buildSmall(): Module {
  const b = new GraphBuilder(OPSET);
  const x = b.input('x', tensorType('f32', ['B', 4]));
  const cond = b.input('cond', tensorType('bool', []));
  const w = b.constant(randomTensor('f32', [4, 6], 3), 'w');
  const bias = b.constant(Tensor.from('f32', [6], [0.5, -0.5, 1, -1, 2, -2]), 'bias');
  const [mm] = b.add('MatMul', [x, w], {}, { name: 'mm' });
  const [h] = b.add('Add', [mm!, bias], {}, { name: 'add_bias' });
  const [r] = b.add('Reshape', [h!, b.constant(Tensor.from('i64', [3], [0, 2, 3]), 'shape')], {}, { name: 'split_heads' });
  const [t] = b.add('Transpose', [r!], { perm: { kind: 'ints', value: [0, 2, 1] } });
  const [s] = b.add('Softmax', [t!], { axis: attrInt(-1) });
  // A value whose name collides with the graph input 'x': export must rename it.
  const [l] = b.add('LeakyRelu', [s!], { alpha: { kind: 'float', value: 0.125 } }, { outputNames: ['x'] });
  const tb = new GraphBuilder(OPSET, b);
  const [tOut] = tb.add('Mul', [l!, tb.constant(Tensor.scalar('f32', 3), 'three')], {}, { name: 'times3' });
  const eb = new GraphBuilder(OPSET, b);
  const [eOut] = eb.add('Sub', [l!, eb.constant(Tensor.scalar('f32', 1))], {});
  const [y] = b.add(
    'If',
    [cond],
    { then_branch: { kind: 'graph', value: tb.build([tOut!], 'then_body') }, else_branch: { kind: 'graph', value: eb.build([eOut!], 'else_body') } },
    { name: 'branch' },
  );
  const [k] = b.add('Constant', [], { value: { kind: 'tensor', value: Tensor.from('f32', [1], [0.25]) } });
  const [z] = b.add('Add', [y!, k!], {}, { outputNames: ['z'] });
  const [half] = b.add('Cast', [z!], { to: attrInt(10) }, { outputNames: ['z_f16'] });
  return new Module(b.build([z!, half!], 'main'), { '': OPSET });
}

const inputsFor = (c: number): Tensor[] => [Tensor.from('f32', [2, 4], [1, -2, 0.5, 3, 0, 1, -1, 2]), Tensor.scalar('bool', c)];

function expectSameOutputs(a: Module, b: Module, inputs: Tensor[]): void {
  const ra = interpret(a, inputs);
  const rb = interpret(b, inputs);
  expect(rb.length).toBe(ra.length);
  ra.forEach((t, i) => {
    expect(rb[i]!.dtype).toBe(t.dtype);
    expect(rb[i]!.shape).toEqual(t.shape);
    expect(Array.from(rb[i]!.data)).toEqual(Array.from(t.data));
  });
}

/** Every value name defined anywhere in an exported graph (inputs, initializers, node outputs). */
function definedNames(g: GraphP): string[] {
  const out = [...(g.input ?? []).map((v) => v.name ?? ''), ...(g.initializer ?? []).map((t) => t.name ?? '')];
  for (const n of g.node ?? []) {
    out.push(...(n.output ?? []));
    for (const a of n.attribute ?? []) if (a.g) out.push(...definedNames(a.g));
  }
  return out;
}

describe('export / import round trip', () => {
  const m = buildSmall();
  const bytes = exportModel(m);
  const back = importModel(bytes);

  test('same structure (ops, types, attributes, wiring, constants) and the same provenance names', () => {
    expect(structurallyEqual(back, m)).toBe(true);
    expect(back.graph.nodes.map((n) => n.op)).toEqual(m.graph.nodes.map((n) => n.op));
    expect(back.graph.nodes.map((n) => n.name).slice(0, 3)).toEqual(['mm', 'add_bias', 'split_heads']);
    expect(back.graph.inputs.map((v) => [v.name, v.type])).toEqual([
      ['x', { dtype: 'f32', shape: ['B', 4] }],
      ['cond', { dtype: 'bool', shape: [] }],
    ]);
    expect(back.graph.outputs.map((v) => [v.name, v.type])).toEqual([
      ['z', { dtype: 'f32', shape: ['B', 3, 2] }],
      ['z_f16', { dtype: 'f16', shape: ['B', 3, 2] }],
    ]);
    expect(back.opset).toBe(OPSET);
  });

  test('same interpreter outputs on both branches', () => {
    expectSameOutputs(m, back, inputsFor(1));
    expectSameOutputs(m, back, inputsFor(0));
  });

  test('names are unique across the model and deterministic; branch constants become outer initializers', () => {
    const g = decodeModel(bytes, 'x').graph!;
    const names = definedNames(g);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain('x_1');
    expect((g.initializer ?? []).map((t) => t.name)).toEqual(['w', 'bias', 'shape', 'const', 'three']);
    expect(Buffer.from(exportModel(buildSmall())).equals(Buffer.from(bytes))).toBe(true);
    // value_info carries every intermediate type, symbols as dim_param.
    const mmInfo = (g.valueInfo ?? []).find((v) => v.name === 'mm_out0');
    expect((mmInfo?.type?.tensorType?.shape?.dim ?? []).map((d) => d.dimParam || int64ToNumber(d.dimValue))).toEqual(['B', 6]);
  });

  test('every attribute kind survives', () => {
    const b = new GraphBuilder(OPSET);
    const x = b.input('x', tensorType('f32', [2]));
    const sub = (op: 'Neg' | 'Abs' | 'Relu'): Graph => {
      const sb = new GraphBuilder(OPSET, b);
      return sb.build(sb.add(op, [x]), `sub_${op}`);
    };
    const attrs: Record<string, AttrValue> = {
      f: { kind: 'float', value: Math.fround(0.1) },
      i: { kind: 'int', value: -(2 ** 40) },
      s: { kind: 'string', value: 'héllo' },
      t: { kind: 'tensor', value: Tensor.from('bf16', [2], [1.5, -3]) },
      g: { kind: 'graph', value: sub('Neg') },
      fs: { kind: 'floats', value: [1.5, -0.25] },
      is: { kind: 'ints', value: [1, -2, 2 ** 50] },
      ss: { kind: 'strings', value: ['a', '', 'ü'] },
      ts: { kind: 'tensors', value: [Tensor.from('i64', [1], [-7]), Tensor.from('f16', [], [0.5])] },
      gs: { kind: 'graphs', value: [sub('Abs'), sub('Relu')] },
    };
    const out = new Value(tensorType('f32', [2]), 'y');
    const m1 = new Module(new Graph([x], [new Node('Identity', [x], [out], attrs, 'id')], [out]), { '': OPSET });
    const m2 = importModel(exportModel(m1));
    expect(structurallyEqual(m2, m1)).toBe(true);
    const a2 = m2.graph.nodes[0]!.attrs;
    expect(Object.keys(a2)).toEqual(Object.keys(attrs));
    expect(a2['s']).toEqual(attrs['s']);
    expect(a2['is']).toEqual(attrs['is']);
    expect(a2['ss']).toEqual(attrs['ss']);
    const t2 = a2['t']!.kind === 'tensor' ? a2['t']!.value : undefined;
    expect(t2?.dtype).toBe('bf16');
    expect(t2?.toArray()).toEqual([1.5, -3]);
    expect(a2['gs']!.kind === 'graphs' && a2['gs']!.value.length).toBe(2);
  });

  test("ParaDiT's own ops export in the ai.paradit domain and import back", () => {
    const b = new GraphBuilder(OPSET);
    const x = b.input('x', tensorType('f32', [2, 3]));
    const [g] = b.add('gelu', [x], { approximate: { kind: 'string', value: 'tanh' } }, { name: 'fused_gelu' });
    const [s] = b.add('silu', [g!]);
    const m1 = new Module(b.build([s!]), { '': OPSET });
    const bytes1 = exportModel(m1);
    const p = decodeModel(bytes1, 'x');
    expect((p.graph!.node ?? []).map((n) => [n.opType, n.domain])).toEqual([
      ['gelu', 'ai.paradit'],
      ['silu', 'ai.paradit'],
    ]);
    expect((p.opsetImport ?? []).map((o) => [o.domain, int64ToNumber(o.version)])).toEqual([
      ['', OPSET],
      ['ai.paradit', 1],
    ]);
    const m2 = importModel(bytes1);
    expect(structurallyEqual(m2, m1)).toBe(true);
    const x0 = [Tensor.from('f32', [2, 3], [-2, -1, 0, 0.5, 1, 3])];
    expect(interpret(m2, x0)[0]!.toArray()).toEqual(interpret(m1, x0)[0]!.toArray());
  });
});

describe('external data export', () => {
  test('large initializers go to the data file; the folder loads back to the same model', () => {
    const m = buildSmall();
    const dir = tempDir('exp');
    const bytes = exportModel(m, { externalDataFile: path.join(dir, 'model.onnx.data'), externalMinBytes: 64 });
    fs.writeFileSync(path.join(dir, 'model.onnx'), bytes);
    const inits = decodeModel(bytes, 'x').graph!.initializer ?? [];
    const w = inits.find((t) => t.name === 'w')!;
    expect(w.dataLocation).toBe(1);
    expect(w.externalData).toEqual([
      { key: 'location', value: 'model.onnx.data' },
      { key: 'offset', value: '0' },
      { key: 'length', value: '96' },
    ]);
    expect(inits.find((t) => t.name === 'bias')!.dataLocation ?? 0).toBe(0);
    const back = loadModel(dir);
    expect(structurallyEqual(back, m)).toBe(true);
    expectSameOutputs(m, back, inputsFor(1));
  });

  test('saveModel writes model + data atomically and leaves no temporary files', () => {
    const dir = tempDir('save');
    const file = path.join(dir, 'tiny.onnx');
    saveModel(buildSmall(), file, { externalData: true, externalMinBytes: 64 });
    expect(fs.readdirSync(dir).sort()).toEqual(['tiny.onnx', 'tiny.onnx.data']);
    expectSameOutputs(buildSmall(), loadModel(file), inputsFor(0));
  });
});

/**
 * Runs a model in ONNX Runtime in a child process (jest's sandbox gives typed arrays another
 * realm, which onnxruntime-node's Tensor constructor rejects).
 */
const ORT_SCRIPT = `
const ort = require('onnxruntime-node');
const fs = require('fs');
(async () => {
  const [model, feedsFile] = process.argv.slice(1);
  const session = await ort.InferenceSession.create(model);
  const feeds = {};
  for (const [name, t] of Object.entries(JSON.parse(fs.readFileSync(feedsFile, 'utf8')))) {
    feeds[name] = new ort.Tensor(t.type, t.type === 'bool' ? Uint8Array.from(t.data) : Float32Array.from(t.data), t.dims);
  }
  const res = await session.run(feeds);
  const out = {};
  for (const [k, v] of Object.entries(res)) out[k] = { type: v.type, dims: v.dims, data: Array.from(v.data) };
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { process.stderr.write(String(e)); process.exit(1); });
`;

interface OrtOut {
  readonly type: string;
  readonly dims: number[];
  readonly data: number[];
}

function runOrt(modelFile: string, feeds: Record<string, { type: string; dims: readonly number[]; data: number[] }>): Record<string, OrtOut> {
  const feedsFile = path.join(path.dirname(modelFile), 'feeds.json');
  fs.writeFileSync(feedsFile, JSON.stringify(feeds));
  const out = execFileSync(process.execPath, ['-e', ORT_SCRIPT, modelFile, feedsFile], { cwd: REPO_ROOT, encoding: 'utf8' });
  return JSON.parse(out) as Record<string, OrtOut>;
}

describe('ONNX Runtime runs the exported model', () => {
  test('outputs agree with the interpreter (f32: |diff| <= 1e-5; f16: within one f16 ulp)', () => {
    const m = buildSmall();
    const dir = tempDir('ort');
    const file = path.join(dir, 'model.onnx');
    fs.writeFileSync(file, exportModel(m));
    for (const c of [1, 0]) {
      const [x, cond] = inputsFor(c);
      const res = runOrt(file, {
        x: { type: 'float32', dims: x!.shape, data: x!.toArray() },
        cond: { type: 'bool', dims: [], data: cond!.toArray() },
      });
      const [z, zh] = interpret(m, inputsFor(c));
      expect(res['z']!.dims).toEqual([2, 3, 2]);
      z!.data.forEach((v, i) => expect(Math.abs(res['z']!.data[i]! - v)).toBeLessThanOrEqual(1e-5));
      // onnxruntime-node returns float16 data as bit patterns (Uint16Array).
      const h = res['z_f16']!;
      expect(h.type).toBe('float16');
      zh!.data.forEach((v, i) => expect(Math.abs(f16BitsToF32(h.data[i]!) - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -10 + 1e-7));
    }
  });
});
