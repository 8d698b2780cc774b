/**
 * The IR text form: exact printed text of small graphs, parse(print(m)) structurally equal to m
 * (If subgraphs, symbolic dims, placements, constants small/large, every attribute kind), and
 * parser errors that give line:column with expected versus got.
 */
import * as fs from 'fs';
import {
  AttrValue, ConstData, Graph, GraphBuilder, IrError, Module, Node, Tensor, Value, diagnoseModule, isElided, loadModel,
  parseModule, printGraph, printModule, structuralHash, structurallyEqual, tensorType, verifyModule,
} from '@paradit/ir';
import type { Attrs } from '@paradit/ir';
import { formatF32, formatFloatAttr } from '../src/text-format';

const int = (value: number): AttrValue => ({ kind: 'int', value });
const ramp = (n: number, scale = 0.01): number[] => Array.from({ length: n }, (_, i) => i * scale);

function roundTrip(m: Module): Module {
  const text = printModule(m);
  const back = parseModule(text);
  expect(printModule(back)).toBe(text);
  expect(structurallyEqual(back, m)).toBe(true);
  expect(structuralHash(back)).toBe(structuralHash(m));
  verifyModule(back);
  return back;
}

/** MatMul by a large weight, Reshape by a small shape constant, a two-way Split. */
function smallModule(): Module {
  const b = new GraphBuilder(18);
  const x = b.input('x', tensorType('f32', [1, 64, 16]));
  const w = b.constant(Tensor.from('f32', [16, 32], ramp(512)), 'blocks.0.w');
  const shape = b.constant(Tensor.from('i64', [3], [1, 64, 32]));
  const [y] = b.add('MatMul', [x, w], {}, { name: 'node_MatMul_1' });
  const [r] = b.add('Reshape', [y!, shape], {}, { name: 'reshape' });
  const [s0, s1] = b.add('Split', [r!], { axis: int(2), num_outputs: int(2) }, { numOutputs: 2 });
  const [t] = b.add('Transpose', [s0!], { perm: { kind: 'ints', value: [0, 2, 1] } }, { name: 'tr' });
  return new Module(b.build([t!, s1!], 'main'), { '': 18 });
}

describe('printer', () => {
  test('prints one line per node with renumbered values, types, sorted attributes and hints', () => {
    expect(printModule(smallModule())).toBe(
      [
        'module opset(ai.onnx=18) {',
        '  graph main(%0: f32[1,64,16]) {  # x',
        '    %1 = const f32[16,32] <hash b7b042d65fa6b97c>  # blocks.0.w',
        '    %2 = const i64[3] [1, 64, 32]',
        '    %3 = MatMul(%0, %1) : f32[1,64,32]  # node_MatMul_1',
        '    %4 = Reshape(%3, %2) : f32[1,64,32]  # reshape',
        '    %5, %6 = Split(%4) {axis=2, num_outputs=2} : f32[1,64,16], f32[1,64,16]',
        '    %7 = Transpose(%5) {perm=[0,2,1]} : f32[1,16,64]  # tr',
        '    return %7, %6',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  });

  test('names: false drops every hint, so renamed graphs print identically', () => {
    const a = printModule(smallModule(), { names: false });
    expect(a).not.toContain('#');
    expect(a).toContain('%3 = MatMul(%0, %1) : f32[1,64,32]\n');
  });

  test('If branches print as nested blocks; constants print in the graph that first needs them', () => {
    const b = new GraphBuilder(18);
    const c = b.input('cond', tensorType('bool', []));
    const x = b.input('x', tensorType('f32', ['B', 4]));
    const half = b.constant(Tensor.scalar('f32', 0.5), 'half');
    const [y] = b.add('Mul', [x, half]);
    const tb = new GraphBuilder(18, b);
    const [t] = tb.add('Neg', [y!], {}, { name: 'neg' });
    const eb = new GraphBuilder(18, b);
    const [e] = eb.add('Add', [y!, eb.constant(Tensor.from('f32', [4], [1, 2, 3, 4]))]);
    const [o] = b.add('If', [c], {
      then_branch: { kind: 'graph', value: tb.build([t!], 'then_body') },
      else_branch: { kind: 'graph', value: eb.build([e!], 'else_body') },
    }, { name: 'if_0' });
    const m = new Module(b.build([o!]), { '': 18 });
    expect(printModule(m)).toBe(
      [
        'module opset(ai.onnx=18) {',
        '  graph main(%0: bool[], %1: f32[B,4]) {  # cond, x',
        '    %2 = const f32[] [0.5]  # half',
        '    %3 = Mul(%1, %2) : f32[B,4]',
        '    %4 = If(%0) {  # if_0',
        '      else_branch=graph else_body() {',
        '        %5 = const f32[4] [1.0, 2.0, 3.0, 4.0]',
        '        %6 = Add(%3, %5) : f32[B,4]',
        '        return %6',
        '      },',
        '      then_branch=graph then_body() {',
        '        %7 = Neg(%3) : f32[B,4]  # neg',
        '        return %7',
        '      }',
        '    } : f32[B,4]',
        '    return %4',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    roundTrip(m);
  });

  test('floats print so that they read back to the same float32 or double', () => {
    expect(formatF32(Math.fround(1e-6))).toBe('1e-6');
    expect(formatF32(Math.fround(0.1))).toBe('0.1');
    expect(formatF32(1)).toBe('1.0');
    expect(formatF32(-0)).toBe('-0.0');
    expect(formatFloatAttr(0.1)).toBe('0.1d'); // a double that is not a float32
    expect(formatFloatAttr(Math.fround(0.1))).toBe('0.1');
    // Random float32 bit patterns survive print -> parse exactly.
    const bits = new Uint32Array(1);
    const f = new Float32Array(bits.buffer);
    let seed = 12345;
    for (let i = 0; i < 2000; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      bits[0] = seed;
      const v = f[0]!;
      if (Number.isNaN(v)) continue;
      expect(Object.is(Math.fround(Number(formatF32(v).replace('inf', 'Infinity'))), v)).toBe(true);
    }
  });
});

describe('round trip parse(print(m))', () => {
  test('small module', () => {
    const back = roundTrip(smallModule());
    expect(back.graph.nodes[0]!.name).toBe('node_MatMul_1');
    expect(back.graph.inputs[0]!.name).toBe('x');
  });

  test('large constants parse elided: equal by content hash, reading them throws', () => {
    const back = roundTrip(smallModule());
    const w = back.graph.nodes[0]!.inputs[1]!;
    expect(w.name).toBe('blocks.0.w');
    expect(isElided(w.constant!)).toBe(true);
    expect(() => w.constant!.tensor()).toThrow(/data was elided/);
    // A different weight gives a different hash, so the parsed module is no longer equal to it.
    const other = printModule(smallModule()).replace(/<hash [0-9a-f]+>/, '<hash 0000000000000001>');
    expect(structurallyEqual(parseModule(other), smallModule())).toBe(false);
  });

  test('every attribute kind, placements, omitted inputs, symbolic and quoted dims, odd names', () => {
    const shard: Attrs[string] = { kind: 'int', value: 1 };
    const sharded = tensorType('bf16', [1, 'seq len', 8], { kind: 'sharded', axis: 1, meshAxis: 'ulysses' });
    const x = new Value(sharded, 'hidden "states"');
    const r = new Value(tensorType('bf16', [8], { kind: 'replicated' }), 'r'); // a bias: broadcasts over the shard
    const sum = new Value(sharded, '');
    const bigTensor = Tensor.from('f32', [40], ramp(40));
    const sub = (name: string): Graph => new Graph([], [], [r], name);
    const attrs: Attrs = {
      f32: { kind: 'float', value: Math.fround(1e-6) },
      f64: { kind: 'float', value: 1 / 3 },
      special: { kind: 'floats', value: [NaN, Infinity, -Infinity, -0, 2.5] },
      i: int(-7),
      big: int(9223372036854775807),
      s: { kind: 'string', value: 'tab\there "q" \u00e9' },
      t: { kind: 'tensor', value: Tensor.from('bf16', [2, 2], [1.5, -2, 0.1, 3e38]) },
      tb: { kind: 'tensor', value: bigTensor },
      ts: { kind: 'tensors', value: [Tensor.from('bool', [3], [1, 0, 1]), Tensor.from('i8', [], [-3])] },
      ints: { kind: 'ints', value: [0, -1, 2] },
      strs: { kind: 'strings', value: ['a', 'b c'] },
      e1: { kind: 'ints', value: [] },
      e2: { kind: 'floats', value: [] },
      e3: { kind: 'strings', value: [] },
      e4: { kind: 'tensors', value: [] },
      e5: { kind: 'graphs', value: [] },
      gs: { kind: 'graphs', value: [sub('g one'), sub('g2')] },
      shard,
    };
    const id = new Value(sharded, '');
    const multi = tensorType('bf16', [2, 'seq len', 8], {
      kind: 'sharded', axis: 0, meshAxis: 'cfg', also: [{ axis: 1, meshAxis: 'sp' }], tokens: { axis: 1, segments: [6, 10], chunks: 4 },
    });
    const ordered = tensorType('bf16', [2, 'seq len', 8], { kind: 'replicated', tokens: { axis: 1, segments: [6, 10], chunks: 4 } });
    const z = new Value(multi, 'z');
    const zr = new Value(ordered, '');
    const nodes = [
      new Node('Add', [x, r], [sum], {}, 'add, with comma'),
      new Node('Identity', [sum], [id], attrs, 'id'),
      new Node('Identity', [z], [zr]),
    ];
    const m = new Module(new Graph([x, r, z], nodes, [id, zr], 'my graph'), { '': 18, 'com.microsoft': 1 });
    const text = printModule(m);
    expect(text).toContain('%0: bf16[1,"seq len",8]@shard(1,ulysses), %1: bf16[8]@replicated');
    expect(text).toContain('%2: bf16[2,"seq len",8]@shard(0,cfg)@shard(1,sp)@tokens(1:[6,10]/4)');
    expect(text).toContain('%5 = Identity(%2) : bf16[2,"seq len",8]@replicated@tokens(1:[6,10]/4)');
    expect(text).toContain('# "hidden \\"states\\"", r, z');
    expect(text).toContain('f64=0.3333333333333333d');
    expect(text).toContain('special=[nan,inf,-inf,-0.0,2.5]');
    // bf16(0.1) = 0.10009765625 prints as the shortest decimal that reads back to it as float32.
    expect(text).toContain('t=bf16[2,2] [1.5, -2.0, 0.100097656, 3.0040553e38]');
    expect(Math.fround(0.100097656)).toBe(0.10009765625);
    expect(text).toContain('tb=f32[40] <hash ');
    expect(text).toContain('e1=ints[]');
    const back = roundTrip(m);
    const battrs = back.graph.nodes[1]!.attrs;
    expect(battrs.f64).toEqual({ kind: 'float', value: 1 / 3 });
    expect(battrs.f32).toEqual({ kind: 'float', value: Math.fround(1e-6) });
    expect(back.graph.nodes[0]!.name).toBe('add, with comma');
    expect(back.graph.inputs[0]!.name).toBe('hidden "states"');
    expect(back.graph.name).toBe('my graph');
    expect(back.opsets).toEqual({ '': 18, 'com.microsoft': 1 });
    const tb = battrs.tb!;
    expect(tb.kind === 'tensor' && isElided(tb.value)).toBe(true);
    expect(() => (tb.kind === 'tensor' ? tb.value.data : undefined)).toThrow(/elided/);
  });

  test('constants of every storage kind keep their exact bits; omitted inputs print as _', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [4]));
    const lo = b.constant(Tensor.scalar('f32', -0));
    const [c] = b.add('Clip', [x, null, b.constant(Tensor.scalar('f32', 6))]);
    const [f] = b.add('Add', [c!, lo]);
    const [d] = b.add('Cast', [f!], { to: int(11) });
    const [e] = b.add('Add', [d!, b.constant(Tensor.from('f64', [4], [NaN, 1 / 3, -Infinity, 1e300]))]);
    const [k] = b.add('Cast', [e!], { to: int(16) });
    const [h] = b.add('Add', [k!, b.constant(Tensor.from('bf16', [4], [0.1, 1e-40, 65504, -3]))]);
    const [i] = b.add('Cast', [h!], { to: int(7) });
    const [j] = b.add('Add', [i!, b.constant(Tensor.from('i64', [4], [-(2 ** 53), 0, 7, 2 ** 40]))]);
    const m = new Module(b.build([j!]), { '': 18 });
    const text = printModule(m);
    expect(text).toContain('Clip(%0, _, %');
    expect(text).toContain('const f64[4] [nan, 0.3333333333333333, -inf, 1e300]');
    expect(text).toContain('const f32[] [-0.0]');
    roundTrip(m);
  });

  test('elided tensor attributes and constants do not break inference of what follows', () => {
    const b = new GraphBuilder(18);
    const [c] = b.add('Constant', [], { value: { kind: 'tensor', value: Tensor.from('f32', [4, 10], ramp(40)) } });
    const [s] = b.add('Shape', [c!]);
    const [r] = b.add('Reshape', [c!, s!]);
    const x = b.input('x', tensorType('f32', [10, 3]));
    const [mm] = b.add('MatMul', [r!, x]);
    const m = new Module(b.build([mm!]), { '': 18 });
    const back = roundTrip(m);
    expect(printModule(back)).toContain('Constant() {value=f32[4,10] <hash ');
  });

  test('symbols that inference invents (Reshape -1 over symbolic dims) survive re-inference', () => {
    // Unnamed nodes get counter-based fresh symbols, so re-inferring gives other names; the
    // parser accepts them as renamings of the printed ones and keeps the printed names.
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', ['B', 'S', 8]));
    const [r] = b.add('Reshape', [x, b.constant(Tensor.from('i64', [2], [-1, 4]))]);
    const [n] = b.add('Neg', [r!]);
    const [a] = b.add('Add', [n!, r!]);
    const m = new Module(b.build([a!]), { '': 18 });
    const sym = r!.shape[0] as string;
    expect(typeof sym).toBe('string');
    const back = roundTrip(m);
    expect(back.graph.outputs[0]!.shape).toEqual([sym, 4]);
    // A written symbol that contradicts an earlier one is still an error.
    const bad = printModule(m).replace(`%4 = Add(%3, %2) : f32[${sym},4]`, '%4 = Add(%3, %2) : f32[other,4]');
    expect(bad).not.toBe(printModule(m));
    expect(() => parseModule(bad)).toThrow(/expected output 0 to have the inferred type f32\[.*,4\], got f32\[other,4\] written/);
  });

  test('hand-written text may leave out output types and use any labels', () => {
    const m = parseModule(`
      graph g(%x: f32[2,3], %y: f32[3]) {   # a, b
        %s = Add(%x, %y)                      # add
        %t = ReduceSum(%s) {keepdims=0}
        return %t
      }`);
    expect(m.opset).toBe(18);
    expect(m.graph.outputs[0]!.type).toEqual(tensorType('f32', []));
    expect(m.graph.inputs.map((v) => v.name)).toEqual(['a', 'b']);
    expect(m.graph.nodes[0]!.name).toBe('add');
    expect(printModule(m, { names: false })).toContain('%3 = ReduceSum(%2) {keepdims=0} : f32[]');
  });

  test('an external constant that was never loaded prints elided without being read', () => {
    const w = new ConstData(tensorType('f32', [1000, 1000]), { kind: 'external', file: '/nope.bin', offset: 0, length: 4e6 }, () => {
      throw new Error('must not load');
    });
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [2, 1000]));
    const [y] = b.add('MatMul', [x, b.lazyConstant(w, 'w')]);
    roundTrip(new Module(b.build([y!]), { '': 18 }));
  });
});

describe('parser errors give line:column, expected and got', () => {
  const errorOf = (text: string): string => {
    try {
      parseModule(text);
    } catch (e) {
      expect(e).toBeInstanceOf(IrError);
      expect((e as IrError).code).toBe('E_PARSE');
      return (e as Error).message;
    }
    throw new Error('expected a parse error');
  };

  test('syntax', () => {
    const msg = errorOf('graph g(%0: f32[2]) {\n  %1 = Neg(%0 %0)\n  return %1\n}');
    expect(msg).toMatch(/^IR text 2:15: expected '\)', got value %0/);
    expect(msg).toContain('    %1 = Neg(%0 %0)\n                ^');
    expect(errorOf('graph g(%0: f33[2]) {\n  return %0\n}')).toMatch(/^IR text 1:13: expected a dtype \(f32, .*got identifier 'f33'/);
    expect(errorOf('graph g() {\n  %1 = const i64[2] [1, 2, 3]\n  return %1\n}')).toMatch(/^IR text 2:21: expected 2 elements for shape \[2\], got 3/);
    expect(errorOf('graph g() { return }\nextra')).toMatch(/^IR text 2:1: expected end of input, got identifier 'extra'/);
  });

  test('scoping, unknown ops and wrong types', () => {
    expect(errorOf('graph g(%0: f32[2]) {\n  %1 = Neg(%2)\n  %2 = Neg(%0)\n  return %1\n}')).toMatch(
      /^IR text 2:12: value %2 is used before its definition at 3:3/,
    );
    expect(errorOf('graph g(%0: f32[2]) {\n  return %9\n}')).toMatch(/^IR text 2:10: undefined value %9/);
    expect(errorOf('graph g(%0: f32[2]) {\n  %0 = Neg(%0)\n  return %0\n}')).toMatch(/^IR text 2:3: value %0 is already defined at 1:9/);
    expect(errorOf('graph g(%0: f32[2]) {\n  %1 = Frob(%0)\n  return %1\n}')).toMatch(/^IR text 2:8: expected a known op, got unknown op 'Frob'/);
    expect(errorOf('graph g(%0: f32[2]) {\n  %1 = Neg(%0) : f32[3]\n  return %1\n}')).toMatch(
      /^IR text 2:16: Neg: expected output 0 to have the inferred type f32\[2\], got f32\[3\] written/,
    );
    expect(errorOf('graph g(%0: f32[2,3], %1: f32[4,5]) {\n  %2 = MatMul(%0, %1)  # mm\n  return %2\n}')).toMatch(/^IR text 2:8: MatMul 'mm': /);
  });
});

test('printGraph prints a standalone graph; captured values show as undefined', () => {
  const outer = new Value(tensorType('f32', [2]), 'outer');
  const o = new Value(tensorType('f32', [2]));
  const g = new Graph([], [new Node('Neg', [outer], [o])], [o], 'body');
  expect(printGraph(g, { names: false })).toBe(`graph body() {\n  %0 = Neg(%undef_${outer.id}) : f32[2]\n  return %0\n}\n`);
});

// Guards the whole chain (import -> verify -> print -> parse -> equal) on real ONNX graphs: every
// op's attributes, symbolic and declared shapes, If subgraphs, Constant tensors.
const NODE_TESTS = '/usr/share/libonnx-testdata/data/node';
if (!fs.existsSync(NODE_TESTS)) console.log(`skipped: ${NODE_TESTS} is absent (apt-get install libonnx-testdata)`);
(fs.existsSync(NODE_TESTS) ? test : test.skip)('every ONNX node-test model that imports verifies and round-trips', () => {
  let imported = 0;
  const failures: string[] = [];
  for (const dir of fs.readdirSync(NODE_TESTS).sort()) {
    let m: Module;
    try {
      m = loadModel(`${NODE_TESTS}/${dir}/model.onnx`);
    } catch {
      continue; // unsupported by the importer: not this test's concern
    }
    imported++;
    try {
      const problems = diagnoseModule(m);
      if (problems.length) throw new Error(`verify: ${problems[0]!.message}`);
      const text = printModule(m);
      const back = parseModule(text);
      if (!structurallyEqual(back, m)) throw new Error('parse(print(m)) is not structurally equal to m');
      if (printModule(back) !== text) throw new Error('print(parse(print(m))) differs from print(m)');
    } catch (e) {
      failures.push(`${dir}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  expect(imported).toBeGreaterThan(100);
  expect(failures).toEqual([]);
});
