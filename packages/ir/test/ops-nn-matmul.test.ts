/**
 * MatMul, Gemm and Einsum: shapes (1-D promotion, batch broadcasting, symbolic batch dims),
 * values against naive loops written here, flags, and readable errors.
 */
import { Tensor } from '../src';
import { at, expectClose, float, inferOp, int, rand, runOp, str, tt } from './ops-nn-helpers';

/** Naive batched matmul with explicit broadcasting of the batch axes (reference). */
function naiveMatMul(a: Tensor, b: Tensor): { data: number[]; shape: number[] } {
  const as = a.rank === 1 ? [1, a.shape[0]!] : [...a.shape];
  const bs = b.rank === 1 ? [b.shape[0]!, 1] : [...b.shape];
  const M = as[as.length - 2]!;
  const K = as[as.length - 1]!;
  const N = bs[bs.length - 1]!;
  const ab = as.slice(0, -2);
  const bb = bs.slice(0, -2);
  const r = Math.max(ab.length, bb.length);
  const pa = [...new Array<number>(r - ab.length).fill(1), ...ab];
  const pb = [...new Array<number>(r - bb.length).fill(1), ...bb];
  const batch = pa.map((d, i) => Math.max(d, pb[i]!));
  const nb = batch.reduce((x, y) => x * y, 1);
  const data: number[] = [];
  for (let t = 0; t < nb; t++) {
    const idx: number[] = [];
    let rem = t;
    for (let i = r - 1; i >= 0; i--) {
      idx.unshift(rem % batch[i]!);
      rem = Math.floor(rem / batch[i]!);
    }
    const ai = idx.map((v, i) => (pa[i] === 1 ? 0 : v));
    const bi = idx.map((v, i) => (pb[i] === 1 ? 0 : v));
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a.data[at([...pa, M, K], [...ai, i, k])]! * b.data[at([...pb, K, N], [...bi, k, j])]!;
        data.push(s);
      }
    }
  }
  const shape = [...batch];
  if (a.rank > 1) shape.push(M);
  if (b.rank > 1) shape.push(N);
  return { data, shape };
}

describe('MatMul', () => {
  test('2-D hand-computed', () => {
    const a = Tensor.from('f32', [2, 3], [1, 2, 3, 4, 5, 6]);
    const b = Tensor.from('f32', [3, 2], [7, 8, 9, 10, 11, 12]);
    const [y] = runOp('MatMul', [a, b]);
    expect(y!.toArray()).toEqual([58, 64, 139, 154]);
  });

  test.each([
    ['1-D x 1-D', [4], [4]],
    ['1-D x 3-D', [3], [2, 3, 5]],
    ['3-D x 1-D', [2, 4, 3], [3]],
    ['batch broadcast [2,1,3,4] x [5,4,2]', [2, 1, 3, 4], [5, 4, 2]],
    ['shared weights [3,5,6] x [6,7]', [3, 5, 6], [6, 7]],
    ['weights batched, A broadcast [1,5,6] x [3,6,2]', [1, 5, 6], [3, 6, 2]],
    ['odd K (tail of the unrolled loop) [3,7] x [7,3]', [3, 7], [7, 3]],
  ])('%s matches a naive loop', (_n, sa, sb) => {
    const a = rand(sa, 3);
    const b = rand(sb, 4);
    const want = naiveMatMul(a, b);
    const [y] = runOp('MatMul', [a, b]);
    expectClose(y!, want.data, want.shape, 1e-5, 1e-5);
  });

  test('integer matmul is exact', () => {
    const a = Tensor.from('i64', [2, 2], [1, -2, 3, 4]);
    const b = Tensor.from('i64', [2, 1], [5, 6]);
    expect(runOp('MatMul', [a, b])[0]!.toArray()).toEqual([-7, 39]);
  });

  test('f16 output is rounded to f16', () => {
    const a = Tensor.from('f16', [1, 2], [1, 1]);
    const b = Tensor.from('f16', [2, 1], [1, 2 ** -11]);
    // 1 + 2^-11 is not representable in f16 (ulp at 1 is 2^-10): rounds to even, 1.
    expect(runOp('MatMul', [a, b])[0]!.toArray()).toEqual([1]);
  });

  test('symbolic batch and sequence dims flow through', () => {
    const [t] = inferOp('MatMul', [tt('f32', ['B', 'S', 64]), tt('f32', [64, 128])]);
    expect(t!.shape).toEqual(['B', 'S', 128]);
    const [u] = inferOp('MatMul', [tt('f32', ['B', 8, 'S', 16]), tt('f32', ['B', 8, 16, 'S'])]);
    expect(u!.shape).toEqual(['B', 8, 'S', 'S']);
  });

  test('inner dimension mismatch names both shapes', () => {
    expect(() => inferOp('MatMul', [tt('f32', [2, 3]), tt('f32', [4, 5])], {}, { name: 'n3' })).toThrow(
      "MatMul 'n3': inner dimensions differ: A is [2,3], B is [4,5]",
    );
  });

  test('batch mismatch, dtype mismatch and scalars are rejected', () => {
    expect(() => inferOp('MatMul', [tt('f32', [2, 3, 4]), tt('f32', [3, 4, 5])])).toThrow(/cannot be broadcast/);
    expect(() => inferOp('MatMul', [tt('f32', [2, 3]), tt('f16', [3, 4])])).toThrow(/expected f32, got f16/);
    expect(() => inferOp('MatMul', [tt('f32', []), tt('f32', [3, 4])])).toThrow(/rank >= 1/);
  });
});

describe('Gemm', () => {
  const A = Tensor.from('f32', [2, 3], [1, 2, 3, 4, 5, 6]);
  const B = Tensor.from('f32', [3, 2], [1, 0, 0, 1, 1, 1]);
  // A·B = [[4, 5], [10, 11]]

  test('defaults, no C', () => {
    expect(runOp('Gemm', [A, B])[0]!.toArray()).toEqual([4, 5, 10, 11]);
  });

  test('alpha, beta and a broadcast row bias', () => {
    const C = Tensor.from('f32', [2], [1, -1]);
    const y = runOp('Gemm', [A, B, C], { alpha: float(2), beta: float(3) })[0]!;
    expect(y.toArray()).toEqual([11, 7, 23, 19]);
  });

  test('column bias [M,1] and scalar bias', () => {
    expect(runOp('Gemm', [A, B, Tensor.from('f32', [2, 1], [100, 200])])[0]!.toArray()).toEqual([104, 105, 210, 211]);
    expect(runOp('Gemm', [A, B, Tensor.from('f32', [], [1])])[0]!.toArray()).toEqual([5, 6, 11, 12]);
  });

  test('transA and transB', () => {
    const At = Tensor.from('f32', [3, 2], [1, 4, 2, 5, 3, 6]);
    const Bt = Tensor.from('f32', [2, 3], [1, 0, 1, 0, 1, 1]);
    expect(runOp('Gemm', [At, Bt], { transA: int(1), transB: int(1) })[0]!.toArray()).toEqual([4, 5, 10, 11]);
  });

  test('errors: rank, inner dims, bias shape', () => {
    expect(() => inferOp('Gemm', [tt('f32', [2, 3, 1]), tt('f32', [3, 2])])).toThrow(/A and B must be 2-D/);
    expect(() => inferOp('Gemm', [tt('f32', [2, 3]), tt('f32', [2, 3])])).toThrow(/inner dimensions differ/);
    expect(() => inferOp('Gemm', [tt('f32', [2, 3]), tt('f32', [3, 2]), tt('f32', [3])])).toThrow(/does not broadcast/);
  });
});

describe('Einsum', () => {
  const run = (eq: string, ...ts: Tensor[]): Tensor => runOp('Einsum', ts, { equation: str(eq) })[0]!;

  test('batched matmul (fast path) matches a naive loop', () => {
    const a = rand([2, 3, 4], 1);
    const b = rand([2, 4, 5], 2);
    const want = naiveMatMul(a, b);
    expectClose(run('bij, bjk -> bik', a, b), want.data, want.shape);
  });

  test('attention-style contraction with permuted output', () => {
    // bhqd,bhkd->bhqk: Q·K^T per head.
    const q = rand([1, 2, 3, 4], 5);
    const k = rand([1, 2, 5, 4], 6);
    const y = run('bhqd,bhkd->bhqk', q, k);
    const want: number[] = [];
    for (let h = 0; h < 2; h++) for (let i = 0; i < 3; i++) for (let j = 0; j < 5; j++) {
      let s = 0;
      for (let d = 0; d < 4; d++) s += q.data[at([1, 2, 3, 4], [0, h, i, d])]! * k.data[at([1, 2, 5, 4], [0, h, j, d])]!;
      want.push(s);
    }
    expectClose(y, want, [1, 2, 3, 5]);
    // Output order differing from the natural [batch, M, N]: b h k q.
    const yt = run('bhqd,bhkd->bhkq', q, k);
    expect(yt.shape).toEqual([1, 2, 5, 3]);
    expect(yt.data[at([1, 2, 5, 3], [0, 1, 4, 2])]).toBeCloseTo(y.data[at([1, 2, 3, 5], [0, 1, 2, 4])]!, 6);
  });

  test('outer product, inner product, sum, transpose, trace, diagonal', () => {
    const v = Tensor.from('f32', [3], [1, 2, 3]);
    const w = Tensor.from('f32', [2], [10, 20]);
    expect(run('i,j->ij', v, w).toArray()).toEqual([10, 20, 20, 40, 30, 60]);
    expect(run('i,i', v, v).toArray()).toEqual([14]);
    const m = Tensor.from('f32', [2, 3], [1, 2, 3, 4, 5, 6]);
    expect(run('ij->i', m).toArray()).toEqual([6, 15]);
    expect(run('ij->ji', m).toArray()).toEqual([1, 4, 2, 5, 3, 6]);
    expect(run('ij', m).toArray()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(run('ji', m).shape).toEqual([3, 2]); // implicit output is alphabetical: ij
    const sq = Tensor.from('f32', [3, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(run('ii', sq).toArray()).toEqual([15]);
    expect(run('ii->i', sq).toArray()).toEqual([1, 5, 9]);
  });

  test('ellipsis: batch diagonal and broadcasting', () => {
    const x = rand([2, 3, 3], 7);
    const d = run('...ii ->...i', x);
    expect(d.shape).toEqual([2, 3]);
    for (let b = 0; b < 2; b++) for (let i = 0; i < 3; i++) expect(d.data[b * 3 + i]).toBe(x.data[at([2, 3, 3], [b, i, i])]);
    // '...' broadcasts: [2,1,4] with [3,4] -> [2,3]
    const a = rand([2, 1, 4], 8);
    const b = rand([3, 4], 9);
    const y = run('...k,...k->...', a, b);
    const want: number[] = [];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a.data[i * 4 + k]! * b.data[j * 4 + k]!;
      want.push(s);
    }
    expectClose(y, want, [2, 3]);
  });

  test('three operands', () => {
    const a = rand([2, 3], 1);
    const b = rand([3, 4], 2);
    const c = rand([4], 3);
    const y = run('ij,jk,k->i', a, b, c);
    const want = [0, 1].map((i) => {
      let s = 0;
      for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) s += a.data[i * 3 + j]! * b.data[j * 4 + k]! * c.data[k]!;
      return s;
    });
    expectClose(y, want, [2]);
  });

  test('errors: operand count, rank, size mismatch, unknown output index', () => {
    expect(() => inferOp('Einsum', [tt('f32', [2, 3])], { equation: str('ij,jk->ik') })).toThrow(/names 2 operands, got 1 inputs/);
    expect(() => inferOp('Einsum', [tt('f32', [2, 3])], { equation: str('ijk->i') })).toThrow(/has 3 indices but input 0 has rank 2/);
    expect(() => inferOp('Einsum', [tt('f32', [2, 3]), tt('f32', [4, 5])], { equation: str('ij,jk->ik') })).toThrow(/'j' has size 3 .* and 4/);
    expect(() => inferOp('Einsum', [tt('f32', [2, 3])], { equation: str('ij->ik') })).toThrow(/does not appear in any input/);
  });
});
