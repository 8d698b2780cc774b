/** ONNX import: inputs and symbols, old IR versions, scopes and If, functions, type checks, and every error path. */
import * as fs from 'fs';
import * as path from 'path';
import { Module, Tensor, Value, interpret, importModel, loadModel, randomTensor, tensorSeed } from '../src';
import type { GraphP } from '../src/onnx/proto';
import { encodeModel } from '../src/onnx/proto';
import { encodeRawData } from '../src/onnx/tensor-proto';
import {
  BOOL, FLOAT, INT64, attrFloat, attrGraph, attrTensor, f32Tensor, i64Tensor, irErrorOf, modelBytes, node, tempDir, vi,
} from './onnx-test-helpers';

function constantNamed(m: Module, name: string): Value {
  const v = m.graph.constants().find((c) => c.name === name);
  if (!v) throw new Error(`no constant '${name}'`);
  return v;
}

const f32 = (shape: number[], values: number[]): Tensor => Tensor.from('f32', shape, values);

describe('graph structure', () => {
  test('inputs keep dim_value / dim_param; a dim with neither gets a fresh symbol; empty node names are synthesized', () => {
    const g: GraphP = {
      input: [vi('x', FLOAT, ['N', 3]), vi('y', FLOAT, [null, 3])],
      output: [vi('z', FLOAT, [null, 3])],
      node: [node('Add', ['x', 'y'], ['s']), node('Relu', ['s'], ['z'], [], 'my_relu')],
    };
    const m = importModel(modelBytes(g, { ir: 8, opset: 17 }));
    expect(m.graph.inputs.map((v) => [v.name, v.type.dtype, v.shape])).toEqual([
      ['x', 'f32', ['N', 3]],
      ['y', 'f32', ['y_d0', 3]],
    ]);
    expect(m.graph.nodes.map((n) => [n.op, n.name])).toEqual([
      ['Add', 'Add_0'],
      ['Relu', 'my_relu'],
    ]);
    expect(m.opset).toBe(17);
    expect(m.meta).toMatchObject({ irVersion: 8, producerName: 'test' });
    const [z] = interpret(m, [f32([2, 3], [1, -2, 3, -4, 5, -6]), f32([2, 3], [0, 0, -5, 0, 0, 7])]);
    expect(z!.toArray()).toEqual([1, 0, 0, 0, 5, 1]);
  });

  test('IR 3: initializers also listed as graph inputs are constants, not inputs', () => {
    const g: GraphP = {
      input: [vi('x', FLOAT, [2]), vi('w', FLOAT, [2])],
      initializer: [f32Tensor('w', [2], [3, 4])],
      output: [vi('z', FLOAT, [2])],
      node: [node('Mul', ['x', 'w'], ['z'])],
    };
    const m = importModel(modelBytes(g, { ir: 3, opset: 7 }));
    expect(m.graph.inputs.map((v) => v.name)).toEqual(['x']);
    expect(interpret(m, [f32([2], [1, 2])])[0]!.toArray()).toEqual([3, 8]);
  });

  test('Constant nodes and If branches that read enclosing values; subgraph node names carry their parent', () => {
    const branch = (op: string, name: string): GraphP => ({
      name,
      node: [node(op, ['x', 'k'], [`${name}_out`])],
      output: [vi(`${name}_out`, FLOAT, [3])],
    });
    const g: GraphP = {
      input: [vi('c', BOOL, []), vi('x', FLOAT, [3])],
      output: [vi('y', FLOAT, [3])],
      node: [
        node('Constant', [], ['k'], [attrTensor('value', f32Tensor('', [3], [1, 2, 3]))]),
        node('If', ['c'], ['y'], [attrGraph('then_branch', branch('Add', 'then')), attrGraph('else_branch', branch('Mul', 'else'))]),
      ],
    };
    const m = importModel(modelBytes(g));
    const ifNode = m.graph.nodes[1]!;
    expect(ifNode.name).toBe('If_1');
    expect(ifNode.subgraphs().map((sg) => sg.nodes[0]!.name).sort()).toEqual(['If_1/else_branch/Mul_0', 'If_1/then_branch/Add_0']);
    const x = f32([3], [10, 20, 30]);
    expect(interpret(m, [Tensor.scalar('bool', 1), x])[0]!.toArray()).toEqual([11, 22, 33]);
    expect(interpret(m, [Tensor.scalar('bool', 0), x])[0]!.toArray()).toEqual([10, 40, 90]);
  });

  test('INT64_MAX as a Slice end (a Long beyond 2^53) imports as a clamped sentinel', () => {
    const int64Max = { low: -1, high: 0x7fffffff, unsigned: false };
    const g: GraphP = {
      input: [vi('x', FLOAT, [5])],
      initializer: [i64Tensor('starts', [1], [1]), { name: 'ends', dims: [1], dataType: INT64, int64Data: [int64Max] }],
      output: [vi('y', FLOAT, [4])],
      node: [node('Slice', ['x', 'starts', 'ends'], ['y'])],
    };
    const m = importModel(modelBytes(g, { opset: 13 }));
    expect(m.graph.outputs[0]!.shape).toEqual([4]);
    expect(interpret(m, [f32([5], [1, 2, 3, 4, 5])])[0]!.toArray()).toEqual([2, 3, 4, 5]);
  });

  test('model-local functions are inlined, with attribute references resolved', () => {
    const fn = {
      name: 'Scaled',
      domain: 'custom',
      input: ['a', 'b'],
      output: ['c'],
      attribute: ['alpha'],
      opsetImport: [{ domain: '', version: 17 }],
      node: [node('Add', ['a', 'b'], ['s']), node('LeakyRelu', ['s'], ['c'], [{ name: 'alpha', refAttrName: 'alpha', type: 1 }])],
    };
    const g: GraphP = {
      input: [vi('x', FLOAT, [2]), vi('y', FLOAT, [2])],
      output: [vi('v', FLOAT, [2])],
      node: [
        node('Scaled', ['x', 'y'], ['u'], [attrFloat('alpha', 0.5)], 'call1', 'custom'),
        node('Scaled', ['u', 'y'], ['v'], [], '', 'custom'),
      ],
    };
    const m = importModel(modelBytes(g, { ir: 8, functions: [fn], domains: { custom: 1 } }));
    expect(m.graph.nodes.map((n) => n.name)).toEqual(['call1/Add_0', 'call1/LeakyRelu_1', 'Scaled_1/Add_0', 'Scaled_1/LeakyRelu_1']);
    expect(m.graph.nodes[1]!.attrs['alpha']).toEqual({ kind: 'float', value: 0.5 });
    expect(m.graph.nodes[3]!.attrs['alpha']).toBeUndefined();
    // u = leaky(x + y, 0.5); v = leaky(u + y, 0.01)
    const got = interpret(m, [f32([2], [-4, 1]), f32([2], [0, 1])])[0]!.toArray();
    expect(got[0]).toBeCloseTo(-2 * 0.01, 6);
    expect(got[1]).toBeCloseTo(3, 6);
  });
});

describe('errors', () => {
  test('every unsupported op is listed at once, with node names, before anything is built', () => {
    const names = ['f1', 'f2', 'f3', 'f4', 'f5', 'f6'];
    const g: GraphP = {
      input: [vi('x', FLOAT, [2]), vi('c', BOOL, [])],
      output: [vi('y', FLOAT, [2])],
      node: [
        ...names.map((n) => node('FooBar', ['x'], [`${n}_o`], [], n)),
        node('FusedMatMul', ['x', 'x'], ['fm'], [], '', 'com.microsoft'),
        node('If', ['c'], ['y'], [
          attrGraph('then_branch', { node: [node('Scan', ['x'], ['t'])], output: [vi('t', FLOAT, [2])] }),
          attrGraph('else_branch', { node: [], output: [vi('x', FLOAT, [2])] }),
        ]),
        node('MatMul', ['x', 'c'], ['broken']), // would fail to build: the scan must come first
      ],
    };
    const e = irErrorOf(() => importModel(modelBytes(g), { source: '/m/model.onnx' }));
    expect(e.code).toBe('E_UNSUPPORTED');
    expect(e.nodeName).toBe('f1');
    expect(e.message).toContain('model.onnx: ops FooBar, com.microsoft.FusedMatMul, Scan are not supported');
    expect(e.message).toContain("FooBar: 6 nodes ('f1', 'f2', 'f3', 'f4', and 2 more)");
    expect(e.message).toContain("com.microsoft.FusedMatMul: 1 node ('FusedMatMul_6')");
    expect(e.message).toContain("Scan: 1 node ('If_7/then_branch/Scan_0')");
  });

  test('truncated, corrupt and graph-less bytes are parse errors that say so', () => {
    const good = modelBytes({ input: [vi('x', FLOAT, [2])], output: [vi('y', FLOAT, [2])], node: [node('Relu', ['x'], ['y'])] });
    const dir = tempDir('corrupt');
    const file = path.join(dir, 'model.onnx');
    fs.writeFileSync(file, good.subarray(0, good.length - 7));
    const trunc = irErrorOf(() => loadModel(dir));
    expect(trunc.code).toBe('E_PARSE');
    expect(trunc.message).toMatch(/^model\.onnx is not a valid ONNX model: .+; the file may be truncated or not an ONNX protobuf$/);
    const garbage = irErrorOf(() => importModel(Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 1, 2])));
    expect(garbage.code).toBe('E_PARSE');
    expect(garbage.message).toMatch(/not a valid ONNX model/);
    const noGraph = irErrorOf(() => importModel(encodeModel({ irVersion: 8, producerName: 'x' })));
    expect(noGraph.code).toBe('E_PARSE');
    expect(noGraph.message).toMatch(/holds no graph/);
    const text = irErrorOf(() => importModel(new TextEncoder().encode('{"not": "onnx"}\n')));
    expect(text.code).toBe('E_PARSE');
  });

  test('IR versions and opsets outside the supported ranges are unsupported', () => {
    const g: GraphP = { input: [vi('x', FLOAT, [2])], output: [vi('y', FLOAT, [2])], node: [node('Relu', ['x'], ['y'])] };
    expect(irErrorOf(() => importModel(modelBytes(g, { ir: 2 }))).message).toMatch(/IR version 2; ParaDiT reads IR versions 3 to 10/);
    expect(irErrorOf(() => importModel(modelBytes(g, { ir: 11 }))).code).toBe('E_UNSUPPORTED');
    expect(irErrorOf(() => importModel(modelBytes(g, { opset: 6 }))).message).toMatch(/opset 6; ParaDiT reads opsets 7 to 23/);
  });

  test('a declared type that contradicts inference names the producing node', () => {
    const g: GraphP = {
      input: [vi('x', FLOAT, [2, 3])],
      valueInfo: [vi('s', FLOAT, [2, 4])],
      output: [vi('y', FLOAT, [2, 3])],
      node: [node('Add', ['x', 'x'], ['s'], [], 'the_add'), node('Relu', ['s'], ['y'])],
    };
    const e = irErrorOf(() => importModel(modelBytes(g)));
    expect(e.nodeName).toBe('the_add');
    expect(e.message).toMatch(/^Add 'the_add': output 's' is declared f32\[2,4\] by the model, but ParaDiT infers f32\[2,3\]/);
    const dt: GraphP = { ...g, valueInfo: [], output: [vi('y', INT64, [2, 3])] };
    expect(irErrorOf(() => importModel(modelBytes(dt))).message).toMatch(/Relu 'Relu_1': output 'y' is declared i64\[2,3\]/);
    // Symbols and unknown dims never conflict.
    const ok: GraphP = { ...g, valueInfo: [vi('s', FLOAT, ['B', null])] };
    expect(importModel(modelBytes(ok)).graph.nodes.length).toBe(2);
  });

  test('an undefined name, a sparse initializer and a bad operand are readable errors', () => {
    const undef: GraphP = { input: [vi('x', FLOAT, [2])], output: [vi('y', FLOAT, [2])], node: [node('Add', ['x', 'ghost'], ['y'], [], 'a1')] };
    const e1 = irErrorOf(() => importModel(modelBytes(undef)));
    expect(e1.code).toBe('E_PARSE');
    expect(e1.message).toMatch(/Add 'a1' reads 'ghost'/);
    const sparse: GraphP = {
      ...undef,
      node: [node('Relu', ['x'], ['y'])],
      sparseInitializer: [{ values: f32Tensor('sp', [1], [1]), indices: i64Tensor('spi', [1], [0]), dims: [4] }],
    };
    expect(irErrorOf(() => importModel(modelBytes(sparse))).code).toBe('E_UNSUPPORTED');
    const bad: GraphP = { input: [vi('x', FLOAT, [2, 3])], output: [vi('y', FLOAT, [2, 3])], node: [node('MatMul', ['x', 'x'], ['y'], [], 'bad_mm')] };
    const e3 = irErrorOf(() => importModel(modelBytes(bad)));
    expect(e3.nodeName).toBe('bad_mm');
    expect(e3.message).toMatch(/^MatMul 'bad_mm'/);
  });
});

describe('external data and random weights', () => {
  const K = 4;
  const N = 20000; // W has 80000 elements: above the builder's known-value limit, so nothing reads it at import
  const graph = (wType = FLOAT): GraphP => ({
    input: [vi('x', FLOAT, [1, K])],
    initializer: [
      { name: 'W', dims: [K, N], dataType: wType, dataLocation: 1, externalData: [{ key: 'location', value: 'model.onnx.data' }, { key: 'offset', value: '0' }] },
      f32Tensor('B', [N], new Array<number>(N).fill(0.25)),
    ],
    output: [vi('y', FLOAT, [1, N])],
    node: [node('MatMul', ['x', 'W'], ['xw']), node('Add', ['xw', 'B'], ['y'])],
  });
  const modelDir = (g: GraphP): string => {
    const dir = tempDir('rw');
    fs.writeFileSync(path.join(dir, 'model.onnx'), modelBytes(g));
    return dir;
  };

  test('a missing weights file names the tensor, the expected path and --random-weights', () => {
    const dir = modelDir(graph());
    const e = irErrorOf(() => loadModel(dir));
    expect(e.code).toBe('E_INPUT');
    expect(e.message).toContain("initializer 'W'");
    expect(e.message).toContain(path.join(dir, 'model.onnx.data'));
    expect(e.message).toContain('pass --random-weights to compile with seeded random weights (benchmarking)');
  });

  test('random weights: seeded, deterministic per seed and name, bounded by 1/sqrt(last dim); inline data kept', () => {
    const dir = modelDir(graph());
    const a = loadModel(dir, { randomWeights: { seed: 7 } });
    expect(a.meta.randomWeights).toBe(true);
    const w = constantNamed(a, 'W');
    expect(w.constant!.source).toEqual({ kind: 'random', seed: tensorSeed(7, 'W') });
    const wa = w.constant!.tensor().data;
    const bound = Math.fround(1 / Math.sqrt(N));
    let mean = 0;
    let maxAbs = 0;
    for (const v of wa) {
      maxAbs = Math.max(maxAbs, Math.abs(v));
      mean += v / wa.length;
    }
    expect(maxAbs).toBeLessThanOrEqual(bound);
    expect(maxAbs).toBeGreaterThan(bound * 0.99);
    expect(Math.abs(mean)).toBeLessThan(bound / 50);
    expect(new Set(wa).size).toBeGreaterThan(wa.length / 2);
    const again = constantNamed(loadModel(dir, { randomWeights: { seed: 7 } }), 'W').constant!.tensor().data;
    expect(again.every((v, i) => v === wa[i])).toBe(true);
    const other = constantNamed(loadModel(dir, { randomWeights: { seed: 8 } }), 'W').constant!.tensor().data;
    expect(other[0]).not.toBe(wa[0]);
    expect(constantNamed(a, 'B').constant!.tensor().data[0]).toBe(0.25);
    // Same seed, different tensor names: different per-tensor seeds and data. bf16 output is rounded to bf16.
    expect(tensorSeed(7, 'p')).not.toBe(tensorSeed(7, 'q'));
    expect(tensorSeed(7, 'p')).not.toBe(tensorSeed(8, 'p'));
    expect(Number.isSafeInteger(tensorSeed(2 ** 40, 'p'))).toBe(true);
    expect(randomTensor('f32', [8], tensorSeed(7, 'p')).toArray()).not.toEqual(randomTensor('f32', [8], tensorSeed(7, 'q')).toArray());
    const h = randomTensor('bf16', [64], tensorSeed(7, 'p'));
    expect(h.toArray()).toEqual(Tensor.from('bf16', [64], h.toArray()).toArray());
  });

  test('random values follow the documented counter-based formula (BigInt re-implementation)', () => {
    const M = 0xffffffffn;
    const jenkins = (x: bigint): bigint => {
      let a = x & M;
      a = (a + 0x7ed55d16n + (a << 12n)) & M;
      a = (a ^ 0xc761c23cn ^ (a >> 19n)) & M;
      a = (a + 0x165667b1n + (a << 5n)) & M;
      a = ((a + 0xd3a2646cn) ^ (a << 9n)) & M;
      a = (a + 0xfd7046c5n + (a << 3n)) & M;
      return (a ^ 0xb55a4f09n ^ (a >> 16n)) & M;
    };
    const seed = tensorSeed(42, 'blocks.0.attn.to_q.weight');
    const lo = BigInt(seed) & M;
    const hi = BigInt(seed) >> 32n;
    const shape = [3, 7];
    const got = randomTensor('f32', shape, seed).toArray();
    const b = Math.fround(1 / Math.sqrt(7));
    const want = got.map((_, i) => {
      const h = jenkins(jenkins(BigInt(i) ^ lo) ^ hi);
      return Math.fround((Number(h >> 8n) - 2 ** 23) * 2 ** -23 * b);
    });
    expect(got).toEqual(want);
    const bf = randomTensor('bf16', shape, seed).toArray();
    expect(bf).toEqual(Tensor.from('bf16', shape, want).toArray());
    expect(randomTensor('f64', shape, seed).toArray()).toEqual(want);
  });

  test('random weights never replace non-float tensors', () => {
    const dir = modelDir(graph(INT64));
    const e = irErrorOf(() => loadModel(dir, { randomWeights: { seed: 1 } }));
    expect(e.code).toBe('E_INPUT');
    expect(e.message).toMatch(/initializer 'W' \(i64\[4,20000\]\) keeps its data in .* which does not exist; random weights replace float tensors only/);
  });

  test('present external data is used (even with randomWeights) and read only on first use', () => {
    const dir = modelDir(graph());
    const w = Tensor.from('f32', [K, N], Array.from({ length: K * N }, (_, i) => ((i % 7) - 3) / 8));
    fs.writeFileSync(path.join(dir, 'model.onnx.data'), encodeRawData(w));
    const m = loadModel(dir, { randomWeights: { seed: 1 } });
    expect(m.meta.randomWeights).toBeUndefined();
    const wv = constantNamed(m, 'W');
    expect(wv.constant!.source).toEqual({ kind: 'external', file: path.join(dir, 'model.onnx.data'), offset: 0, length: K * N * 4 });
    expect(wv.constant!.loaded).toBe(false);
    const x = f32([1, K], [1, 0, 0, 2]);
    const y = interpret(m, [x])[0]!;
    expect(wv.constant!.loaded).toBe(true);
    for (const j of [0, 1, 12345, N - 1]) expect(y.data[j]).toBeCloseTo(w.data[j]! + 2 * w.data[3 * N + j]! + 0.25, 6);
  });

  test('a weights file too short for a tensor fails at import, naming the tensor and the byte range', () => {
    const dir = modelDir(graph());
    fs.writeFileSync(path.join(dir, 'model.onnx.data'), new Uint8Array(1000));
    const e = irErrorOf(() => loadModel(dir, { randomWeights: { seed: 1 } }));
    expect(e.code).toBe('E_INPUT');
    expect(e.message).toMatch(/initializer 'W' needs bytes 0\.\.320000 of .*model\.onnx\.data', but the file has 1000 bytes/);
  });

  test('loadModel of a path that is neither a model nor a folder holding one', () => {
    const dir = tempDir('none');
    expect(irErrorOf(() => loadModel(dir)).message).toMatch(/holds no model\.onnx/);
    expect(irErrorOf(() => loadModel(path.join(dir, 'x.onnx'))).code).toBe('E_INPUT');
  });
});
