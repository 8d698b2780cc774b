/**
 * fuse-attention: Before/Expected for each spelling (scale on scores, on q and k with a
 * Reshape-Transpose-Reshape k^T, masks as Add/Where, 3-D batched heads, ONNX Attention 3-D/4-D),
 * must-not-fire cases, an error case, and numerics: interpreter(pass(m)) vs interpreter(m)
 * within relative L2 1e-6 (fp32; the fused softmax rounds once instead of per op).
 */
import { Tensor } from '@paradit/ir';
import { fuseAttention } from '../src/fuse-attention';
import { expectIr, ir, randomInputs, runOne } from './helpers';
import { expectFusedClose } from './fusion-helpers';

const QKV = '%q: f32[1,2,4,4], %k: f32[1,2,6,4], %v: f32[1,2,6,4]';

/** Random q, k, v plus a keep mask with at least one kept key per row. */
function inputsWithKeep(m: ReturnType<typeof ir>): Tensor[] {
  const ins = randomInputs(m, 3).slice(0, 3);
  const keep = Array.from({ length: 24 }, (_, i) => (i % 6 === 5 || i % 7 === 3 ? 0 : 1));
  return [...ins, Tensor.from('bool', [1, 1, 4, 6], keep)];
}

describe('fuse-attention', () => {
  test('MatMul(q, Transpose(k)) * scale -> Softmax -> MatMul(v) becomes one attention', () => {
    const before = ir(`
      graph main(${QKV}) {
        %kt = Transpose(%k) {perm=[0, 1, 3, 2]}
        %s = MatMul(%q, %kt)
        %c = const f32[] [0.5]
        %t = Mul(%s, %c)
        %p = Softmax(%t) {axis=-1}
        %o = MatMul(%p, %v)
        return %o
      }`);
    const after = runOne(fuseAttention, before);
    expectIr(after, `graph main(${QKV}) { %o = attention(%q, %k, %v) {kvHeads=2, numHeads=2, scale=0.5} return %o }`);
    expectFusedClose(before, after);
  });

  test('scale split over q and k, k^T through Reshape-Transpose-Reshape (the dynamo spelling)', () => {
    const before = ir(`
      graph main(${QKV}) {
        %s1 = const i64[3] [-1, 6, 4]
        %k3 = Reshape(%k, %s1)
        %kt3 = Transpose(%k3) {perm=[0, 2, 1]}
        %s2 = const i64[4] [1, 2, 4, 6]
        %kt = Reshape(%kt3, %s2)
        %c = const f32[1] [0.70710677]
        %qs = Mul(%q, %c)
        %ks = Mul(%kt, %c)
        %sc = MatMul(%qs, %ks)
        %p = Softmax(%sc) {axis=-1}
        %o = MatMul(%p, %v)
        return %o
      }`);
    const after = runOne(fuseAttention, before);
    const att = after.graph.nodes.find((n) => n.op === 'attention')!;
    expect(after.graph.nodes.map((n) => n.op)).toEqual(['attention']);
    expect(att.inputs).toEqual([before.graph.inputs[0], before.graph.inputs[1], before.graph.inputs[2]]);
    const scale = att.attrs['scale'];
    expect(scale?.kind === 'float' && Math.abs(scale.value - 0.5) < 1e-7).toBe(true);
    expectFusedClose(before, after);
  });

  test('masks: additive Add, Where(keep, s, -inf), masked_fill(Not(keep), -inf), large negative fill, scale after mask', () => {
    const additive = ir(`
      graph main(${QKV}, %m: f32[1,1,1,6]) {
        %kt = Transpose(%k) {perm=[0, 1, 3, 2]}
        %s = MatMul(%q, %kt)
        %c = const f32[] [2.0]
        %t = Div(%s, %c)
        %u = Add(%m, %t)
        %p = Softmax(%u) {axis=-1}
        %o = MatMul(%p, %v)
        return %o
      }`);
    const a1 = runOne(fuseAttention, additive);
    expectIr(a1, `graph main(${QKV}, %m: f32[1,1,1,6]) { %o = attention(%q, %k, %v, %m) {kvHeads=2, numHeads=2, scale=0.5} return %o }`);
    expectFusedClose(additive, a1);

    const where = (body: string): string => `
      graph main(${QKV}, %keep: bool[1,1,4,6]) {
        %kt = Transpose(%k) {perm=[0, 1, 3, 2]}
        %s = MatMul(%q, %kt)
        %c = const f32[] [0.5]
        %t = Mul(%s, %c)
        ${body}
        %p = Softmax(%u) {axis=-1}
        %o = MatMul(%p, %v)
        return %o
      }`;
    const fused = `graph main(${QKV}, %keep: bool[1,1,4,6]) { %o = attention(%q, %k, %v, %keep) {kvHeads=2, numHeads=2, scale=0.5} return %o }`;
    for (const body of [
      '%ninf = const f32[] [-inf]\n %u = Where(%keep, %t, %ninf)',
      '%ninf = const f32[] [-inf]\n %drop = Not(%keep)\n %u = Where(%drop, %ninf, %t)',
    ]) {
      const m = ir(where(body));
      const out = runOne(fuseAttention, m);
      expectIr(out, fused);
      expectFusedClose(m, out, 1e-6, inputsWithKeep(m));
    }

    const bigNeg = ir(where('%big = const f32[] [-1e9]\n %u = Where(%keep, %t, %big)'));
    const b1 = runOne(fuseAttention, bigNeg);
    expectIr(
      b1,
      `graph main(${QKV}, %keep: bool[1,1,4,6]) {
         %z = const f32[] [0.0]
         %big = const f32[] [-1e9]
         %m = Where(%keep, %z, %big)
         %o = attention(%q, %k, %v, %m) {kvHeads=2, numHeads=2, scale=0.5}
         return %o
       }`,
    );
    expectFusedClose(bigNeg, b1, 1e-6, inputsWithKeep(bigNeg));

    const late = ir(`
      graph main(${QKV}, %m: f32[1,1,1,6]) {
        %kt = Transpose(%k) {perm=[0, 1, 3, 2]}
        %s = MatMul(%q, %kt)
        %u = Add(%s, %m)
        %c = const f32[] [0.5]
        %t = Mul(%u, %c)
        %p = Softmax(%t) {axis=-1}
        %o = MatMul(%p, %v)
        return %o
      }`);
    const l1 = runOne(fuseAttention, late);
    expectIr(
      l1,
      `graph main(${QKV}, %m: f32[1,1,1,6]) {
         %c = const f32[] [0.5]
         %ms = Mul(%m, %c)
         %o = attention(%q, %k, %v, %ms) {kvHeads=2, numHeads=2, scale=0.5}
         return %o
       }`,
    );
    expectFusedClose(late, l1);
  });

  test('SDPA bool-mask spellings: s + Where(keep, 0, -inf), softmax guarded by Where(IsNaN(p), 0, p)', () => {
    const before = ir(`
      graph main(${QKV}, %keep: bool[1,1,4,6]) {
        %kt = Transpose(%k) {perm=[0, 1, 3, 2]}
        %s = MatMul(%q, %kt)
        %c = const f32[] [0.5]
        %t = Mul(%s, %c)
        %z = const f32[] [0.0]
        %ninf = const f32[] [-inf]
        %bias = Where(%keep, %z, %ninf)
        %u = Add(%t, %bias)
        %p = Softmax(%u) {axis=-1}
        %nan = IsNaN(%p)
        %g = Where(%nan, %z, %p)
        %o = MatMul(%g, %v)
        return %o
      }`);
    const after = runOne(fuseAttention, before);
    expectIr(after, `graph main(${QKV}, %keep: bool[1,1,4,6]) { %o = attention(%q, %k, %v, %keep) {kvHeads=2, numHeads=2, scale=0.5} return %o }`);
    // A fully masked query row: the guarded softmax and the fused op both give zeros there.
    const ins = inputsWithKeep(before);
    const keep = Array.from(ins[3]!.data, (x, i) => (i < 6 ? 0 : x));
    expectFusedClose(before, after, 1e-6, [...ins.slice(0, 3), Tensor.from('bool', [1, 1, 4, 6], keep)]);
  });

  test('a symbolic batch (dynamic-shape export): operands used as they are, the scale still pulled out of q', () => {
    const sig = '%q: f32[B,2,4,4], %k: f32[B,2,6,4], %v: f32[B,2,6,4]';
    const before = ir(`
      graph main(${sig}) {
        %c = const f32[] [0.5]
        %qs = Mul(%q, %c)
        %kt = Transpose(%k) {perm=[0, 1, 3, 2]}
        %s = MatMul(%qs, %kt)
        %t = Mul(%s, %c)
        %p = Softmax(%t) {axis=-1}
        %o = MatMul(%p, %v)
        return %o
      }`);
    const after = runOne(fuseAttention, before);
    expectIr(after, `graph main(${sig}) { %o = attention(%q, %k, %v) {kvHeads=2, numHeads=2, scale=0.25} return %o }`);
    expectFusedClose(before, after);
  });

  test('repeat_kv (Unsqueeze-Expand-Reshape) is read as grouped-query attention; a tiled (non-interleaved) repeat is not', () => {
    const sig = '%q: f32[1,4,4,4], %k: f32[1,2,6,4], %v: f32[1,2,6,4]';
    const body = (axis: number, exp: string): string => `
      graph main(${sig}) {
        %ax = const i64[1] [${axis}]
        %es = const i64[5] [${exp}]
        %rs = const i64[4] [1, 4, 6, 4]
        %ku = Unsqueeze(%k, %ax)
        %ke = Expand(%ku, %es)
        %kr = Reshape(%ke, %rs)
        %vu = Unsqueeze(%v, %ax)
        %ve = Expand(%vu, %es)
        %vr = Reshape(%ve, %rs)
        %kt = Transpose(%kr) {perm=[0, 1, 3, 2]}
        %s = MatMul(%q, %kt)
        %c = const f32[] [0.5]
        %t = Mul(%s, %c)
        %p = Softmax(%t) {axis=-1}
        %o = MatMul(%p, %vr)
        return %o
      }`;
    const gqa = ir(body(2, '1, 2, 2, 6, 4'));
    const g1 = runOne(fuseAttention, gqa);
    expectIr(g1, `graph main(${sig}) { %o = attention(%q, %k, %v) {kvHeads=2, numHeads=4, scale=0.5} return %o }`);
    expectFusedClose(gqa, g1);
    const tiled = ir(body(1, '1, 2, 2, 6, 4'));
    const t1 = runOne(fuseAttention, tiled);
    const att = t1.graph.nodes.find((n) => n.op === 'attention')!;
    expect(att.attrs['kvHeads']).toEqual({ kind: 'int', value: 4 });
    expectFusedClose(tiled, t1);
  });

  test('3-D batched heads ([B*N, S, H] from head_to_batch_dim) use the [B,N,S,H] tensors and reshape back', () => {
    const before = ir(`
      graph main(%x: f32[2,5,8], %y: f32[2,7,8]) {
        %hs = const i64[4] [2, 5, 2, 4]
        %q4 = Reshape(%x, %hs)
        %qt = Transpose(%q4) {perm=[0, 2, 1, 3]}
        %bs = const i64[3] [4, 5, 4]
        %q3 = Reshape(%qt, %bs)
        %ks = const i64[4] [2, 7, 2, 4]
        %k4 = Reshape(%y, %ks)
        %kt = Transpose(%k4) {perm=[0, 2, 1, 3]}
        %kb = const i64[3] [4, 7, 4]
        %k3 = Reshape(%kt, %kb)
        %kt3 = Transpose(%k3) {perm=[0, 2, 1]}
        %sc = MatMul(%q3, %kt3)
        %c = const f32[] [0.5]
        %t = Mul(%sc, %c)
        %p = Softmax(%t) {axis=-1}
        %o = MatMul(%p, %k3)
        return %o
      }`);
    const after = runOne(fuseAttention, before);
    expectIr(
      after,
      `graph main(%x: f32[2,5,8], %y: f32[2,7,8]) {
         %hs = const i64[4] [2, 5, 2, 4]
         %q4 = Reshape(%x, %hs)
         %qt = Transpose(%q4) {perm=[0, 2, 1, 3]}
         %ks = const i64[4] [2, 7, 2, 4]
         %k4 = Reshape(%y, %ks)
         %kt = Transpose(%k4) {perm=[0, 2, 1, 3]}
         %a = attention(%qt, %kt, %kt) {kvHeads=2, numHeads=2, scale=0.5}
         %bs = const i64[3] [4, 5, 4]
         %o = Reshape(%a, %bs)
         return %o
       }`,
    );
    expectFusedClose(before, after);
  });

  test('ONNX Attention: 4-D used as is, 3-D (GQA) gets heads split and merged', () => {
    const four = ir(`graph main(${QKV}, %keep: bool[1,1,4,6]) { %o = Attention(%q, %k, %v, %keep) return %o }`, 23);
    const f1 = runOne(fuseAttention, four);
    expectIr(f1, `graph main(${QKV}, %keep: bool[1,1,4,6]) { %o = attention(%q, %k, %v, %keep) {kvHeads=2, numHeads=2, scale=0.5} return %o }`);
    expectFusedClose(four, f1, 1e-6, inputsWithKeep(four));

    const three = ir(
      `graph main(%q: f32[1,4,8], %k: f32[1,6,4], %v: f32[1,6,4]) {
         %o = Attention(%q, %k, %v) {kv_num_heads=1, q_num_heads=2, scale=0.25}
         return %o
       }`,
      23,
    );
    const t1 = runOne(fuseAttention, three);
    expectIr(
      t1,
      `graph main(%q: f32[1,4,8], %k: f32[1,6,4], %v: f32[1,6,4]) {
         %s1 = const i64[4] [0, 0, 2, 4]
         %qr = Reshape(%q, %s1)
         %qt = Transpose(%qr) {perm=[0, 2, 1, 3]}
         %s2 = const i64[4] [0, 0, 1, 4]
         %kr = Reshape(%k, %s2)
         %kt = Transpose(%kr) {perm=[0, 2, 1, 3]}
         %vr = Reshape(%v, %s2)
         %vt = Transpose(%vr) {perm=[0, 2, 1, 3]}
         %a = attention(%qt, %kt, %vt) {kvHeads=1, numHeads=2, scale=0.25}
         %at = Transpose(%a) {perm=[0, 2, 1, 3]}
         %s3 = const i64[3] [0, 0, 8]
         %o = Reshape(%at, %s3)
         return %o
       }`,
    );
    expectFusedClose(three, t1);
  });

  test('must not fire: softmax over another axis, probabilities also returned, a Where fill that is not a mask, causal ONNX Attention', () => {
    const cases = [
      `graph main(${QKV}) {
         %kt = Transpose(%k) {perm=[0, 1, 3, 2]}
         %s = MatMul(%q, %kt)
         %p = Softmax(%s) {axis=2}
         %o = MatMul(%p, %v)
         return %o
       }`,
      `graph main(${QKV}) {
         %kt = Transpose(%k) {perm=[0, 1, 3, 2]}
         %s = MatMul(%q, %kt)
         %p = Softmax(%s) {axis=-1}
         %o = MatMul(%p, %v)
         return %o, %p
       }`,
      `graph main(${QKV}, %keep: bool[1,1,4,6]) {
         %kt = Transpose(%k) {perm=[0, 1, 3, 2]}
         %s = MatMul(%q, %kt)
         %z = const f32[] [0.0]
         %u = Where(%keep, %s, %z)
         %p = Softmax(%u) {axis=-1}
         %o = MatMul(%p, %v)
         return %o
       }`,
    ];
    for (const text of cases) {
      const m = ir(text);
      expect(runOne(fuseAttention, m)).toBe(m);
    }
    const causal = ir(`graph main(${QKV}) { %o = Attention(%q, %k, %v) {is_causal=1} return %o }`, 23);
    expect(runOne(fuseAttention, causal)).toBe(causal);
  });

  test('error: an attention whose numHeads disagrees with q is rejected with expected vs got', () => {
    expect(() => ir(`graph main(${QKV}) { %o = attention(%q, %k, %v) {kvHeads=2, numHeads=3, scale=0.5} return %o }`)).toThrow(
      /numHeads \(3\) must be a positive multiple of kvHeads \(2\)/,
    );
    expect(() => ir(`graph main(${QKV}) { %o = attention(%q, %k, %v) {kvHeads=2, numHeads=4, scale=0.5} return %o }`)).toThrow(
      /q has 2 heads on axis 1, expected numHeads = 4/,
    );
  });
});
