/**
 * fuse-norms: decomposed RMSNorm (dynamo Reciprocal form, TorchScript Div form, bf16 with casts),
 * decomposed LayerNorm with affine, the ONNX ops; must-not-fire cases; an error case; numerics
 * within relative L2 1e-6 (fp32) and 1e-2 (bf16: the fused op rounds once, the graph per op).
 */
import { fuseNorms } from '../src/fuse-norms';
import { expectIr, ir, runOne } from './helpers';
import { expectFusedClose } from './fusion-helpers';

const EPS = '%eps = const f32[] [9.999999974752427e-7]';
const W8 = '%w = const f32[8] [0.5, 1.0, 1.5, 2.0, -1.0, 0.25, 3.0, 1.0]';

describe('fuse-norms', () => {
  test('per-head RMSNorm, dynamo spelling: Pow/ReduceMean/Add/Sqrt/Reciprocal/Mul, then weight', () => {
    const before = ir(`
      graph main(%x: f32[1,6,2,8]) {
        %two = const f32[] [2.0]
        %sq = Pow(%x, %two)
        %ax = const i64[1] [3]
        %m = ReduceMean(%sq, %ax) {keepdims=1, noop_with_empty_axes=0}
        ${EPS}
        %a = Add(%m, %eps)
        %r = Sqrt(%a)
        %i = Reciprocal(%r)
        %n = Mul(%x, %i)
        ${W8}
        %y = Mul(%n, %w)
        return %y
      }`);
    const after = runOne(fuseNorms, before);
    expectIr(after, `graph main(%x: f32[1,6,2,8]) { ${W8} %y = rms_norm(%x, %w) {eps=9.999999974752427e-7} return %y }`);
    expectFusedClose(before, after);
  });

  test('TorchScript spelling (opset 17): axes attribute, Div(1, Sqrt(..)), weight first', () => {
    const before = ir(
      `graph main(%x: f32[2,4,5,8]) {
         %two = const f32[] [2.0]
         %sq = Pow(%x, %two)
         %m = ReduceMean(%sq) {axes=[-1], keepdims=1}
         ${EPS}
         %a = Add(%eps, %m)
         %r = Sqrt(%a)
         %one = const f32[] [1.0]
         %i = Div(%one, %r)
         %n = Mul(%x, %i)
         ${W8}
         %y = Mul(%w, %n)
         return %y
       }`,
      17,
    );
    const after = runOne(fuseNorms, before);
    expectIr(after, `graph main(%x: f32[2,4,5,8]) { ${W8} %y = rms_norm(%x, %w) {eps=9.999999974752427e-7} return %y }`);
    expectFusedClose(before, after);
  });

  test('bf16 RMSNorm computed in fp32 between casts becomes one bf16 rms_norm', () => {
    const before = ir(`
      graph main(%x: bf16[1,4,6,8]) {
        %xf = Cast(%x) {to=1}
        %two = const f32[] [2.0]
        %sq = Mul(%xf, %xf)
        %ax = const i64[1] [-1]
        %m = ReduceMean(%sq, %ax)
        ${EPS}
        %a = Add(%m, %eps)
        %r = Sqrt(%a)
        %i = Reciprocal(%r)
        %n = Mul(%xf, %i)
        %nb = Cast(%n) {to=16}
        %w = const bf16[8] [0.5, 1.0, 1.5, 2.0, -1.0, 0.25, 3.0, 1.0]
        %y = Mul(%nb, %w)
        return %y
      }`);
    const after = runOne(fuseNorms, before);
    expectIr(
      after,
      `graph main(%x: bf16[1,4,6,8]) {
         %w = const bf16[8] [0.5, 1.0, 1.5, 2.0, -1.0, 0.25, 3.0, 1.0]
         %y = rms_norm(%x, %w) {eps=9.999999974752427e-7}
         return %y
       }`,
    );
    expectFusedClose(before, after, 1e-2);
  });

  test('decomposed LayerNorm with weight and bias becomes layer_norm(x, w, b)', () => {
    const before = ir(`
      graph main(%x: f32[2,5,8]) {
        %ax = const i64[1] [-1]
        %mu = ReduceMean(%x, %ax)
        %d = Sub(%x, %mu)
        %two = const f32[] [2.0]
        %d2 = Pow(%d, %two)
        %var = ReduceMean(%d2, %ax)
        ${EPS}
        %a = Add(%var, %eps)
        %r = Sqrt(%a)
        %n = Div(%d, %r)
        ${W8}
        %nw = Mul(%n, %w)
        %b = const f32[8] [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
        %y = Add(%nw, %b)
        return %y
      }`);
    const after = runOne(fuseNorms, before);
    expectIr(
      after,
      `graph main(%x: f32[2,5,8]) {
         ${W8}
         %b = const f32[8] [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
         %y = layer_norm(%x, %w, %b) {eps=9.999999974752427e-7}
         return %y
       }`,
    );
    expectFusedClose(before, after);
  });

  test('ONNX RMSNormalization and LayerNormalization; an all-ones weight and zero bias are dropped', () => {
    const before = ir(
      `graph main(%x: f32[2,5,8], %h: f32[2,3,5,4]) {
         ${W8}
         %y = RMSNormalization(%x, %w) {axis=-1, epsilon=0.5}
         %ones = const f32[4] [1.0, 1.0, 1.0, 1.0]
         %zeros = const f32[4] [0.0, 0.0, 0.0, 0.0]
         %z = LayerNormalization(%h, %ones, %zeros) {axis=-1, epsilon=0.25}
         %u = LayerNormalization(%x, %w) {axis=2, epsilon=0.25}
         return %y, %z, %u
       }`,
      23,
    );
    const after = runOne(fuseNorms, before);
    expectIr(
      after,
      `graph main(%x: f32[2,5,8], %h: f32[2,3,5,4]) {
         ${W8}
         %y = rms_norm(%x, %w) {eps=0.5}
         %z = layer_norm(%h) {eps=0.25}
         %u = layer_norm(%x, %w) {eps=0.25}
         return %y, %z, %u
       }`,
    );
    expectFusedClose(before, after);
  });

  test('must not fire: mean over another axis, statistics of another tensor, a norm over two axes, a computed scale', () => {
    const m = ir(
      `graph main(%x: f32[2,5,8], %y: f32[2,5,8], %s: f32[5,8]) {
         %two = const f32[] [2.0]
         %sq = Pow(%x, %two)
         %a1 = const i64[1] [1]
         %m1 = ReduceMean(%sq, %a1)
         %q1 = Sqrt(%m1)
         %r1 = Reciprocal(%q1)
         %n1 = Mul(%x, %r1)
         %a2 = const i64[1] [-1]
         %m2 = ReduceMean(%sq, %a2)
         %q2 = Sqrt(%m2)
         %r2 = Reciprocal(%q2)
         %n2 = Mul(%y, %r2)
         %n3 = LayerNormalization(%x, %s) {axis=1}
         return %n1, %n2, %n3
       }`,
    );
    expect(runOne(fuseNorms, m)).toBe(m);
    const partial = ir(`
      graph main(%x: f32[2,5,8], %s: f32[2,1,8]) {
        %ones = const f32[8] [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
        %y = RMSNormalization(%x, %ones) {axis=-1, epsilon=0.5}
        %z = Mul(%y, %s)
        return %z
      }`, 23);
    expectIr(runOne(fuseNorms, partial), `graph main(%x: f32[2,5,8], %s: f32[2,1,8]) { %y = rms_norm(%x) {eps=0.5} %z = Mul(%y, %s) return %z }`);
  });

  test('error: a norm whose weight is not [D] is rejected with expected vs got', () => {
    expect(() => ir(`graph main(%x: f32[2,5,8], %w: f32[5,8]) { %y = rms_norm(%x, %w) {eps=0.5} return %y }`)).toThrow(
      /weight must be \[D\] = \[8\] \(x is \[2,5,8\]\), got \[5,8\]/,
    );
  });
});
