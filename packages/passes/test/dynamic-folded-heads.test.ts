/**
 * Heads folded into a symbolic batch (diffusers' head_to_batch_dim with dynamic axes): the pieces
 * on their own. fold-symbolic-shapes names the product dim ("batch*2") and lets a Shape of a view
 * read the view's input; fuse-attention traces [batch*2,S,H] operands back to [batch,2,S,H] and
 * restores the [batch*2,S,H] output; a folded batch with no visible split is left alone. Whole
 * models (ONNX round trip, two input sizes) are in tests/dynamic-folded-heads.test.ts.
 */
import { Tensor, interpret } from '@paradit/ir';
import { canonicalize, foldSymbolicShapesPass, fuseAttention } from '@paradit/passes';
import { expectIr, expectSameResults, ir, relL2, runOne } from './helpers';

/** x [batch,seq,8] -> [batch,seq,2,4] -> [batch,2,seq,4] -> [batch*2,seq,4], shapes from Shape(x). */
const HEAD_TO_BATCH = `
graph main(%x: f32[batch,seq,8]) {
  %i0 = const i64[] [0]
  %i1 = const i64[] [1]
  %two = const i64[] [2]
  %ax = const i64[1] [0]
  %n = const i64[1] [2]
  %h = const i64[1] [4]
  %s = Shape(%x)
  %b = Gather(%s, %i0) {axis=0}
  %l = Gather(%s, %i1) {axis=0}
  %bu = Unsqueeze(%b, %ax)
  %lu = Unsqueeze(%l, %ax)
  %t = Concat(%bu, %lu, %n, %h) {axis=0}
  %r = Reshape(%x, %t)
  %y = Transpose(%r) {perm=[0,2,1,3]}
  %bn = Mul(%b, %two)
  %bnu = Unsqueeze(%bn, %ax)
  %t3 = Concat(%bnu, %lu, %h) {axis=0}
  %z = Reshape(%y, %t3)
  return %z
}`;

const feeds = (b: number, s: number): Tensor[] => [Tensor.from('f32', [b, s, 8], Array.from({ length: b * s * 8 }, (_, i) => Math.sin(i * 0.37)))];

/** One self-attention over [batch*2,seq,4] operands typed as fold-symbolic-shapes types them (%t = [-1, seq, 4] at run time). */
const FOLDED_ATTENTION = `
graph main(%q: f32[batch,2,seq,4], %k: f32[batch,2,seq,4], %v: f32[batch,2,seq,4], %t: i64[3]) {
  %c = const f32[] [0.5]
  %q3 = Reshape(%q, %t) : f32["batch*2",seq,4]
  %k3 = Reshape(%k, %t) : f32["batch*2",seq,4]
  %v3 = Reshape(%v, %t) : f32["batch*2",seq,4]
  %kt = Transpose(%k3) {perm=[0,2,1]}
  %s = MatMul(%q3, %kt)
  %sc = Mul(%s, %c)
  %p = Softmax(%sc) {axis=-1}
  %o = MatMul(%p, %v3)
  return %o
}`;

describe('heads folded into a symbolic batch', () => {
  test('fold-symbolic-shapes: Mul of the batch by the head count is the dim "batch*2"', () => {
    const after = runOne(foldSymbolicShapesPass, ir(HEAD_TO_BATCH));
    const z = after.graph.outputs[0]!;
    expect(z.shape).toEqual(['batch*2', 'seq', 4]);
    expectSameResults(ir(HEAD_TO_BATCH), after, { inputs: feeds(3, 5), tolerance: 'exact' });
  });

  test('fold-symbolic-shapes: Shape of a view reads the view input, so a view kept for its shape dies', () => {
    const before = ir(`
      graph main(%x: f32[batch,2,seq,4], %t: i64[3]) {
        %i0 = const i64[] [0]
        %two = const i64[] [2]
        %ax = const i64[1] [0]
        %tail = const i64[2] [-1, 8]
        %z = Reshape(%x, %t) : f32["batch*2",seq,4]
        %s = Shape(%z)
        %g = Gather(%s, %i0) {axis=0}
        %b = Div(%g, %two)
        %bu = Unsqueeze(%b, %ax)
        %tt = Concat(%bu, %tail) {axis=0}
        %xt = Transpose(%x) {perm=[0,2,1,3]}
        %r = Reshape(%xt, %tt)
        return %r
      }`);
    const after = runOne(canonicalize, before);
    expect(after.graph.nodes.some((n) => n.op === 'Reshape' && n.outputs[0]!.shape[0] === 'batch*2')).toBe(false);
    const x = Tensor.from('f32', [3, 2, 5, 4], Array.from({ length: 120 }, (_, i) => Math.cos(i)));
    expectSameResults(before, after, { inputs: [x, Tensor.from('i64', [3], [-1, 5, 4])], tolerance: 'exact' });
  });

  test('fuse-attention: [batch*2,seq,4] operands are read as [batch,2,seq,4]; the output goes back to [batch*2,seq,4]', () => {
    const before = ir(FOLDED_ATTENTION);
    const after = runOne(fuseAttention, before);
    const att = after.graph.nodes.find((n) => n.op === 'attention')!;
    expect(att).toBeDefined();
    // No rebuild: the operands are the [B,N,S,H] graph inputs themselves.
    expect(att.inputs.slice(0, 3)).toEqual(after.graph.inputs.slice(0, 3));
    expect(att.attrs['numHeads']).toEqual({ kind: 'int', value: 2 });
    expect(after.graph.outputs[0]!.shape).toEqual(['batch*2', 'seq', 4]);
    expect(after.graph.nodes.some((n) => n.op === 'Softmax')).toBe(false);
    const rnd = (n: number, s: number): Tensor => Tensor.from('f32', [n, 2, 6, 4], Array.from({ length: n * 48 }, (_, i) => Math.sin(i * s)));
    // fp32, softmax summed in another order: relative L2 1e-5 (elementwise fails on near-zero outputs).
    const ins = [rnd(3, 0.3), rnd(3, 0.7), rnd(3, 1.1), Tensor.from('i64', [3], [-1, 6, 4])];
    const got = interpret(after, ins)[0]!;
    expect(got.shape).toEqual([6, 6, 4]);
    expect(relL2(got, interpret(before, ins)[0]!)).toBeLessThanOrEqual(1e-5);
  });

  test('must not fire: a folded batch "bn" with no visible split (B and N are ambiguous)', () => {
    const text = FOLDED_ATTENTION.replace('graph main(%q: f32[batch,2,seq,4], %k: f32[batch,2,seq,4], %v: f32[batch,2,seq,4], %t: i64[3]) {', 'graph main(%q3: f32[bn,seq,4], %k3: f32[bn,seq,4], %v3: f32[bn,seq,4]) {')
      .split('\n')
      .filter((l) => !/%[qkv]3 = Reshape/.test(l))
      .join('\n');
    const before = ir(text);
    expectIr(runOne(fuseAttention, before), before);
  });
});
