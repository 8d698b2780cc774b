/**
 * fuse-linear: MatMul by a constant weight plus bias, Gemm (transB), MatMul by Transpose(W), a
 * [1,M] bias; must-not-fire (activation x activation, alpha != 1); an error case; numerics within
 * relative L2 1e-6 (fp32).
 */
import { fuseLinear } from '../src/fuse-linear';
import { expectIr, ir, runOne } from './helpers';
import { expectFusedClose } from './fusion-helpers';

const W = '%w = const f32[4,3] [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]';
const B = '%b = const f32[3] [1.0, -1.0, 0.5]';

describe('fuse-linear', () => {
  test('MatMul(x, W) + bias becomes linear(x, W, bias); a [1,M] bias is reshaped to [M]', () => {
    const before = ir(`graph main(%x: f32[2,5,4]) {
      ${W}
      ${B}
      %h = MatMul(%x, %w)
      %y = Add(%b, %h)
      %b2 = const f32[1,3] [2.0, 3.0, 4.0]
      %h2 = MatMul(%x, %w)
      %y2 = Add(%h2, %b2)
      return %y, %y2 }`);
    const after = runOne(fuseLinear, before);
    expectIr(
      after,
      `graph main(%x: f32[2,5,4]) {
        ${W}
        ${B}
        %y = linear(%x, %w, %b) {transB=0}
        %b2 = const f32[1,3] [2.0, 3.0, 4.0]
        %s = const i64[1] [3]
        %v = Reshape(%b2, %s)
        %y2 = linear(%x, %w, %v) {transB=0}
        return %y, %y2 }`,
    );
    expectFusedClose(before, after);
  });

  test('Gemm {transB=1} and MatMul(x, Transpose(W)) become linear {transB=1}', () => {
    const before = ir(`graph main(%x: f32[2,4], %z: f32[2,5,4]) {
      %wt = const f32[3,4] [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]
      ${B}
      %y = Gemm(%x, %wt, %b) {alpha=1.0, beta=1.0, transB=1}
      %t = Transpose(%wt) {perm=[1, 0]}
      %y2 = MatMul(%z, %t)
      return %y, %y2 }`);
    const after = runOne(fuseLinear, before);
    expectIr(
      after,
      `graph main(%x: f32[2,4], %z: f32[2,5,4]) {
        %wt = const f32[3,4] [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]
        ${B}
        %y = linear(%x, %wt, %b) {transB=1}
        %y2 = linear(%z, %wt) {transB=1}
        return %y, %y2 }`,
    );
    expectFusedClose(before, after);
  });

  test('must not fire: MatMul of two activations, Gemm with alpha 2 or a full [N,M] C', () => {
    const m = ir(`graph main(%x: f32[2,4], %y: f32[4,3], %c: f32[2,3]) {
      %a = MatMul(%x, %y)
      ${W}
      %g = Gemm(%x, %w) {alpha=2.0}
      %h = Gemm(%x, %w, %c)
      return %a, %g, %h }`);
    expect(runOne(fuseLinear, m)).toBe(m);
  });

  test('error: a linear whose weight does not match x is rejected with expected vs got', () => {
    expect(() => ir(`graph main(%x: f32[2,5], %w: f32[4,3]) { %y = linear(%x, %w) {transB=0} return %y }`)).toThrow(
      /x \[2,5\] has 5 input features, w \[4,3\] \(\[K,M\]\) expects K = 4/,
    );
  });
});
