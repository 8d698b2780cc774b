/**
 * fuse-activations: GELU erf and tanh forms in several operand orders and associations, ONNX Gelu,
 * SiLU, an fp32 GELU between casts; must-not-fire (wrong constants, sigmoid of another value);
 * an error case; numerics within relative L2 1e-6 (fp32).
 */
import { fuseActivations } from '../src/fuse-activations';
import { expectIr, ir, runOne } from './helpers';
import { expectFusedClose } from './fusion-helpers';

const X = '%x: f32[2,3,16]';

describe('fuse-activations', () => {
  const erfForms = [
    // x * 0.5 * (1 + erf(x / sqrt2))  (dynamo / torch.nn.GELU)
    `%c = const f32[] [1.4142135]
     %d = Div(%x, %c)
     %e = Erf(%d)
     %one = const f32[] [1.0]
     %u = Add(%e, %one)
     %h = const f32[] [0.5]
     %xh = Mul(%x, %h)
     %y = Mul(%xh, %u)`,
    // (x * (1 + erf(x * 1/sqrt2))) / 2, operands swapped
    `%c = const f32[] [0.70710677]
     %d = Mul(%c, %x)
     %e = Erf(%d)
     %one = const f32[] [1.0]
     %u = Add(%one, %e)
     %p = Mul(%u, %x)
     %two = const f32[] [2.0]
     %y = Div(%p, %two)`,
    // 0.5*x + 0.5*x*erf(x/sqrt2), distributed
    `%c = const f32[] [1.4142135]
     %d = Div(%x, %c)
     %e = Erf(%d)
     %h = const f32[] [0.5]
     %a = Mul(%h, %x)
     %b0 = Mul(%x, %h)
     %b = Mul(%b0, %e)
     %y = Add(%a, %b)`,
  ];
  test.each(erfForms.map((f, i) => [i, f]))('GELU erf form %i becomes gelu(x) {none}', (_i, body) => {
    const before = ir(`graph main(${X}) { ${body} return %y }`);
    const after = runOne(fuseActivations, before);
    expectIr(after, `graph main(${X}) { %y = gelu(%x) {approximate="none"} return %y }`);
    expectFusedClose(before, after);
  });

  const tanhForms = [
    // flux dynamo: Pow(x, 3), constants first
    `%three = const f32[] [3.0]
     %x3 = Pow(%x, %three)
     %k = const f32[] [0.044714998453855515]
     %kx3 = Mul(%k, %x3)
     %in = Add(%x, %kx3)
     %c = const f32[] [0.7978845834732056]
     %z = Mul(%c, %in)
     %t = Tanh(%z)
     %one = const f32[] [1.0]
     %u = Add(%t, %one)
     %h = const f32[] [0.5]
     %hu = Mul(%h, %u)
     %y = Mul(%x, %hu)`,
    // x*x*x and sqrt(2/pi) * x * (1 + 0.044715 x^2)
    `%xx = Mul(%x, %x)
     %k = const f32[] [0.044715]
     %kxx = Mul(%xx, %k)
     %one = const f32[] [1.0]
     %s = Add(%one, %kxx)
     %c = const f32[] [0.7978846]
     %cx = Mul(%x, %c)
     %z = Mul(%cx, %s)
     %t = Tanh(%z)
     %u = Add(%one, %t)
     %h = const f32[] [0.5]
     %xh = Mul(%h, %x)
     %y = Mul(%u, %xh)`,
  ];
  test.each(tanhForms.map((f, i) => [i, f]))('GELU tanh form %i becomes gelu(x) {tanh}', (_i, body) => {
    const before = ir(`graph main(${X}) { ${body} return %y }`);
    const after = runOne(fuseActivations, before);
    expectIr(after, `graph main(${X}) { %y = gelu(%x) {approximate="tanh"} return %y }`);
    expectFusedClose(before, after);
  });

  test('ONNX Gelu, SiLU in both orders, and an fp32 GELU between casts', () => {
    const before = ir(
      `graph main(${X}, %b: bf16[2,8]) {
         %g = Gelu(%x) {approximate="tanh"}
         %s = Sigmoid(%x)
         %y1 = Mul(%s, %x)
         %y2 = Mul(%x, %s)
         %bf = Cast(%b) {to=1}
         %gb = Gelu(%bf)
         %y3 = Cast(%gb) {to=16}
         return %g, %y1, %y2, %y3
       }`,
      20,
    );
    const after = runOne(fuseActivations, before);
    expectIr(
      after,
      `graph main(${X}, %b: bf16[2,8]) {
         %g = gelu(%x) {approximate="tanh"}
         %y1 = silu(%x)
         %y2 = silu(%x)
         %y3 = gelu(%b) {approximate="none"}
         return %g, %y1, %y2, %y3
       }`,
    );
    expectFusedClose(before, after, 1e-2);
  });

  test('must not fire: wrong erf scale, wrong cubic coefficient, x*sigmoid(y), erf also used elsewhere', () => {
    const m = ir(`
      graph main(${X}, %w: f32[2,3,16]) {
        %c = const f32[] [2.0]
        %d = Div(%x, %c)
        %e = Erf(%d)
        %one = const f32[] [1.0]
        %u = Add(%e, %one)
        %h = const f32[] [0.5]
        %xh = Mul(%x, %h)
        %y1 = Mul(%xh, %u)
        %three = const f32[] [3.0]
        %x3 = Pow(%x, %three)
        %k = const f32[] [0.05]
        %kx3 = Mul(%k, %x3)
        %in = Add(%x, %kx3)
        %c2 = const f32[] [0.7978845834732056]
        %z = Mul(%c2, %in)
        %t = Tanh(%z)
        %u2 = Add(%t, %one)
        %hu = Mul(%h, %u2)
        %y2 = Mul(%x, %hu)
        %s = Sigmoid(%w)
        %y3 = Mul(%x, %s)
        %c3 = const f32[] [1.4142135]
        %d3 = Div(%x, %c3)
        %e3 = Erf(%d3)
        %u3 = Add(%e3, %one)
        %y4 = Mul(%xh, %u3)
        return %y1, %y2, %y3, %y4, %e3
      }`);
    expect(runOne(fuseActivations, m)).toBe(m);
  });

  test('error: gelu with an unknown approximation is rejected', () => {
    expect(() => ir(`graph main(${X}) { %y = gelu(%x) {approximate="fast"} return %y }`)).toThrow(/'approximate' must be 'none' or 'tanh', got 'fast'/);
  });
});
