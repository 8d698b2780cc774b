/**
 * ParaDiT's DiT-level ops (ops/paradit*.ts): shape rules reject bad operands with expected vs
 * got, and the reference `run` matches hand-computed values or an independent naive loop.
 */
import { GraphBuilder, Module, Tensor, interpret, tensorType } from '@paradit/ir';
import type { AttrValue, DType, Dim } from '@paradit/ir';

const f = (value: number): AttrValue => ({ kind: 'float', value });
const i = (value: number): AttrValue => ({ kind: 'int', value });
const s = (value: string): AttrValue => ({ kind: 'string', value });

/** Runs one op on the given tensors (as graph inputs) and returns its output. */
function run1(op: string, ins: readonly (Tensor | undefined)[], attrs: Record<string, AttrValue> = {}): Tensor {
  const b = new GraphBuilder(18);
  const vals = ins.map((t, k) => (t ? b.input(`in${k}`, tensorType(t.dtype, t.shape)) : null));
  const [y] = b.add(op, vals, attrs, { name: 'n' });
  const m = new Module(b.build([y!]), { '': 18 });
  return interpret(m, ins.filter((t): t is Tensor => t !== undefined))[0]!;
}

/** The error message of building the op on operands of the given types. */
function inferError(op: string, types: readonly ([DType, Dim[]] | undefined)[], attrs: Record<string, AttrValue> = {}): string {
  const b = new GraphBuilder(18);
  const vals = types.map((t, k) => (t ? b.input(`in${k}`, tensorType(t[0], t[1])) : null));
  try {
    b.add(op, vals, attrs, { name: 'bad' });
  } catch (e) {
    return (e as Error).message;
  }
  return 'no error';
}

const t32 = (shape: number[], values: number[]): Tensor => Tensor.from('f32', shape, values);

function seeded(n: number, seed: number): number[] {
  let a = seed >>> 0;
  return Array.from({ length: n }, () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 2 ** 32 - 0.5;
  });
}

/** Naive attention, one (b, n, i) row at a time. */
function naiveAttention(q: Tensor, k: Tensor, v: Tensor, scale: number, mask?: Tensor): number[] {
  const [B, N, Sq, H] = q.shape as [number, number, number, number];
  const [, Nkv, Skv] = k.shape as [number, number, number];
  const Hv = v.shape[3]!;
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (let n = 0; n < N; n++)
      for (let r = 0; r < Sq; r++) {
        const kv = Math.floor(n / (N / Nkv));
        const sc: number[] = [];
        for (let j = 0; j < Skv; j++) {
          let d = 0;
          for (let h = 0; h < H; h++) d += q.data[((b * N + n) * Sq + r) * H + h]! * k.data[((b * Nkv + kv) * Skv + j) * H + h]!;
          let x = d * scale;
          if (mask) {
            // mask is [B, 1, 1, Skv] in these tests
            const m = mask.data[b * Skv + j]!;
            x = mask.dtype === 'bool' ? (m ? x : -Infinity) : x + m;
          }
          sc.push(x);
        }
        const mx = Math.max(...sc);
        const e = sc.map((x) => Math.exp(x - mx));
        const z = e.reduce((a, c) => a + c, 0);
        for (let h = 0; h < Hv; h++) {
          let acc = 0;
          for (let j = 0; j < Skv; j++) acc += (e[j]! / z) * v.data[((b * Nkv + kv) * Skv + j) * Hv + h]!;
          out.push(acc);
        }
      }
  return out;
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  expect(got.length).toBe(want.length);
  for (let k = 0; k < want.length; k++) expect(Math.abs(got[k]! - want[k]!)).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[k]!)));
}

describe('attention', () => {
  const attrs = (scale: number, N: number, Nkv: number) => ({ scale: f(scale), numHeads: i(N), kvHeads: i(Nkv) });

  test('one query over two keys: softmax([0, 1]) weights, by hand', () => {
    const q = t32([1, 1, 1, 1], [1]);
    const k = t32([1, 1, 2, 1], [0, 1]);
    const v = t32([1, 1, 2, 1], [1, 3]);
    const e = Math.E;
    expectClose(run1('attention', [q, k, v], attrs(1, 1, 1)).data, [(1 + 3 * e) / (1 + e)], 1e-6);
    // bool mask: key 1 masked out -> only v[0]
    const keep = Tensor.from('bool', [1, 1, 1, 2], [1, 0]);
    expectClose(run1('attention', [q, k, v, keep], attrs(1, 1, 1)).data, [1], 1e-6);
    // every key masked out: the safe softmax gives zeros (not NaN)
    expectClose(run1('attention', [q, k, v, Tensor.from('bool', [2], [0, 0])], attrs(1, 1, 1)).data, [0], 0);
    // additive mask -1 on key 1 cancels the score difference: weights 1/2, 1/2
    const bias = t32([2], [0, -1]);
    expectClose(run1('attention', [q, k, v, bias], attrs(1, 1, 1)).data, [2], 1e-6);
  });

  test('matches a naive loop with grouped kv heads, a [B,1,1,Skv] mask and Hv != H', () => {
    const q = t32([2, 4, 3, 5], seeded(120, 1));
    const k = t32([2, 2, 6, 5], seeded(120, 2));
    const v = t32([2, 2, 6, 3], seeded(72, 3));
    const mask = t32([2, 1, 1, 6], [0, 0, -2, 0, 0, -1, 0, -5, 0, 0, 0, 0]);
    const got = run1('attention', [q, k, v, mask], attrs(0.4, 4, 2));
    expect([...got.shape]).toEqual([2, 4, 3, 3]);
    expectClose(got.data, naiveAttention(q, k, v, 0.4, mask), 1e-5);
    const keep = Tensor.from('bool', [2, 1, 1, 6], [1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1]);
    expectClose(run1('attention', [q, k, v, keep], attrs(0.4, 4, 2)).data, naiveAttention(q, k, v, 0.4, keep), 1e-5);
  });

  test('bf16 operands: computed in fp32 and rounded once to bf16', () => {
    const q = Tensor.from('bf16', [1, 1, 2, 2], [0.5, -1, 0.25, 2]);
    const k = Tensor.from('bf16', [1, 1, 2, 2], [1, 0, 0, 1]);
    const v = Tensor.from('bf16', [1, 1, 2, 2], [1, 2, 3, 4]);
    const got = run1('attention', [q, k, v], attrs(1, 1, 1));
    expect(got.dtype).toBe('bf16');
    const ref = Tensor.from('bf16', [4], naiveAttention(q, k, v, 1));
    expect([...got.data]).toEqual([...ref.data]);
  });

  test('errors name the operand, the expected layout and what was given', () => {
    expect(inferError('attention', [['f32', [1, 2, 3]], ['f32', [1, 2, 3, 4]], ['f32', [1, 2, 3, 4]]], attrs(1, 2, 2))).toMatch(
      /attention 'bad': q must be \[B,N,Sq,H\] \(rank 4\), got f32\[1,2,3\]/,
    );
    expect(inferError('attention', [['f32', [1, 3, 5, 4]], ['f32', [1, 2, 5, 4]], ['f32', [1, 2, 5, 4]]], attrs(1, 3, 2))).toMatch(
      /numHeads \(3\) must be a positive multiple of kvHeads \(2\)/,
    );
    expect(inferError('attention', [['f32', [1, 2, 5, 4]], ['f32', [1, 2, 7, 8]], ['f32', [1, 2, 7, 4]]], attrs(1, 2, 2))).toMatch(/head dims differ/);
    expect(inferError('attention', [['f32', [1, 2, 5, 4]], ['f32', [1, 2, 7, 4]], ['f32', [1, 2, 7, 4]], ['f32', [1, 1, 5, 6]]], attrs(1, 2, 2))).toMatch(
      /mask \[1,1,5,6\] does not broadcast to \[B,N,Sq,Skv\] = \[1,2,5,7\]/,
    );
    expect(inferError('attention', [['f32', [1, 2, 5, 4]], ['f32', [1, 2, 7, 4]], ['f32', [1, 2, 7, 4]], ['i64', [7]]], attrs(1, 2, 2))).toMatch(
      /mask must be bool \(true = attend\) or float \(additive\), got i64/,
    );
    expect(inferError('attention', [['f32', [1, 2, 5, 4]], ['f32', [1, 2, 7, 4]], ['f32', [1, 2, 7, 4]]], { numHeads: i(2), kvHeads: i(2) })).toMatch(
      /missing required attribute 'scale'/,
    );
  });
});

describe('rms_norm and layer_norm', () => {
  test('rms_norm by hand: [3, 4] / sqrt(12.5 + eps) * w', () => {
    const r = Math.sqrt(12.5 + 1e-6);
    expectClose(run1('rms_norm', [t32([1, 2], [3, 4]), t32([2], [2, 0.5])], { eps: f(1e-6) }).data, [(3 / r) * 2, (4 / r) * 0.5], 1e-6);
    expectClose(run1('rms_norm', [t32([2], [3, 4])], { eps: f(0) }).data, [3 / Math.sqrt(12.5), 4 / Math.sqrt(12.5)], 1e-6);
  });

  test('layer_norm by hand: mean 2, variance 1, with and without affine', () => {
    const r = Math.sqrt(1 + 1e-5);
    expectClose(run1('layer_norm', [t32([2, 2], [1, 3, 5, 5])], { eps: f(1e-5) }).data, [-1 / r, 1 / r, 0, 0], 1e-6);
    const y = run1('layer_norm', [t32([1, 2], [1, 3]), t32([2], [2, 3]), t32([2], [10, 20])], { eps: f(1e-5) });
    expectClose(y.data, [10 - 2 / r, 20 + 3 / r], 1e-6);
    const biasOnly = new GraphBuilder(18);
    const x = biasOnly.input('x', tensorType('f32', [1, 2]));
    const bias = biasOnly.constant(t32([2], [1, 1]));
    const [z] = biasOnly.add('layer_norm', [x, null, bias], { eps: f(0) });
    expectClose(interpret(new Module(biasOnly.build([z!]), { '': 18 }), [t32([1, 2], [1, 3])])[0]!.data, [0, 2], 1e-6);
  });

  test('errors: affine operands must be [D]', () => {
    expect(inferError('rms_norm', [['f32', [2, 8]], ['f32', [4]]], { eps: f(1e-6) })).toMatch(/weight must be \[D\] = \[8\] \(x is \[2,8\]\), got \[4\]/);
    expect(inferError('layer_norm', [['f32', [2, 8]], undefined, ['f32', [1, 8]]], { eps: f(1e-6) })).toMatch(/bias must be \[D\] = \[8\]/);
    expect(inferError('rms_norm', [['i64', [2, 8]]], { eps: f(1e-6) })).toMatch(/x must be a float tensor, got i64/);
    expect(inferError('rms_norm', [['f32', [2, 8]]], { eps: f(-1) })).toMatch(/'eps' must be a finite number >= 0, got -1/);
  });
});

describe('pointwise ops and linear', () => {
  test('gelu (erf and tanh), silu, modulate, gated_residual by hand', () => {
    expectClose(run1('gelu', [t32([2], [1, -1])], { approximate: s('none') }).data, [0.8413447460685429, -0.15865525393145707], 1e-6);
    expectClose(run1('gelu', [t32([1], [1])], { approximate: s('tanh') }).data, [0.8411919906082768], 1e-6);
    expectClose(run1('silu', [t32([1], [1])]).data, [0.7310585786300049], 1e-6);
    const x = t32([1, 2, 2], [1, 2, 3, 4]);
    expectClose(run1('modulate', [x, t32([1, 1, 2], [10, 20]), t32([1, 1, 2], [1, -1])]).data, [12, 20, 16, 20], 1e-6);
    expectClose(run1('gated_residual', [x, t32([1, 1, 2], [2, 0]), t32([1, 2, 2], [1, 1, 1, 1])]).data, [3, 2, 5, 4], 1e-6);
    expect(inferError('gelu', [['f32', [2]]], { approximate: s('fast') })).toMatch(/'approximate' must be 'none' or 'tanh', got 'fast'/);
    expect(inferError('modulate', [['f32', [2, 4]], ['f32', [3]], ['f32', [4]]])).toMatch(/cannot be broadcast/);
  });

  test('linear: x @ w + b, and transB reads w as [M,K]', () => {
    const x = t32([1, 2, 3], [1, 2, 3, 4, 5, 6]);
    const w = t32([3, 2], [1, 0, 0, 1, 1, 1]);
    const want = [4, 5, 10, 11];
    expectClose(run1('linear', [x, w]).data, want, 1e-6);
    expectClose(run1('linear', [x, w, t32([2], [1, -1])]).data, [5, 4, 11, 10], 1e-6);
    const wt = t32([2, 3], [1, 0, 1, 0, 1, 1]);
    expectClose(run1('linear', [x, wt], { transB: i(1) }).data, want, 1e-6);
    expect(inferError('linear', [['f32', [2, 3]], ['f32', [4, 2]]])).toMatch(/x \[2,3\] has 3 input features, w \[4,2\] \(\[K,M\]\) expects K = 4/);
    expect(inferError('linear', [['f32', [2, 3]], ['f32', [3, 2]], ['f32', [3]]])).toMatch(/bias must be \[M\] = \[2\], got \[3\]/);
  });
});

describe('rope', () => {
  const x = t32([1, 1, 1, 4], [1, 2, 3, 4]);
  const c = [0.5, 0.6, 0.7, 0.8];
  const sn = [0.1, 0.2, 0.3, 0.4];

  test('rotate_half by hand: pairs (j, j+H/2), [S,H] tables', () => {
    const y = run1('rope', [x, t32([1, 4], c), t32([1, 4], sn)], { style: s('rotate_half'), layout: s('BNSH') });
    // rot(x) = [-3, -4, 1, 2]
    expectClose(y.data, [1 * 0.5 - 3 * 0.1, 2 * 0.6 - 4 * 0.2, 3 * 0.7 + 1 * 0.3, 4 * 0.8 + 2 * 0.4], 1e-6);
  });

  test('interleaved by hand: pairs (2p, 2p+1); half-width tables share a value per pair', () => {
    const y = run1('rope', [x, t32([1, 1, 1, 4], c), t32([1, 1, 1, 4], sn)], { style: s('interleaved'), layout: s('BSNH') });
    // rot(x) = [-2, 1, -4, 3]
    expectClose(y.data, [1 * 0.5 - 2 * 0.1, 2 * 0.6 + 1 * 0.2, 3 * 0.7 - 4 * 0.3, 4 * 0.8 + 3 * 0.4], 1e-6);
    const h = run1('rope', [x, t32([1, 2], [0.5, 0.7]), t32([1, 2], [0.1, 0.3])], { style: s('interleaved'), layout: s('BNSH') });
    expectClose(h.data, [1 * 0.5 - 2 * 0.1, 2 * 0.5 + 1 * 0.1, 3 * 0.7 - 4 * 0.3, 4 * 0.7 + 3 * 0.3], 1e-6);
  });

  test('[B,S,H] tables follow the layout: BSNH broadcasts over heads on axis 2', () => {
    const x2 = t32([1, 2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]); // [B=1, S=2, N=2, H=2]
    const cos = t32([1, 2, 2], [1, 1, 0, 0]); // s=0: cos 1, s=1: cos 0
    const sin = t32([1, 2, 2], [0, 0, 1, 1]);
    const y = run1('rope', [x2, cos, sin], { style: s('interleaved'), layout: s('BSNH') });
    expectClose(y.data, [1, 2, 3, 4, -6, 5, -8, 7], 1e-6);
  });

  test('errors: table width, layout attribute, odd head dim', () => {
    const a = { style: s('rotate_half'), layout: s('BNSH') };
    expect(inferError('rope', [['f32', [1, 2, 3, 8]], ['f32', [3, 6]], ['f32', [3, 8]]], a)).toMatch(
      /cos \[3,6\] must broadcast to x \[1,2,3,8\] \(layout BNSH\) with last axis H = 8 or H\/2/,
    );
    expect(inferError('rope', [['f32', [1, 2, 3, 8]], ['f32', [3, 8]], ['f32', [3, 8]]], { style: s('rotate_half'), layout: s('SBNH') })).toMatch(
      /'layout' must be 'BNSH' or 'BSNH', got 'SBNH'/,
    );
    expect(inferError('rope', [['f32', [1, 2, 3, 7]], ['f32', [3, 7]], ['f32', [3, 7]]], a)).toMatch(/head dim must be even, got 7/);
  });
});
