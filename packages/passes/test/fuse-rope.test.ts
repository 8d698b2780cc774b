/**
 * fuse-rope: FLUX's interleaved rotation, rotate-half with Slice and Split halves, per-pair
 * products (halves and Wan's ScatterND interleave), casts around an fp32 rope, rope over a
 * [B,S,D] tensor; must-not-fire; an error case; numerics within relative L2 1e-6 (fp32).
 */
import { fuseRope } from '../src/fuse-rope';
import { expectIr, ir, runOne } from './helpers';
import { expectFusedClose } from './fusion-helpers';

const IDX = `%z = const i64[1] [0]
  %o = const i64[1] [1]
  %t = const i64[1] [2]
  %m1 = const i64[1] [-1]`;

/** FLUX's apply_rotary_emb rotation of %x (shape given) into %r, pairs of the last axis. */
function interleavedRotation(shape: number[]): string {
  const pairs = [...shape.slice(0, -1), shape[shape.length - 1]! / 2, 2];
  return `${IDX}
  %ps = const i64[${pairs.length}] [${pairs.join(', ')}]
  %xp = Reshape(%x, %ps)
  %re5 = Slice(%xp, %z, %o, %m1)
  %re = Squeeze(%re5, %m1)
  %im5 = Slice(%xp, %o, %t, %m1)
  %im = Squeeze(%im5, %m1)
  %nim = Neg(%im)
  %a = Unsqueeze(%nim, %m1)
  %b = Unsqueeze(%re, %m1)
  %st = Concat(%a, %b) {axis=-1}
  %xs = const i64[${shape.length}] [${shape.join(', ')}]
  %r = Reshape(%st, %xs)`;
}

describe('fuse-rope', () => {
  test('FLUX interleaved: x*cos + Reshape(Concat(Unsqueeze(-x_odd), Unsqueeze(x_even)))*sin, [1,S,1,H] tables', () => {
    const sig = '%x: f32[1,6,2,8], %cos: f32[1,6,1,8], %sin: f32[1,6,1,8]';
    const before = ir(`graph main(${sig}) {
      ${interleavedRotation([1, 6, 2, 8])}
      %xc = Mul(%x, %cos)
      %rs = Mul(%r, %sin)
      %y = Add(%xc, %rs)
      return %y }`);
    const after = runOne(fuseRope, before);
    expectIr(after, `graph main(${sig}) { %y = rope(%x, %cos, %sin) {layout="BSNH", style="interleaved"} return %y }`);
    expectFusedClose(before, after);
  });

  test('rotate_half with Slice halves and with Split halves; [S,H] tables are unsqueezed to rank 4', () => {
    const sig = '%x: f32[1,2,6,8], %cos: f32[6,8], %sin: f32[6,8]';
    const expected = `graph main(${sig}) {
      %ax = const i64[2] [0, 1]
      %c4 = Unsqueeze(%cos, %ax)
      %s4 = Unsqueeze(%sin, %ax)
      %y = rope(%x, %c4, %s4) {layout="BNSH", style="rotate_half"}
      return %y }`;
    const halves = [
      `%z = const i64[1] [0]
       %h = const i64[1] [4]
       %e = const i64[1] [9223372036854775807]
       %m1 = const i64[1] [-1]
       %x1 = Slice(%x, %z, %h, %m1)
       %x2 = Slice(%x, %h, %e, %m1)`,
      `%x1, %x2 = Split(%x) {axis=-1, num_outputs=2}`,
    ];
    for (const h of halves) {
      const before = ir(`graph main(${sig}) {
        ${h}
        %n = Neg(%x2)
        %r = Concat(%n, %x1) {axis=-1}
        %xc = Mul(%cos, %x)
        %rs = Mul(%sin, %r)
        %y = Add(%rs, %xc)
        return %y }`);
      const after = runOne(fuseRope, before);
      expectIr(after, expected);
      expectFusedClose(before, after);
    }
  });

  test('rotate_half through Reshape(x, [..., 2, H/2]) and unbind(-2) (CogView4, Cosmos)', () => {
    const sig = '%x: f32[1,2,6,8], %cos: f32[1,1,6,8], %sin: f32[1,1,6,8]';
    const before = ir(`graph main(${sig}) {
      %rs = const i64[5] [1, 2, 6, 2, 4]
      %xr = Reshape(%x, %rs)
      %a, %b = Split(%xr) {axis=-2, num_outputs=2}
      %ax = const i64[1] [-2]
      %re = Squeeze(%a, %ax)
      %im = Squeeze(%b, %ax)
      %n = Neg(%im)
      %r = Concat(%n, %re) {axis=-1}
      %xc = Mul(%x, %cos)
      %rc = Mul(%r, %sin)
      %y = Add(%xc, %rc)
      return %y }`);
    const after = runOne(fuseRope, before);
    expectIr(after, `graph main(${sig}) { %y = rope(%x, %cos, %sin) {layout="BNSH", style="rotate_half"} return %y }`);
    expectFusedClose(before, after);
  });

  test("TorchScript's out[..., 0::2] = lo; out[..., 1::2] = hi: ScatterND with every coordinate listed", () => {
    const sig = '%x: f32[1,1,2,4], %c: f32[1,1,1,2], %s: f32[1,1,1,2], %buf: f32[1,1,2,4]';
    const coords = (p: number): string =>
      [0, 1].flatMap((n) => [0, 1].flatMap((j) => [0, 0, n, 2 * j + p])).join(', ');
    const before = ir(`graph main(${sig}) {
      ${IDX}
      %ps = const i64[5] [1, 1, 2, 2, 2]
      %xp = Reshape(%x, %ps)
      %e, %f = Split(%xp) {axis=-1, num_outputs=2}
      %x1 = Squeeze(%e, %m1)
      %x2 = Squeeze(%f, %m1)
      %a = Mul(%x1, %c)
      %b = Mul(%x2, %s)
      %lo = Sub(%a, %b)
      %ie = const i64[1,1,2,2,4] [${coords(0)}]
      %sc1 = ScatterND(%buf, %ie, %lo)
      %p = Mul(%x1, %s)
      %q = Mul(%x2, %c)
      %hi = Add(%p, %q)
      %io = const i64[1,1,2,2,4] [${coords(1)}]
      %y = ScatterND(%sc1, %io, %hi)
      return %y }`);
    const after = runOne(fuseRope, before);
    expectIr(after, `graph main(${sig}) { %y = rope(%x, %c, %s) {layout="BNSH", style="interleaved"} return %y }`);
    expectFusedClose(before, after);
  });

  test('per-pair products: Concat(x1*c - x2*s, x1*s + x2*c) with half-width tables', () => {
    const sig = '%x: f32[2,2,6,8], %c: f32[6,4], %s: f32[6,4]';
    const before = ir(`graph main(${sig}) {
      %x1, %x2 = Split(%x) {axis=-1, num_outputs=2}
      %a = Mul(%x1, %c)
      %b = Mul(%s, %x2)
      %lo = Sub(%a, %b)
      %p = Mul(%x2, %c)
      %q = Mul(%x1, %s)
      %hi = Add(%p, %q)
      %y = Concat(%lo, %hi) {axis=-1}
      return %y }`);
    const after = runOne(fuseRope, before);
    expectIr(
      after,
      `graph main(${sig}) {
        %ax = const i64[2] [0, 1]
        %c4 = Unsqueeze(%c, %ax)
        %s4 = Unsqueeze(%s, %ax)
        %y = rope(%x, %c4, %s4) {layout="BNSH", style="rotate_half"}
        return %y }`,
    );
    expectFusedClose(before, after);
  });

  test('per-pair products stacked back: Reshape(Concat(Unsqueeze(lo), Unsqueeze(hi))) with stride-2 pair elements', () => {
    const sig = '%x: f32[1,6,2,8], %c: f32[1,6,1,4], %s: f32[1,6,1,4]';
    const before = ir(`graph main(${sig}) {
      ${IDX}
      %e = const i64[1] [9223372036854775807]
      %x1 = Slice(%x, %z, %e, %m1, %t)
      %x2 = Slice(%x, %o, %e, %m1, %t)
      %a = Mul(%x1, %c)
      %b = Mul(%x2, %s)
      %lo = Sub(%a, %b)
      %p = Mul(%s, %x1)
      %q = Mul(%c, %x2)
      %hi = Add(%q, %p)
      %ul = Unsqueeze(%lo, %m1)
      %uh = Unsqueeze(%hi, %m1)
      %st = Concat(%ul, %uh) {axis=-1}
      %xs = const i64[4] [1, 6, 2, 8]
      %y = Reshape(%st, %xs)
      return %y }`);
    const after = runOne(fuseRope, before);
    expectIr(after, `graph main(${sig}) { %y = rope(%x, %c, %s) {layout="BSNH", style="interleaved"} return %y }`);
    expectFusedClose(before, after);
  });

  test("Wan: out[..., 0::2] = x1*c - x2*s; out[..., 1::2] = x1*s + x2*c through transposed ScatterND", () => {
    const sig = '%x: f32[2,6,2,8], %c: f32[1,6,1,4], %s: f32[1,6,1,4], %buf: f32[8,6,2,2]';
    const before = ir(`graph main(${sig}) {
      ${IDX}
      %ps = const i64[5] [2, 6, 2, 4, 2]
      %xp = Reshape(%x, %ps)
      %e5 = Slice(%xp, %z, %o, %m1)
      %x1 = Squeeze(%e5, %m1)
      %o5 = Slice(%xp, %o, %t, %m1)
      %x2 = Squeeze(%o5, %m1)
      %a = Mul(%x1, %c)
      %b = Mul(%x2, %s)
      %lo = Sub(%a, %b)
      %tl = Transpose(%lo) {perm=[3, 1, 2, 0]}
      %ie = const i64[4,1] [0, 2, 4, 6]
      %sc1 = ScatterND(%buf, %ie, %tl)
      %p = Mul(%x1, %s)
      %q = Mul(%x2, %c)
      %hi = Add(%p, %q)
      %th = Transpose(%hi) {perm=[3, 1, 2, 0]}
      %io = const i64[4,1] [1, 3, 5, 7]
      %y = ScatterND(%sc1, %io, %th)
      return %y }`);
    const after = runOne(fuseRope, before);
    expectIr(
      after,
      `graph main(${sig}) {
        %r = rope(%x, %c, %s) {layout="BSNH", style="interleaved"}
        %y = Transpose(%r) {perm=[3, 1, 2, 0]}
        return %y }`,
    );
    expectFusedClose(before, after);
  });

  test('bf16 x with an fp32 rope between casts, and rope over [B,S,D] before the head split', () => {
    const sig = '%x: bf16[1,6,2,8], %cos: f32[1,6,1,8], %sin: f32[1,6,1,8]';
    const before = ir(`graph main(${sig}) {
      ${interleavedRotation([1, 6, 2, 8])}
      %xf = Cast(%x) {to=1}
      %rf = Cast(%r) {to=1}
      %xc = Mul(%xf, %cos)
      %rs = Mul(%rf, %sin)
      %yf = Add(%xc, %rs)
      %y = Cast(%yf) {to=16}
      return %y }`);
    const after = runOne(fuseRope, before);
    expectIr(after, `graph main(${sig}) { %y = rope(%x, %cos, %sin) {layout="BSNH", style="interleaved"} return %y }`);
    expectFusedClose(before, after, 1e-2);

    const flat = '%x: f32[2,6,16], %cos: f32[2,6,16], %sin: f32[2,6,16]';
    const b3 = ir(`graph main(${flat}) {
      ${interleavedRotation([2, 6, 16])}
      %xc = Mul(%x, %cos)
      %rs = Mul(%r, %sin)
      %y = Add(%xc, %rs)
      return %y }`);
    const a3 = runOne(fuseRope, b3);
    expectIr(
      a3,
      `graph main(${flat}) {
        %ax = const i64[1] [2]
        %x4 = Unsqueeze(%x, %ax)
        %c4 = Unsqueeze(%cos, %ax)
        %s4 = Unsqueeze(%sin, %ax)
        %r4 = rope(%x4, %c4, %s4) {layout="BSNH", style="interleaved"}
        %y = Squeeze(%r4, %ax)
        return %y }`,
    );
    expectFusedClose(b3, a3);
  });

  test('must not fire: rotation of another tensor, the opposite rotation sign, a width-1 table', () => {
    const m = ir(`graph main(%x: f32[1,2,6,8], %w: f32[1,2,6,8], %cos: f32[6,8], %sin: f32[6,8], %c1: f32[6,1]) {
      %x1, %x2 = Split(%x) {axis=-1, num_outputs=2}
      %n = Neg(%x2)
      %r = Concat(%n, %x1) {axis=-1}
      %a = Mul(%w, %cos)
      %b = Mul(%r, %sin)
      %y1 = Add(%a, %b)
      %nx1 = Neg(%x1)
      %r2 = Concat(%x2, %nx1) {axis=-1}
      %a2 = Mul(%x, %cos)
      %b2 = Mul(%r2, %sin)
      %y2 = Add(%a2, %b2)
      %a3 = Mul(%x, %c1)
      %b3 = Mul(%r, %c1)
      %y3 = Add(%a3, %b3)
      return %y1, %y2, %y3 }`);
    expect(runOne(fuseRope, m)).toBe(m);
  });

  test('error: a rope whose tables do not fit x is rejected with expected vs got', () => {
    expect(() => ir(`graph main(%x: f32[1,2,6,8], %c: f32[6,3]) { %y = rope(%x, %c, %c) {layout="BNSH", style="interleaved"} return %y }`)).toThrow(
      /cos \[6,3\] must broadcast to x \[1,2,6,8\] \(layout BNSH\) with last axis H = 8 or H\/2/,
    );
  });
});
