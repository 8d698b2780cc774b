/**
 * The generic element-indexed path (kernels/indexed*.ts) and scatter kernels, checked without a
 * GPU: each case's fragment is emitted, the CUDA source compiled for the host and run
 * (host-run.ts), and the outputs compared with the reference interpreter on seeded random
 * inputs. Tolerance: exact for integer/bool outputs and pure data movement (every value is copied,
 * not computed), |got - ref| <= 1e-5 + 1e-5 |ref| for computed f32 values, 1e-2 relative for bf16.
 * Guards the index math of every op the path covers (negative indices, pad modes, batch dims,
 * block modes, reductions of scatters) and its fusion with neighbouring pointwise ops.
 */
import type { AttrValue, DType, Graph, Value } from '@paradit/ir';
import { GraphBuilder, Module, Tensor, interpret, isFloat, mulberry32 } from '@paradit/ir';
import { HOST_RUN_OK, HOST_RUN_SKIP, runFragmentOnHost } from './host-run';
import { emitFragment } from '../src/kernels';

type A = Record<string, AttrValue>;
const i = (value: number): AttrValue => ({ kind: 'int', value });
const s = (value: string): AttrValue => ({ kind: 'string', value });
const ints = (value: number[]): AttrValue => ({ kind: 'ints', value });
const tensorAttr = (t: Tensor): AttrValue => ({ kind: 'tensor', value: t }) as AttrValue;

class G {
  readonly b: GraphBuilder;
  readonly inputs: Tensor[] = [];
  private n = 0;
  private readonly rnd = mulberry32(7);
  constructor(readonly opset = 18) {
    this.b = new GraphBuilder(opset);
  }
  /** A random input: floats in [-2, 2), integers in [lo, hi). */
  in(dtype: DType, shape: number[], lo = -3, hi = 4): Value {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = Array.from({ length: n }, () => (isFloat(dtype) ? this.rnd() * 4 - 2 : Math.floor(lo + this.rnd() * (hi - lo))));
    return this.given(Tensor.from(dtype, shape, data));
  }
  given(t: Tensor): Value {
    this.inputs.push(t);
    return this.b.input(`x${this.n++}`, { dtype: t.dtype, shape: [...t.shape] });
  }
  op(op: string, ins: (Value | null)[], attrs: A = {}, numOutputs = 1): Value[] {
    return this.b.add(op, ins, attrs, { name: `${op.toLowerCase()}_${this.n++}`, numOutputs });
  }
  one(op: string, ins: (Value | null)[], attrs: A = {}): Value {
    return this.op(op, ins, attrs)[0]!;
  }
  c(dtype: DType, shape: number[], xs: number[]): Value {
    return this.b.constant(Tensor.from(dtype, shape, xs));
  }
  build(outs: Value[]): Graph {
    return this.b.build(outs);
  }
}

function close(got: Tensor, ref: Tensor, what: string): void {
  expect(got.dtype).toBe(ref.dtype);
  expect(got.shape).toEqual(ref.shape);
  const bf = ref.dtype === 'bf16' || ref.dtype === 'f16';
  for (let k = 0; k < ref.data.length; k++) {
    const a = Number(got.data[k]);
    const b = Number(ref.data[k]);
    if (Number.isNaN(b) ? Number.isNaN(a) : a === b) continue;
    const tol = isFloat(ref.dtype) ? (bf ? 1e-2 * Math.max(1, Math.abs(b)) : 1e-5 + 1e-5 * Math.abs(b)) : 0;
    if (Math.abs(a - b) > tol) throw new Error(`${what}: element ${k} is ${a}, expected ${b}`);
  }
}

/** Interpreter vs host-run kernels for the graph g on its random inputs. */
function agree(g: G, outs: Value[], opts: { kernels?: number } = {}): void {
  const graph = g.build(outs);
  const ref = interpret(new Module(graph, { '': g.opset }), g.inputs);
  const got = runFragmentOnHost(graph, g.inputs, g.opset);
  ref.forEach((r, k) => close(got[k]!, r, `output ${k}`));
  if (opts.kernels !== undefined) expect(emitFragment(graph, { namePrefix: 't' }).kernels.length).toBe(opts.kernels);
}

const maybe = HOST_RUN_OK ? test : test.skip;
if (!HOST_RUN_OK) console.log(HOST_RUN_SKIP);

describe('data-movement ops through the indexed path', () => {
  maybe('Tile, fused with the Mul that reads it (one kernel)', () => {
    const g = new G();
    const t = g.one('Tile', [g.in('f32', [2, 3, 1]), g.c('i64', [3], [2, 1, 4])]);
    agree(g, [g.one('Mul', [t, g.in('f32', [4, 3, 4])])], { kernels: 1 });
  });

  maybe.each(['constant', 'reflect', 'edge', 'wrap'])('Pad mode %s with growing and cropping pads', (mode) => {
    const g = new G(19);
    const x = g.in('f32', [3, 4, 5]);
    const pads = mode === 'reflect' ? [1, 0, 2, 2, -1, 3] : [2, 0, -1, 3, 1, 4];
    agree(g, [g.one('Pad', [x, g.c('i64', [6], pads), mode === 'constant' ? g.c('f32', [], [1.5]) : null], { mode: s(mode) })]);
  });

  maybe('Pad with a runtime constant_value and axes (opset 18), bf16', () => {
    const g = new G(18);
    const x = g.in('bf16', [2, 3, 4]);
    agree(g, [g.one('Pad', [x, g.c('i64', [4], [1, 2, 0, 1]), g.in('bf16', []), g.c('i64', [2], [0, -1])])]);
  });

  maybe('Pad, old attribute form (opset 2)', () => {
    const g = new G(2);
    agree(g, [g.one('Pad', [g.in('f32', [2, 3])], { pads: ints([0, 1, 1, 2]), mode: s('constant'), value: { kind: 'float', value: -4 } })]);
  });

  maybe('GatherElements along both axes with negative indices, and of a computed operand', () => {
    const g = new G();
    const x = g.in('f32', [3, 4]);
    const a = g.one('GatherElements', [x, g.in('i64', [2, 4], -3, 3)], { axis: i(0) });
    const b = g.one('GatherElements', [g.one('Exp', [x]), g.in('i32', [3, 2], -4, 4)], { axis: i(-1) });
    agree(g, [a, b]);
  });

  maybe('GatherND with batch_dims 0 and 1', () => {
    const g = new G();
    const x = g.in('f32', [2, 3, 4]);
    const a = g.one('GatherND', [x, g.in('i64', [5, 2], -2, 2)]);
    const b = g.one('GatherND', [x, g.in('i64', [2, 2, 1], -3, 3)], { batch_dims: i(1) });
    agree(g, [a, b]);
  });

  maybe.each(['DCR', 'CRD'])('DepthToSpace %s and SpaceToDepth round trip', (mode) => {
    const g = new G();
    const x = g.in('f32', [2, 8, 2, 3]);
    const d = g.one('DepthToSpace', [x], { blocksize: i(2), mode: s(mode) });
    agree(g, [d, g.one('SpaceToDepth', [g.one('Neg', [d])], { blocksize: i(2) })]);
  });

  maybe('Trilu upper/lower with constant and runtime k', () => {
    const g = new G();
    const x = g.in('f32', [2, 4, 5]);
    const u = g.one('Trilu', [x, g.c('i64', [], [-1])]);
    const l = g.one('Trilu', [x, g.in('i64', [], -2, 3)], { upper: i(0) });
    agree(g, [u, l, g.one('Trilu', [x])]);
  });

  maybe('OneHot on a middle axis with negative and out-of-range indices; EyeLike; ConstantOfShape', () => {
    const g = new G();
    const oh = g.one('OneHot', [g.in('i64', [2, 3], -5, 6), g.c('i64', [], [4]), g.in('f32', [2])], { axis: i(1) });
    const eye = g.one('EyeLike', [g.in('f32', [3, 5])], { k: i(1), dtype: i(7) });
    const cs = g.one('ConstantOfShape', [g.c('i64', [2], [2, 3])], { value: tensorAttr(Tensor.from('i32', [1], [7])) });
    agree(g, [oh, eye, cs]);
  });

  maybe('Range of runtime start and delta (f32 and i32)', () => {
    const g = new G();
    const r = g.one('Range', [g.c('f32', [], [1.5]), g.c('f32', [], [6]), g.c('f32', [], [0.5])]);
    const q = g.one('Range', [g.c('i32', [], [10]), g.c('i32', [], [1]), g.c('i32', [], [-3])]);
    agree(g, [g.one('Add', [r, g.in('f32', [9])]), q]);
  });
});

describe('per-element loops through the indexed path', () => {
  maybe('ArgMax/ArgMin with keepdims, select_last_index and ties (integer data has many)', () => {
    const g = new G();
    const x = g.in('f32', [3, 4, 5]);
    const t = g.in('i32', [4, 6], 0, 3);
    agree(g, [
      g.one('ArgMax', [x], { axis: i(1) }),
      g.one('ArgMin', [x], { axis: i(-1), keepdims: i(0) }),
      g.one('ArgMax', [t], { axis: i(1), select_last_index: i(1) }),
      g.one('ArgMin', [t], { axis: i(0), keepdims: i(0) }),
    ]);
  });

  maybe.each([[0, 0], [1, 0], [0, 1], [1, 1]])('CumSum exclusive=%i reverse=%i (f32 and i64)', (exclusive, reverse) => {
    const g = new G();
    const a = { exclusive: i(exclusive), reverse: i(reverse) };
    agree(g, [g.one('CumSum', [g.in('f32', [3, 5]), g.c('i64', [], [1])], a), g.one('CumSum', [g.in('i64', [4, 2], -9, 9), g.c('i32', [], [-2])], a)]);
  });

  maybe('TopK largest/smallest with ties keeps the lower index first', () => {
    const g = new G();
    const x = g.in('i32', [3, 7], 0, 4);
    const [v, ix] = g.op('TopK', [x, g.c('i64', [1], [4])], { axis: i(1) }, 2);
    const [w, jx] = g.op('TopK', [g.in('f32', [5, 3]), g.c('i64', [1], [2])], { axis: i(0), largest: i(0) }, 2);
    agree(g, [v!, ix!, w!, jx!]);
  });

  maybe('Hardmax: opset 13 (one axis) and opset 11 (all dims from axis)', () => {
    for (const opset of [13, 11]) {
      const g = new G(opset);
      const x = g.in('i32', [2, 3, 4], 0, 3);
      agree(g, [g.one('Hardmax', [g.one('Cast', [x], { to: i(1) })], { axis: i(1) })]);
    }
  });

  maybe('ReduceLogSum and ReduceLogSumExp over several axes, keepdims 0/1', () => {
    const g = new G();
    const x = g.in('f32', [2, 3, 4]);
    agree(g, [
      g.one('ReduceLogSum', [g.one('Abs', [x]), g.c('i64', [2], [0, 2])]),
      g.one('ReduceLogSumExp', [g.one('Mul', [x, g.c('f32', [], [40])]), g.c('i64', [1], [1])], { keepdims: i(0) }),
    ]);
  });
});

describe('copy-then-scatter kernels', () => {
  maybe.each(['none', 'add', 'mul', 'max', 'min'])('ScatterElements reduction %s, duplicates and negative indices, data fused', (reduction) => {
    const g = new G(18);
    const data = g.one('Mul', [g.in('f32', [3, 5]), g.c('f32', [], [2])]);
    const ind = g.in('i64', [3, 4], -5, 5);
    const y = g.one('ScatterElements', [data, ind, g.in('f32', [3, 4])], { axis: i(1), reduction: s(reduction) });
    const z = g.one('ScatterElements', [g.in('i32', [4, 2], -9, 9), g.in('i64', [3, 2], -4, 4), g.in('i32', [3, 2], -9, 9)], { axis: i(0), reduction: s(reduction) });
    agree(g, [g.one('Add', [y, g.c('f32', [], [1])]), z]);
  });

  maybe.each(['add', 'mul', 'max', 'min'])('ScatterND reduction %s over slices with repeated index tuples', (reduction) => {
    const g = new G(18);
    const ind = g.given(Tensor.from('i64', [4, 1], [0, 2, 0, -1]));
    const y = g.one('ScatterND', [g.in('f32', [3, 2, 3]), ind, g.in('f32', [4, 2, 3])], { reduction: s(reduction) });
    const ind2 = g.given(Tensor.from('i64', [2, 2, 2], [0, 1, 1, 0, 1, 0, -2, -1]));
    const z = g.one('ScatterND', [g.in('i64', [2, 2, 3], -9, 9), ind2, g.in('i64', [2, 2, 3], -9, 9)], { reduction: s(reduction) });
    agree(g, [y, z]);
  });

  maybe('ScatterND without reduction (distinct tuples), bf16, and the CogVideoX slice-assignment form', () => {
    const g = new G(18);
    const ind = g.given(Tensor.from('i64', [2, 2], [1, 0, 0, 2]));
    const y = g.one('ScatterND', [g.in('bf16', [2, 3, 4]), ind, g.in('bf16', [2, 4])]);
    const rows = g.given(Tensor.from('i64', [2, 1], [1, 3]));
    const z = g.one('ScatterND', [g.one('Neg', [g.in('f32', [5, 6])]), rows, g.in('f32', [2, 6])]);
    agree(g, [y, z]);
  });
});

describe('nn ops through the indexed path', () => {
  maybe('Conv with groups, strides, dilations and pads; bias; 1-D and 2-D', () => {
    const g = new G(18);
    const a = g.one('Conv', [g.in('f32', [2, 4, 7, 6]), g.in('f32', [6, 2, 3, 2]), g.in('f32', [6])], { group: i(2), strides: ints([2, 1]), dilations: ints([1, 2]), pads: ints([1, 0, 2, 1]) });
    const b = g.one('Conv', [g.in('f32', [1, 3, 9]), g.in('f32', [2, 3, 3])], { auto_pad: s('SAME_UPPER'), strides: ints([2]) });
    agree(g, [a, b]);
  });

  maybe('ConvTranspose with strides, pads, output_padding, groups and output_shape', () => {
    const g = new G(18);
    const a = g.one('ConvTranspose', [g.in('f32', [1, 4, 3, 4]), g.in('f32', [4, 3, 3, 2]), g.in('f32', [6])], { group: i(2), strides: ints([2, 3]), pads: ints([1, 0, 0, 1]), output_padding: ints([1, 0]) });
    const b = g.one('ConvTranspose', [g.in('f32', [1, 2, 5]), g.in('f32', [2, 2, 3])], { strides: ints([2]), output_shape: ints([10]) });
    agree(g, [a, b]);
  });

  maybe('MaxPool (with Indices, both storage orders, ceil_mode) and AveragePool (count_include_pad 0/1)', () => {
    const g = new G(18);
    const x = g.in('f32', [1, 2, 5, 6]);
    const [m, mi] = g.op('MaxPool', [x], { kernel_shape: ints([3, 2]), strides: ints([2, 2]), pads: ints([1, 0, 1, 1]), ceil_mode: i(1) }, 2);
    const [, mc] = g.op('MaxPool', [x], { kernel_shape: ints([2, 2]), storage_order: i(1) }, 2);
    const a0 = g.one('AveragePool', [x], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) });
    const a1 = g.one('AveragePool', [x], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]), count_include_pad: i(1), strides: ints([2, 2]) });
    agree(g, [m!, mi!, mc!, a0, a1, g.one('GlobalAveragePool', [x]), g.one('GlobalMaxPool', [x])]);
  });

  maybe('Gemm with transA/transB, alpha, beta and a broadcast C', () => {
    const g = new G(18);
    const y = g.one('Gemm', [g.in('f32', [4, 3]), g.in('f32', [5, 4]), g.in('f32', [3, 1])], { transA: i(1), transB: i(1), alpha: { kind: 'float', value: 0.5 }, beta: { kind: 'float', value: -2 } });
    agree(g, [y]);
  });

  maybe('LayerNormalization from axis 1 with Mean/InvStdDev; InstanceNormalization; BatchNormalization', () => {
    const g = new G(18);
    const x = g.in('f32', [2, 3, 4]);
    const [y, mean, inv] = g.op('LayerNormalization', [x, g.in('f32', [3, 4]), g.in('f32', [4])], { axis: i(1) }, 3);
    const inst = g.one('InstanceNormalization', [x, g.in('f32', [3]), g.in('f32', [3])]);
    const v = g.one('Abs', [g.in('f32', [3])]);
    const bn = g.one('BatchNormalization', [x, g.in('f32', [3]), g.in('f32', [3]), g.in('f32', [3]), v]);
    agree(g, [y!, mean!, inv!, inst, bn]);
  });
});

describe('Resize through the indexed path (the interpreter taps as kernel tables)', () => {
  const f32s = (xs: number[]): Tensor => Tensor.from('f32', [xs.length], xs);
  maybe.each([
    ['nearest', { mode: s('nearest'), nearest_mode: s('round_prefer_ceil'), coordinate_transformation_mode: s('asymmetric') }, [1, 1, 1.7, 0.6]],
    ['linear half_pixel', { mode: s('linear') }, [1, 1, 2.5, 0.5]],
    ['linear align_corners', { mode: s('linear'), coordinate_transformation_mode: s('align_corners') }, [1, 1, 2, 1.5]],
    ['cubic exclude_outside', { mode: s('cubic'), exclude_outside: i(1), cubic_coeff_a: { kind: 'float', value: -0.5 } }, [1, 1, 0.8, 1.6]],
  ] as const)('%s', (_n, a, scales) => {
    const g = new G(13);
    const y = g.one('Resize', [g.in('f32', [1, 2, 4, 5]), g.b.constant(f32s([])), g.b.constant(f32s([...scales]))], a as A);
    agree(g, [y]);
  });

  maybe('tf_crop_and_resize with a roi and extrapolation, sizes input', () => {
    const g = new G(13);
    const roi = g.b.constant(f32s([0, 0, 0.4, 0.6, 1, 1, 1.2, 1.7]));
    const sizes = g.c('i64', [4], [1, 1, 3, 4]);
    const y = g.one('Resize', [g.in('f32', [1, 1, 4, 4]), roi, g.b.constant(f32s([])), sizes], { mode: s('linear'), coordinate_transformation_mode: s('tf_crop_and_resize'), extrapolation_value: { kind: 'float', value: 10 } });
    agree(g, [y]);
  });

  maybe('opset 10 Resize (scales as input 1, nearest)', () => {
    const g = new G(10);
    agree(g, [g.one('Resize', [g.in('f32', [1, 1, 2, 3]), g.b.constant(f32s([1, 1, 2, 1.5]))], { mode: s('nearest') })]);
  });
});

describe('reductions with noop_with_empty_axes and no axes', () => {
  maybe('each output comes from one input element (ReduceSumSquare squares, ReduceL1 takes |x|, ReduceLogSum logs)', () => {
    const g = new G(18);
    const x = g.in('f32', [2, 3]);
    const none = g.c('i64', [0], []);
    const a = { noop_with_empty_axes: i(1) };
    agree(g, [g.one('ReduceSumSquare', [x, none], a), g.one('ReduceL1', [x, none], a), g.one('ReduceLogSum', [g.one('Abs', [x]), none], a), g.one('ReduceMean', [x, none], a)]);
  });
});
