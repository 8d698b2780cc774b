/**
 * Fragments that exercise every emitter path (pointwise chains with broadcasting, casts, integer
 * math, data movement, Gather, row kernels with prologue/epilogue fusion, rope in both styles,
 * softmax, reductions) at small shapes, plus the big FLUX shapes the GPU benchmark times against
 * a PyTorch baseline. Used by the compile test, the structural tests and bench/kernels/gen.
 */
import type { AttrValue, DType, Graph, Value } from '@paradit/ir';
import { GraphBuilder, Tensor } from '@paradit/ir';

export interface CheckCase {
  readonly name: string;
  readonly graph: Graph;
  /** Benchmark: the PyTorch formula bench/kernels/compare.py times and checks against. */
  readonly torch?: 'ln_modulate' | 'rms_rope' | 'gated_residual' | 'gelu_tanh' | 'head_transpose' | 'fbcache_diff';
}

type A = Record<string, AttrValue>;
const f = (value: number): AttrValue => ({ kind: 'float', value });
const i = (value: number): AttrValue => ({ kind: 'int', value });
const s = (value: string): AttrValue => ({ kind: 'string', value });
const ints = (value: number[]): AttrValue => ({ kind: 'ints', value });

class B {
  readonly b = new GraphBuilder(18);
  private n = 0;
  in(dtype: DType, shape: number[]): Value {
    return this.b.input(`x${this.n++}`, { dtype, shape });
  }
  op(op: string, ins: (Value | null)[], attrs: A = {}, numOutputs = 1): Value[] {
    return this.b.add(op, ins, attrs, { name: `${op.toLowerCase()}_${this.n++}`, numOutputs });
  }
  one(op: string, ins: (Value | null)[], attrs: A = {}): Value {
    return this.op(op, ins, attrs)[0]!;
  }
  i64(xs: number[]): Value {
    return this.b.constant(Tensor.from('i64', [xs.length], xs));
  }
  scalar(dtype: DType, x: number): Value {
    return this.b.constant(Tensor.from(dtype, [], [x]));
  }
  build(outs: Value[]): Graph {
    return this.b.build(outs);
  }
}

function lnModulate(dt: DType, [Bt, S, D]: number[], residual: boolean): Graph {
  const g = new B();
  let x = g.in(dt, [Bt!, S!, D!]);
  const outs: Value[] = [];
  if (residual) {
    x = g.one('gated_residual', [x, g.in(dt, [Bt!, 1, D!]), g.in(dt, [Bt!, S!, D!])]);
    outs.push(x);
  }
  const ln = g.one('layer_norm', [x, g.in(dt, [D!]), residual ? null : g.in(dt, [D!])], { eps: f(1e-6) });
  outs.push(g.one('modulate', [ln, g.in(dt, [Bt!, 1, D!]), g.in(dt, [Bt!, 1, D!])]));
  return g.build(outs);
}

function rmsRope(dt: DType, shape: number[], style: string, layout: string, table: number[]): Graph {
  const g = new B();
  const H = shape[3]!;
  const x = g.one('rms_norm', [g.in(dt, shape), g.in(dt, [H])], { eps: f(1e-6) });
  return g.build([g.one('rope', [x, g.in('f32', table), g.in('f32', table)], { style: s(style), layout: s(layout) })]);
}

function concatNormsRope(): Graph {
  const g = new B();
  const a = g.one('rms_norm', [g.in('bf16', [1, 4, 16, 128]), g.in('bf16', [128])], { eps: f(1e-6) });
  const c = g.one('rms_norm', [g.in('bf16', [1, 4, 48, 128]), g.in('bf16', [128])], { eps: f(1e-6) });
  const cat = g.one('Concat', [a, c], { axis: i(2) });
  const cos = g.in('f32', [1, 1, 64, 128]);
  return g.build([g.one('rope', [cat, cos, g.in('f32', [1, 1, 64, 128])], { style: s('interleaved'), layout: s('BNSH') })]);
}

function pointwiseMix(): Graph {
  const g = new B();
  const a = g.in('f32', [3, 1, 17]);
  const b = g.in('f32', [5, 17]);
  const sum = g.one('Add', [a, b]);
  const prod = g.one('Mul', [sum, g.scalar('f32', 0.5)]);
  const e = g.one('Exp', [g.one('Neg', [g.one('Abs', [prod])])]);
  const sq = g.one('Sqrt', [g.one('Add', [g.one('Mul', [b, b]), g.scalar('f32', 1)])]);
  const div = g.one('Div', [e, sq]);
  const th = g.one('Tanh', [g.one('Sub', [div, g.one('Sigmoid', [a])])]);
  const gelu = g.one('Gelu', [th], { approximate: s('none') });
  const less = g.one('Less', [a, b]);
  const where = g.one('Where', [less, gelu, g.one('Erf', [prod])]);
  const pw = g.one('Pow', [g.one('Abs', [where]), g.scalar('f32', 1.5)]);
  const half = g.one('Cast', [pw], { to: i(10) });
  const silu = g.one('silu', [half]);
  const bf = g.one('Cast', [g.one('Max', [where, a, g.scalar('f32', -0.25)])], { to: i(16) });
  return g.build([pw, silu, bf, less]);
}

function dataMovement(): Graph {
  const g = new B();
  const x = g.in('bf16', [2, 5, 3, 16]);
  const t = g.one('Transpose', [x], { perm: ints([0, 2, 1, 3]) });
  const sl = g.one('Slice', [t, g.i64([0, 1]), g.i64([3, 5]), g.i64([1, 2]), g.i64([1, 2])]);
  const y = g.in('bf16', [2, 3, 5, 16]);
  const cat = g.one('Concat', [sl, y], { axis: i(2) });
  const ex = g.one('Expand', [g.one('Unsqueeze', [cat, g.i64([1])]), g.i64([2, 4, 3, 7, 16])]);
  const gconst = g.one('Gather', [x, g.b.constant(Tensor.from('i64', [3], [4, 0, 2]))], { axis: i(1) });
  const idx = g.in('i64', [2, 3]);
  const gdyn = g.one('Gather', [g.in('f32', [7, 6]), idx], { axis: i(0) });
  const parts = g.op('Split', [g.in('f32', [4, 30])], { axis: i(1), num_outputs: i(3) }, 3);
  const rev = g.one('Slice', [parts[1]!, g.i64([-1]), g.i64([-100]), g.i64([1]), g.i64([-1])]);
  const tcat = g.one('Concat', [rev, parts[2]!, parts[0]!], { axis: i(0) });
  return g.build([ex, gconst, gdyn, tcat]);
}

function integers(): Graph {
  const g = new B();
  const a = g.in('i64', [4, 9]);
  const b = g.in('i64', [9]);
  const d = g.one('Div', [a, b]);
  const m = g.one('Mod', [a, b]);
  const eq = g.one('Equal', [g.one('Add', [d, m]), g.one('Mul', [a, g.scalar('i64', 3)])]);
  return g.build([d, m, eq, g.one('Cast', [g.one('Sub', [a, b])], { to: i(1) })]);
}

function softmaxes(): Graph {
  const g = new B();
  const sm = g.one('Softmax', [g.in('f32', [8, 1000])], { axis: i(-1) });
  const lsm = g.one('LogSoftmax', [g.in('f16', [4, 77])], { axis: i(1) });
  const mid = g.one('Softmax', [g.in('bf16', [3, 50, 7])], { axis: i(1) });
  return g.build([sm, lsm, mid]);
}

function reductions(): Graph {
  const g = new B();
  const x = g.in('f32', [4, 33, 65]);
  const mean = g.one('ReduceMean', [x, g.i64([-1])], { keepdims: i(1) });
  const sum = g.one('ReduceSum', [x, g.i64([1])], { keepdims: i(0) });
  const max = g.one('ReduceMax', [x, g.i64([0, 2])], { keepdims: i(0) });
  const centered = g.one('Sub', [x, mean]);
  const l2 = g.one('ReduceSumSquare', [centered, g.i64([1, 2])], { keepdims: i(1) });
  // First Block Cache's relative change: mean |a - b| / mean |b| over whole activations.
  const a = g.in('bf16', [1, 300, 256]);
  const b = g.in('bf16', [1, 300, 256]);
  const diff = g.one('ReduceMean', [g.one('Abs', [g.one('Sub', [a, b])]), g.i64([0, 1, 2])], { keepdims: i(0) });
  const ref = g.one('ReduceMean', [g.one('Abs', [b]), g.i64([0, 1, 2])], { keepdims: i(0) });
  return g.build([mean, sum, max, l2, g.one('Div', [diff, ref])]);
}

function onnxNorms(): Graph {
  const g = new B();
  const x = g.in('f32', [3, 40]);
  const ln = g.one('LayerNormalization', [x, g.in('f32', [40]), g.in('f32', [40])], { axis: i(-1), epsilon: f(1e-5) });
  const rms = g.one('RMSNormalization', [g.in('bf16', [2, 5, 64]), g.in('bf16', [64])], { axis: i(-1), epsilon: f(1e-6) });
  return g.build([ln, rms]);
}

/** FLUX single block: Concat(attention output back to [B,S,D], MLP activation) along features. */
function concatInPlace(): Graph {
  const g = new B();
  const t = g.one('Transpose', [g.in('bf16', [1, 4, 24, 32])], { perm: ints([0, 2, 1, 3]) });
  const r = g.one('Reshape', [t, g.i64([1, 24, 128])]);
  const act = g.one('gelu', [g.in('bf16', [1, 24, 256])], { approximate: s('tanh') });
  return g.build([g.one('Concat', [r, act, g.in('bf16', [1, 24, 40])], { axis: i(2) })]);
}

/** Small fragments covering every path; each checks against the interpreter on the GPU. */
export function coverageFragments(): CheckCase[] {
  return [
    { name: 'ln_modulate_bf16', graph: lnModulate('bf16', [2, 64, 384], false) },
    { name: 'gres_ln_modulate_f16', graph: lnModulate('f16', [1, 37, 200], true) },
    { name: 'ln_modulate_f32_odd', graph: lnModulate('f32', [1, 5, 1001], false) },
    { name: 'rms_rope_interleaved_bf16', graph: rmsRope('bf16', [1, 4, 64, 128], 'interleaved', 'BNSH', [64, 128]) },
    { name: 'rms_rope_rotate_half_f32', graph: rmsRope('f32', [1, 64, 4, 64], 'rotate_half', 'BSNH', [1, 64, 32]) },
    { name: 'rms_rope_rotate_half_bf16_h64', graph: rmsRope('bf16', [2, 3, 40, 64], 'rotate_half', 'BNSH', [40, 64]) },
    { name: 'concat_norms_rope', graph: concatNormsRope() },
    { name: 'pointwise_mix', graph: pointwiseMix() },
    { name: 'data_movement', graph: dataMovement() },
    { name: 'integers', graph: integers() },
    { name: 'softmaxes', graph: softmaxes() },
    { name: 'reductions', graph: reductions() },
    { name: 'onnx_norms', graph: onnxNorms() },
    { name: 'concat_in_place', graph: concatInPlace() },
  ];
}

/** The FLUX shapes the GPU benchmark times (bf16, 4608 tokens, 3072 wide, 24 heads of 128). */
export function benchFragments(): CheckCase[] {
  const gres = new B();
  const gx = gres.in('bf16', [1, 4608, 3072]);
  const gelu = new B();
  const tr = new B();
  const th = tr.one('Reshape', [tr.in('bf16', [1, 4608, 3072]), tr.i64([1, 4608, 24, 128])]);
  const fb = new B();
  const diff = fb.one('Abs', [fb.one('Sub', [fb.in('bf16', [1, 4608, 3072]), fb.in('bf16', [1, 4608, 3072])])]);
  return [
    { name: 'flux_ln_modulate', graph: lnModulate('bf16', [1, 4608, 3072], false), torch: 'ln_modulate' },
    { name: 'flux_rms_rope', graph: rmsRope('bf16', [1, 24, 4608, 128], 'interleaved', 'BNSH', [4608, 128]), torch: 'rms_rope' },
    {
      name: 'flux_gated_residual',
      graph: gres.build([gres.one('gated_residual', [gx, gres.in('bf16', [1, 1, 3072]), gres.in('bf16', [1, 4608, 3072])])]),
      torch: 'gated_residual',
    },
    { name: 'flux_gelu_tanh', graph: gelu.build([gelu.one('gelu', [gelu.in('bf16', [1, 4608, 12288])], { approximate: s('tanh') })]), torch: 'gelu_tanh' },
    { name: 'flux_head_transpose', graph: tr.build([tr.one('Transpose', [th], { perm: ints([0, 2, 1, 3]) })]), torch: 'head_transpose' },
    { name: 'flux_fbcache_diff', graph: fb.build([fb.one('ReduceMean', [diff, fb.i64([0, 1, 2])], { keepdims: i(0) })]), torch: 'fbcache_diff' },
  ];
}
