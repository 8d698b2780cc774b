/**
 * GEMM lowering and the rewrites that feed it: linear/MatMul/Gemm become gemm instructions with
 * the right views (checked by hand), a tanh-GELU folds into the epilogue (erf does not: cuBLASLt
 * has no erf GELU), patch-embedding Convs and Einsums become GEMMs with the same values as before
 * (interpreter, seeded inputs).
 */
import { GraphBuilder, Module, Tensor, Value, interpret } from '@paradit/ir';
import type { AttrValue } from '@paradit/ir';
import { emitFragmentStub, lowerModule, patchifyConvs, rewriteEinsums } from '@paradit/codegen-cuda';
import type { LGemm } from '@paradit/codegen-cuda';
import { compareTensors } from '@paradit/runtime';

let seed = 7;
const rnd = (shape: number[]): Tensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from('f32', shape, Array.from({ length: n }, () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1));
};
const str = (value: string): AttrValue => ({ kind: 'string', value });

function gemmsOf(m: Module): LGemm[] {
  return lowerModule(m, { emitFragment: emitFragmentStub }).program.filter((i): i is LGemm => i.op === 'gemm');
}

describe('gemm lowering', () => {
  it('linear [2,5,8] x w[M=6,K=8] (transB) + bias, then tanh GELU folded into the epilogue', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: [2, 5, 8] });
    const [h] = b.add('linear', [x, b.constant(rnd([6, 8])), b.constant(rnd([6]))], { transB: { kind: 'int', value: 1 } });
    const [g] = b.add('gelu', [h!], { approximate: str('tanh') });
    const [y] = b.add('gelu', [g!], { approximate: str('none') });
    const gs = gemmsOf(new Module(b.build([y!]), { '': 18 }));
    expect(gs).toHaveLength(1);
    const gm = gs[0]!;
    expect([gm.m, gm.n, gm.k, gm.batch, gm.transA, gm.transB, gm.epilogue]).toEqual([10, 6, 8, 1, false, true, 'gelu_tanh']);
    expect([gm.a.rows, gm.a.cols, gm.a.ld]).toEqual([10, 8, 8]);
    expect([gm.b.rows, gm.b.cols, gm.b.ld]).toEqual([6, 8, 8]);
    expect(gm.out.value).toBe(g); // writes the GELU's output directly
    expect(gm.bias).toBeDefined();
    expect(gm.ref.nodes.map((n) => n.op)).toEqual(['linear', 'gelu']);
  });

  it('erf GELU stays a separate kernel', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: [4, 8] });
    const [h] = b.add('linear', [x, b.constant(rnd([8, 3]))], { transB: { kind: 'int', value: 0 } });
    const [y] = b.add('gelu', [h!], { approximate: str('none') });
    const gs = gemmsOf(new Module(b.build([y!]), { '': 18 }));
    expect(gs[0]!.epilogue).toBe('none');
    expect(gs[0]!.out.value).toBe(h);
  });

  it('batched MatMul [2,3,4,5] x [2,3,5,6]: batch 6 with strides 20/30/24; a 2-D B folds the batch into rows', () => {
    const b = new GraphBuilder(18);
    const a = b.input('a', { dtype: 'f32', shape: [2, 3, 4, 5] });
    const c = b.input('c', { dtype: 'f32', shape: [2, 3, 5, 6] });
    const [p] = b.add('MatMul', [a, c]);
    const [q] = b.add('MatMul', [p!, b.constant(rnd([6, 7]))]);
    const [g1, g2] = gemmsOf(new Module(b.build([q!]), { '': 18 })) as [LGemm, LGemm];
    expect([g1.batch, g1.m, g1.n, g1.k, g1.a.batchStride, g1.b.batchStride, g1.out.batchStride]).toEqual([6, 4, 6, 5, 20, 30, 24]);
    expect([g2.batch, g2.m, g2.n, g2.k, g2.b.batchStride]).toEqual([1, 24, 7, 6, 0]);
  });

  it('q @ Transpose(k) (last two axes, sole reader) reads k transposed: no transpose kernel', () => {
    const b = new GraphBuilder(18);
    const q = b.input('q', { dtype: 'f32', shape: [2, 3, 4, 8] });
    const k = b.input('k', { dtype: 'f32', shape: [2, 3, 5, 8] });
    const [kt] = b.add('Transpose', [k], { perm: { kind: 'ints', value: [0, 1, 3, 2] } });
    const [s] = b.add('MatMul', [q, kt!]);
    const m = new Module(b.build([s!]), { '': 18 });
    const lp = lowerModule(m, { emitFragment: emitFragmentStub });
    expect(lp.program.map((i) => i.op)).toEqual(['gemm']);
    const g = lp.program[0] as LGemm;
    expect([g.transB, g.b.value === k, g.b.rows, g.b.cols, g.b.batchStride, g.m, g.n, g.k]).toEqual([true, true, 5, 8, 40, 4, 5, 8]);
    expect(g.ref.nodes.map((n) => n.op)).toEqual(['Transpose', 'MatMul']);
    expect(g.ref.inputs).toEqual([q, k]);
  });

  it('Gemm with transA/transB/alpha and a row bias', () => {
    const b = new GraphBuilder(18);
    const a = b.input('a', { dtype: 'f32', shape: [5, 4] });
    const [y] = b.add('Gemm', [a, b.constant(rnd([6, 5])), b.constant(rnd([6]))], { transA: { kind: 'int', value: 1 }, transB: { kind: 'int', value: 1 }, alpha: { kind: 'float', value: 0.5 } });
    const [g] = gemmsOf(new Module(b.build([y!]), { '': 18 })) as [LGemm];
    expect([g.m, g.n, g.k, g.transA, g.transB, g.alpha]).toEqual([4, 6, 5, true, true, 0.5]);
  });
});

describe('rewrites feeding the gemm lowering', () => {
  const same = (a: Module, b: Module, ins: Tensor[]): number => compareTensors(interpret(a, ins)[0]!, interpret(b, ins)[0]!).relL2;

  it('patchify Conv (3-D, kernel = stride [1,2,2]) equals the Conv and becomes a linear', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: [2, 3, 2, 4, 6] });
    const ints = (v: number[]): AttrValue => ({ kind: 'ints', value: v });
    const [y] = b.add('Conv', [x, b.constant(rnd([5, 3, 1, 2, 2])), b.constant(rnd([5]))], { kernel_shape: ints([1, 2, 2]), strides: ints([1, 2, 2]), pads: ints([0, 0, 0, 0, 0, 0]) }, { name: 'conv' });
    const m = new Module(b.build([y!]), { '': 18 });
    const p = patchifyConvs(m);
    expect(p.graph.nodes.map((n) => n.op)).not.toContain('Conv');
    expect(p.graph.nodes.map((n) => n.op)).toContain('linear');
    expect(same(p, m, [rnd([2, 3, 2, 4, 6])])).toBeLessThan(1e-6);
  });

  it('a padded or strided-unlike-kernel Conv is not touched (no match)', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: [1, 3, 8, 8] });
    const ints = (v: number[]): AttrValue => ({ kind: 'ints', value: v });
    const [y] = b.add('Conv', [x, b.constant(rnd([4, 3, 3, 3]))], { kernel_shape: ints([3, 3]), strides: ints([1, 1]), pads: ints([1, 1, 1, 1]) });
    const m = new Module(b.build([y!]), { '': 18 });
    expect(patchifyConvs(m)).toBe(m);
  });

  it.each([
    ['nhwpqc->nchpwq', [[2, 3, 4, 2, 2, 5]]],
    ['bsk,kn->bsn', [[2, 3, 4], [4, 5]]],
    ['bhqd,bhkd->bhqk', [[2, 3, 4, 8], [2, 3, 5, 8]]],
    ['ij,jk->ki', [[3, 4], [4, 2]]],
  ] as const)('Einsum %s equals its rewrite', (eq, shapes) => {
    const b = new GraphBuilder(18);
    const ins = shapes.map((s, i) => b.input(`x${i}`, { dtype: 'f32', shape: [...s] }));
    const [y] = b.add('Einsum', ins as Value[], { equation: str(eq) });
    const m = new Module(b.build([y!]), { '': 18 });
    const r = rewriteEinsums(m);
    expect(r.graph.nodes.map((n) => n.op)).not.toContain('Einsum');
    expect(same(r, m, shapes.map((s) => rnd([...s])))).toBeLessThan(1e-6);
  });
});
