/**
 * mask-token-selection: Before/Expected on one selection, must-not-fire cases, refusals that name
 * the node, and numerics on a two-sample model whose samples keep different numbers of prompt
 * tokens (prefix and scattered masks) against the interpreter on the original graph.
 */
import { IrError, Module, Tensor, interpret } from '@paradit/ir';
import { maskTokenSelection, maskTokenSelectionPass } from '@paradit/passes';
import { expectIr, ir, relL2, rng, runOne } from './helpers';

/** One sample: S image tokens, T prompt tokens, attention over image + valid prompt tokens, pad back. */
function selectionBody(b: number, S: number, T: number, D: number): string {
  const L = S + T;
  return `
        %bi${b} = const i64[] [${b}]
        %mk${b} = Gather(%mask, %bi${b}) {axis=0}
        %nz${b} = NonZero(%mk${b})
        %tr${b} = Transpose(%nz${b}) {perm=[1, 0]}
        %i${b} = Reshape(%tr${b}, %minus1)
        %s0${b} = const i64[1] [${b}]
        %s1${b} = const i64[1] [${b + 1}]
        %zero1${b} = const i64[1] [0]
        %img${b} = Slice(%img, %s0${b}, %s1${b}, %zero1${b})
        %txb${b} = Slice(%txt, %s0${b}, %s1${b}, %zero1${b})
        %sel${b} = Gather(%txb${b}, %i${b}) {axis=2}
        %x${b} = Concat(%img${b}, %sel${b}) {axis=2}
        %kt${b} = Transpose(%x${b}) {perm=[0, 1, 3, 2]}
        %sc${b} = MatMul(%x${b}, %kt${b})
        %p${b} = Softmax(%sc${b}) {axis=-1}
        %o${b} = MatMul(%p${b}, %x${b})
        %sh${b} = Shape(%o${b})
        %two${b} = const i64[] [2]
        %len${b} = Gather(%sh${b}, %two${b}) {axis=0}
        %tot${b} = const i64[] [${L}]
        %d${b} = Sub(%tot${b}, %len${b})
        %dd${b} = Unsqueeze(%d${b}, %zero1${b})
        %z6${b} = const i64[6] [0, 0, 0, 0, 0, 0]
        %z1${b} = const i64[1] [0]
        %pads${b} = Concat(%z6${b}, %dd${b}, %z1${b}) {axis=0}
        %y${b} = Pad(%o${b}, %pads${b})  # pad${b}
        `.replace(/D_/g, String(D));
}

function selectionModel(B: number, S: number, T: number, D: number): Module {
  const bodies = Array.from({ length: B }, (_, b) => selectionBody(b, S, T, D)).join('');
  const ys = Array.from({ length: B }, (_, b) => `%y${b}`).join(', ');
  return ir(`
      graph main(%img: f32[${B},1,${S},${D}], %txt: f32[${B},1,${T},${D}], %mask: bool[${B},${T}]) {
        %minus1 = const i64[1] [-1]
        ${bodies}
        %y = Concat(${ys}) {axis=0}
        return %y
      }`);
}

function inputs(B: number, S: number, T: number, D: number, masks: number[][], seed: number): Tensor[] {
  const r = rng(seed);
  const f = (n: number): number[] => Array.from({ length: n }, () => r() * 2 - 1);
  return [Tensor.from('f32', [B, 1, S, D], f(B * S * D)), Tensor.from('f32', [B, 1, T, D], f(B * T * D)), Tensor.from('bool', [B, T], masks.flat())];
}

describe('mask-token-selection', () => {
  test('Before/Expected: the selection becomes a masked softmax and a compaction of the prompt rows', () => {
    const before = selectionModel(1, 2, 3, 2);
    const after = runOne(maskTokenSelectionPass, before);
    expect(after.graph.nodes.some((n) => n.op === 'NonZero')).toBe(false);
    expectIr(
      after,
      `graph main(%img: f32[1,1,2,2], %txt: f32[1,1,3,2], %mask: bool[1,3]) {
         %b = const i64[] [0]
         %mk = Gather(%mask, %b) {axis=0}
         %s0 = const i64[1] [0]
         %s1 = const i64[1] [1]
         %ax = const i64[1] [0]
         %img0 = Slice(%img, %s0, %s1, %ax)
         %txt0 = Slice(%txt, %s0, %s1, %ax)
         %x = Concat(%img0, %txt0) {axis=2}
         %kt = Transpose(%x) {perm=[0, 1, 3, 2]}
         %sc = MatMul(%x, %kt)
         %ones = const bool[2] [1, 1]
         %mb = Cast(%mk) {to=9}
         %w = Concat(%ones, %mb) {axis=0}
         %ninf = const f32[] [-inf]
         %scm = Where(%w, %sc, %ninf)
         %p = Softmax(%scm) {axis=-1}
         %o = MatMul(%p, %x)
         %from = const i64[1] [2]
         %to = const i64[1] [5]
         %axis2 = const i64[1] [2]
         %tail = Slice(%o, %from, %to, %axis2)
         %wi = Cast(%mb) {to=7}
         %zero = const i64[] [0]
         %c = CumSum(%wi, %zero)
         %u0 = const i64[1] [0]
         %cu = Unsqueeze(%c, %u0)
         %j = const i64[3,1] [0, 1, 2]
         %le = LessOrEqual(%cu, %j)
         %lei = Cast(%le) {to=7}
         %one = const i64[1] [1]
         %idx = ReduceSum(%lei, %one) {keepdims=0}
         %last = const i64[] [2]
         %safe = Min(%idx, %last)
         %g = Gather(%tail, %safe) {axis=2}
         %ax0 = const i64[1] [0]
         %tot = ReduceSum(%wi, %ax0) {keepdims=0}
         %jj = const i64[3] [0, 1, 2]
         %keep = Less(%jj, %tot)
         %shp = const i64[2] [-1, 1]
         %keepb = Reshape(%keep, %shp)
         %zf = const f32[] [0]
         %comp = Where(%keepb, %g, %zf)
         %f0 = const i64[1] [0]
         %f1 = const i64[1] [2]
         %head = Slice(%o, %f0, %f1, %axis2)
         %y0 = Concat(%head, %comp) {axis=2}
         %minus1 = const i64[1] [-1]
         %y = Concat(%y0) {axis=0}
         return %y
       }`,
    );
  });

  test('numerics: two samples keeping different numbers of prompt tokens (prefix and scattered masks), exactly as the original', () => {
    const [B, S, T, D] = [2, 3, 5, 4];
    const before = selectionModel(B, S, T, D);
    const after = maskTokenSelection(before);
    for (const masks of [
      [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]],
      [[0, 1, 0, 1, 1], [1, 1, 1, 1, 1]],
      [[0, 0, 0, 0, 1], [1, 0, 1, 0, 1]],
    ]) {
      const x = inputs(B, S, T, D, masks, 7);
      const want = interpret(before, x)[0]!;
      const got = interpret(after, x)[0]!;
      expect(got.shape).toEqual(want.shape);
      expect(relL2(got, want)).toBe(0);
    }
  });

  test('must not fire: a graph without NonZero, and a NonZero whose count is known, come back as the same object', () => {
    const plain = ir(`
      graph main(%x: f32[2,3]) {
        %y = Softmax(%x) {axis=-1}
        return %y
      }`);
    expect(maskTokenSelection(plain)).toBe(plain);
    const known = ir(`
      graph main(%x: f32[1,1,3,2]) {
        %m = const bool[3] [1, 0, 1]
        %nz = NonZero(%m)
        %m1 = const i64[1] [-1]
        %i = Reshape(%nz, %m1)
        %y = Gather(%x, %i) {axis=2}
        return %y
      }`);
    expect(maskTokenSelection(known)).toBe(known);
  });

  test('refused, naming the node: the selected tokens are summed over, and the count is used as data', () => {
    const reduce = ir(`
      graph main(%x: f32[1,1,3,2], %m: bool[3]) {
        %nz = NonZero(%m)
        %m1 = const i64[1] [-1]
        %i = Reshape(%nz, %m1)
        %s = Gather(%x, %i) {axis=2}
        %ax = const i64[1] [2]
        %y = ReduceSum(%s, %ax) {keepdims=0}  # sum_tokens
        return %y
      }`);
    expect(() => maskTokenSelection(reduce)).toThrow(IrError);
    expect(() => maskTokenSelection(reduce)).toThrow(/ReduceSum 'sum_tokens'.*ReduceSum on selected tokens/);
    const count = ir(`
      graph main(%x: f32[1,1,3,2], %m: bool[3], %v: f32[4]) {
        %nz = NonZero(%m)
        %sh = Shape(%nz)
        %one = const i64[] [1]
        %n = Gather(%sh, %one) {axis=0}
        %nf = Cast(%n) {to=1}
        %y = Mul(%v, %nf)  # scale_by_count
        return %y
      }`);
    expect(() => maskTokenSelection(count)).toThrow(/Mul 'scale_by_count': uses the number of valid tokens/);
  });
});

