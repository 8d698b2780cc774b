/**
 * Attention (opset 23) and RotaryEmbedding against a naive reference written here: explicit
 * per-(batch, head, query) loops over 4-D [B,N,S,H] data, with the GQA head mapping, masks and
 * the causal rule spelled out. 3-D cases are converted to 4-D by the test itself.
 */
import { Tensor } from '../src';
import { at, expectClose, float, inferOp, int, rand, runOp, tt } from './ops-nn-helpers';

interface RefOpts {
  scale?: number;
  causal?: boolean;
  /** Additive bias per (b, h, i, j) (-Infinity = masked). */
  bias?: (b: number, h: number, i: number, j: number) => number;
  pastK?: Tensor;
  pastV?: Tensor;
}

/** Naive SDPA over 4-D tensors; returns [B, Nq, Sq, Hv] data. */
function refAttention(q: Tensor, k: Tensor, v: Tensor, o: RefOpts = {}): number[] {
  const [B, Nq, Sq, H] = q.shape as number[] as [number, number, number, number];
  const Nkv = k.shape[1]!;
  const Hv = v.shape[3]!;
  const P = o.pastK ? o.pastK.shape[2]! : 0;
  const Skv = k.shape[2]!;
  const T = P + Skv;
  const key = (b: number, n: number, j: number, d: number): number =>
    j < P ? o.pastK!.data[at([B, Nkv, P, H], [b, n, j, d])]! : k.data[at(k.shape, [b, n, j - P, d])]!;
  const val = (b: number, n: number, j: number, d: number): number =>
    j < P ? o.pastV!.data[at([B, Nkv, P, Hv], [b, n, j, d])]! : v.data[at(v.shape, [b, n, j - P, d])]!;
  const scale = o.scale ?? 1 / Math.sqrt(H);
  const out: number[] = [];
  for (let b = 0; b < B; b++) for (let h = 0; h < Nq; h++) for (let i = 0; i < Sq; i++) {
    const n = Math.floor(h / (Nq / Nkv)); // interleaved GQA: heads [h0 h0 h1 h1 ...]
    const s: number[] = [];
    for (let j = 0; j < T; j++) {
      let dot = 0;
      for (let d = 0; d < H; d++) dot += q.data[at(q.shape, [b, h, i, d])]! * key(b, n, j, d);
      let x = dot * scale + (o.bias ? o.bias(b, h, i, j) : 0);
      if (o.causal && j > i + P) x = -Infinity;
      s.push(x);
    }
    const m = Math.max(...s);
    const e = s.map((x) => Math.exp(x - m));
    const z = e.reduce((a, c) => a + c, 0);
    for (let d = 0; d < Hv; d++) out.push(e.reduce((acc, p, j) => acc + (p / z) * val(b, n, j, d), 0));
  }
  return out;
}

/** [B,S,N*h] -> [B,N,S,h] copy (test-side reshaping for 3-D inputs). */
function to4(t: Tensor, n: number): Tensor {
  const [B, S, hid] = t.shape as [number, number, number];
  const h = hid / n;
  const out: number[] = [];
  for (let b = 0; b < B; b++) for (let k = 0; k < n; k++) for (let s = 0; s < S; s++) for (let d = 0; d < h; d++) out.push(t.data[at(t.shape, [b, s, k * h + d])]!);
  return Tensor.from(t.dtype, [B, n, S, h], out);
}

/** [B,N,S,h] data -> [B,S,N*h] order. */
function to3(data: readonly number[], B: number, N: number, S: number, h: number): number[] {
  const out: number[] = [];
  for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let k = 0; k < N; k++) for (let d = 0; d < h; d++) out.push(data[at([B, N, S, h], [b, k, s, d])]!);
  return out;
}

describe('Attention', () => {
  test('hand-computed: one query, two keys', () => {
    // scores = [0, 1] (scale 1), softmax = [1/(1+e), e/(1+e)], Y = p0*[1,0] + p1*[0,1]
    const q = Tensor.from('f32', [1, 1, 1, 2], [0, 1]);
    const k = Tensor.from('f32', [1, 1, 2, 2], [1, 0, 0, 1]);
    const v = Tensor.from('f32', [1, 1, 2, 2], [1, 0, 0, 1]);
    const [y] = runOp('Attention', [q, k, v], { scale: float(1) });
    const e = Math.E;
    expectClose(y!, [1 / (1 + e), e / (1 + e)], [1, 1, 1, 2]);
  });

  test('4-D MHA, default scale, cross lengths', () => {
    const q = rand([2, 3, 4, 8], 1);
    const k = rand([2, 3, 6, 8], 2);
    const v = rand([2, 3, 6, 5], 3);
    expectClose(runOp('Attention', [q, k, v])[0]!, refAttention(q, k, v), [2, 3, 4, 5]);
  });

  test('4-D GQA (6 query heads on 2 kv heads) with a float mask broadcast over heads', () => {
    const q = rand([2, 6, 3, 4], 4);
    const k = rand([2, 2, 5, 4], 5);
    const v = rand([2, 2, 5, 4], 6);
    const mask = rand([2, 1, 3, 5], 7);
    const [y] = runOp('Attention', [q, k, v, mask], { scale: float(0.7) });
    const want = refAttention(q, k, v, { scale: 0.7, bias: (b, _h, i, j) => mask.data[at([2, 1, 3, 5], [b, 0, i, j])]! });
    expectClose(y!, want, [2, 6, 3, 4]);
  });

  test('bool mask (true = attend), 2-D, broadcast to every batch and head', () => {
    const q = rand([1, 2, 3, 4], 8);
    const k = rand([1, 2, 4, 4], 9);
    const v = rand([1, 2, 4, 4], 10);
    const bits = [1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1];
    const mask = Tensor.from('bool', [3, 4], bits);
    const [y] = runOp('Attention', [q, k, v, mask]);
    expectClose(y!, refAttention(q, k, v, { bias: (_b, _h, i, j) => (bits[i * 4 + j] ? 0 : -Infinity) }), [1, 2, 3, 4]);
  });

  test('3-D layout with GQA and is_causal; output back in [B, S, N*Hv]', () => {
    const q3 = rand([2, 4, 4 * 3], 11); // 4 heads of 3
    const k3 = rand([2, 4, 2 * 3], 12); // 2 kv heads
    const v3 = rand([2, 4, 2 * 5], 13); // value head size 5
    const [y] = runOp('Attention', [q3, k3, v3], { q_num_heads: int(4), kv_num_heads: int(2), is_causal: int(1) });
    const want = refAttention(to4(q3, 4), to4(k3, 2), to4(v3, 2), { causal: true });
    expectClose(y!, to3(want, 2, 4, 4, 5), [2, 4, 20]);
  });

  test('past key/value: present outputs concatenate, causal frontier shifts by the past length', () => {
    const q = rand([1, 2, 2, 4], 14);
    const k = rand([1, 2, 2, 4], 15);
    const v = rand([1, 2, 2, 4], 16);
    const pk = rand([1, 2, 3, 4], 17);
    const pv = rand([1, 2, 3, 4], 18);
    const [y, presentK, presentV] = runOp('Attention', [q, k, v, undefined, pk, pv], { is_causal: int(1) }, { numOutputs: 3 });
    expectClose(y!, refAttention(q, k, v, { causal: true, pastK: pk, pastV: pv }), [1, 2, 2, 4]);
    expect(presentK!.shape).toEqual([1, 2, 5, 4]);
    // Head 1, position 3 of present_key is new key position 0.
    expect(presentK!.data[at([1, 2, 5, 4], [0, 1, 3, 2])]).toBe(k.data[at([1, 2, 2, 4], [0, 1, 0, 2])]);
    expect(presentV!.data[at([1, 2, 5, 4], [0, 0, 2, 1])]).toBe(pv.data[at([1, 2, 3, 4], [0, 0, 2, 1])]);
  });

  test('softcap applies before the mask; qk_matmul_output modes', () => {
    const q = rand([1, 1, 2, 4], 19);
    const k = rand([1, 1, 3, 4], 20);
    const v = rand([1, 1, 3, 4], 21);
    const mask = Tensor.from('f32', [2, 3], [0, -1, 0, 0.5, 0, 0]);
    const raw = (i: number, j: number): number => {
      let d = 0;
      for (let c = 0; c < 4; c++) d += q.data[i * 4 + c]! * k.data[j * 4 + c]!;
      return d / 2;
    };
    const cap = (x: number): number => 0.3 * Math.tanh(x / 0.3);
    const cell = (f: (i: number, j: number) => number): number[] => [0, 1].flatMap((i) => [0, 1, 2].map((j) => f(i, j)));
    const modes = [cell(raw), cell((i, j) => cap(raw(i, j))), cell((i, j) => cap(raw(i, j)) + mask.data[i * 3 + j]!)];
    for (const mode of [0, 1, 2]) {
      const out = runOp('Attention', [q, k, v, mask], { softcap: float(0.3), qk_matmul_output_mode: int(mode) }, { numOutputs: 4 });
      expectClose(out[3]!, modes[mode]!, [1, 1, 2, 3]);
    }
    const out = runOp('Attention', [q, k, v, mask], { softcap: float(0.3), qk_matmul_output_mode: int(3) }, { numOutputs: 4 });
    const probs = [0, 1].flatMap((i) => {
      const e = [0, 1, 2].map((j) => Math.exp(modes[2]![i * 3 + j]!));
      const z = e.reduce((a, b) => a + b, 0);
      return e.map((x) => x / z);
    });
    expectClose(out[3]!, probs, [1, 1, 2, 3]);
  });

  test('a fully masked query row yields zeros, not NaN', () => {
    const q = rand([1, 1, 2, 2], 22);
    const k = rand([1, 1, 2, 2], 23);
    const v = rand([1, 1, 2, 2], 24);
    const mask = Tensor.from('bool', [2, 2], [0, 0, 1, 1]);
    const y = runOp('Attention', [q, k, v, mask])[0]!;
    expect(y.toArray().slice(0, 2)).toEqual([0, 0]);
    expect(y.toArray().slice(2).every(Number.isFinite)).toBe(true);
  });

  test('symbolic batch and sequence dims flow to every output', () => {
    const t = inferOp('Attention', [tt('f16', ['B', 8, 'S', 64]), tt('f16', ['B', 2, 'S', 64]), tt('f16', ['B', 2, 'S', 64])], {}, { numOutputs: 4 });
    expect(t.map((x) => x.shape)).toEqual([['B', 8, 'S', 64], ['B', 2, 'S', 64], ['B', 2, 'S', 64], ['B', 8, 'S', 'S']]);
    const t3 = inferOp('Attention', [tt('f32', ['B', 'S', 512]), tt('f32', ['B', 'L', 512]), tt('f32', ['B', 'L', 512])], { q_num_heads: int(8), kv_num_heads: int(8) });
    expect(t3[0]!.shape).toEqual(['B', 'S', 512]);
  });

  test('errors name what was expected', () => {
    const f = (s: (string | number)[]) => tt('f32', s);
    expect(() => inferOp('Attention', [f([1, 6, 4, 8]), f([1, 4, 4, 8]), f([1, 4, 4, 8])], {}, { name: 'attn_1' })).toThrow(
      "Attention 'attn_1': 6 query heads are not divisible by 4 key/value heads",
    );
    expect(() => inferOp('Attention', [f([1, 4, 32]), f([1, 4, 32]), f([1, 4, 32])])).toThrow(/need the q_num_heads and kv_num_heads attributes/);
    expect(() => inferOp('Attention', [f([1, 4, 30]), f([1, 4, 32]), f([1, 4, 32])], { q_num_heads: int(4), kv_num_heads: int(4) })).toThrow(/Q's hidden size 30 is not divisible by its 4 heads/);
    expect(() => inferOp('Attention', [f([1, 2, 4, 8]), f([1, 2, 4, 16]), f([1, 2, 4, 8])])).toThrow(/Q and K head sizes differ/);
    expect(() => inferOp('Attention', [f([1, 2, 4, 8]), f([1, 2, 5, 8]), f([1, 2, 4, 8])])).toThrow(/K and V sequence lengths differ/);
    expect(() => inferOp('Attention', [f([1, 2, 4, 8]), f([1, 2, 4, 8]), f([1, 2, 4, 8]), f([1, 3, 4, 4])])).toThrow(/attn_mask \[1,3,4,4\] does not broadcast to \[B, Nq, Sq, T\] = \[1,2,4,4\]/);
    expect(() => inferOp('Attention', [f([1, 2, 4, 8]), f([1, 2, 4, 8]), f([1, 2, 4, 8]), tt('i32', [4, 4])])).toThrow(/attn_mask must be bool or f32/);
    expect(() => inferOp('Attention', [f([1, 2, 4, 8]), f([1, 2, 4, 8]), f([1, 2, 4, 8]), undefined, f([1, 2, 3, 8])])).toThrow(/past_key and past_value must be given together/);
  });
});

describe('RotaryEmbedding', () => {
  test('hand-computed: cos 0, sin 1 rotates each pair by 90 degrees', () => {
    const x = Tensor.from('f32', [1, 1, 1, 4], [1, 2, 3, 4]);
    const cos = Tensor.from('f32', [1, 1, 2], [0, 0]);
    const sin = Tensor.from('f32', [1, 1, 2], [1, 1]);
    // halves: (x1, x2) = ([1, 2], [3, 4]) -> (-x2, x1) = [-3, -4, 1, 2]
    expect(runOp('RotaryEmbedding', [x, cos, sin])[0]!.toArray()).toEqual([-3, -4, 1, 2]);
    // interleaved: pairs (1, 2), (3, 4) -> (-2, 1), (-4, 3)
    expect(runOp('RotaryEmbedding', [x, cos, sin], { interleaved: int(1) })[0]!.toArray()).toEqual([-2, 1, -4, 3]);
  });

  test('position_ids pick cache rows; partial rotation leaves the tail; 3-D layout', () => {
    const x = rand([2, 3, 8], 25); // [B, S, N*H] with 2 heads of 4
    const cos = rand([5, 1], 26);
    const sin = rand([5, 1], 27);
    const pos = Tensor.from('i64', [2, 3], [0, 2, 4, 1, 1, 3]);
    const [y] = runOp('RotaryEmbedding', [x, cos, sin, pos], { num_heads: int(2), rotary_embedding_dim: int(2) });
    const want = x.toArray();
    for (let b = 0; b < 2; b++) for (let s = 0; s < 3; s++) for (let n = 0; n < 2; n++) {
      const p = pos.data[b * 3 + s]!;
      const o = (b * 3 + s) * 8 + n * 4;
      const [x1, x2] = [want[o]!, want[o + 1]!];
      want[o] = cos.data[p]! * x1 - sin.data[p]! * x2;
      want[o + 1] = sin.data[p]! * x1 + cos.data[p]! * x2;
    }
    expectClose(y!, want, [2, 3, 8]);
  });

  test('errors', () => {
    expect(() => inferOp('RotaryEmbedding', [tt('f32', [1, 4, 8]), tt('f32', [1, 4, 4]), tt('f32', [1, 4, 4])])).toThrow(/needs the num_heads attribute/);
    expect(() => inferOp('RotaryEmbedding', [tt('f32', [1, 2, 4, 8]), tt('f32', [1, 4, 3]), tt('f32', [1, 4, 3])])).toThrow(/cos_cache must be \[B, S, 4\] or \[S, 4\], got \[1,4,3\]/);
    expect(() => inferOp('RotaryEmbedding', [tt('f32', [1, 2, 4, 8]), tt('f32', [16, 4]), tt('f32', [16, 4]), tt('f32', [1, 4])])).toThrow(/position_ids must be an integer tensor/);
  });
});
