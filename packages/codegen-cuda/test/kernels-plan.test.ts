/**
 * Structural tests of the non-GEMM emitter: which IR nodes fuse into which kernel, aliases for
 * views, vectorization decisions, launch sizes, kernel order and errors.
 */
import type { AttrValue, Graph, Value } from '@paradit/ir';
import { GraphBuilder, Tensor } from '@paradit/ir';
import { emitFragment, CodegenError } from '../src/kernels';
import { coverageFragments } from '../src/kernels/check-cases';

const byName = (n: string): Graph => coverageFragments().find((c) => c.name === n)!.graph;
const ops = (g: Graph, k = 0): string[] => emitFragment(g, { namePrefix: 't' }).kernels[k]!.covers.map((n) => n.op);
const int = (value: number): AttrValue => ({ kind: 'int', value });

describe('fusion groups', () => {
  test('layer_norm -> modulate is one row kernel (FLUX/SD3 AdaLN)', () => {
    const low = emitFragment(byName('ln_modulate_bf16'), { namePrefix: 'frag' });
    expect(low.kernels).toHaveLength(1);
    const k = low.kernels[0]!;
    expect(k.covers.map((n) => n.op)).toEqual(['layer_norm', 'modulate']);
    expect(k.entry).toBe('frag_k0_layer_norm');
    // D = 384 bf16: 48 chunks of 8 -> 32 threads per row, 8 rows per 256-thread block; 128 rows.
    expect(k.block).toEqual([256, 1, 1]);
    expect(k.grid).toEqual([16, 1, 1]);
    expect(k.writes).toHaveLength(1);
    expect(k.source).toContain('pdt_ldv<__nv_bfloat16, 8>');
    expect(k.source).toContain('pdt_row_sum<32>');
  });

  test('gated_residual -> layer_norm -> modulate is one kernel writing the residual and the modulated value', () => {
    const g = byName('gres_ln_modulate_f16');
    const low = emitFragment(g, { namePrefix: 'f' });
    expect(low.kernels).toHaveLength(1);
    expect(low.kernels[0]!.covers.map((n) => n.op)).toEqual(['gated_residual', 'layer_norm', 'modulate']);
    expect(new Set(low.kernels[0]!.writes)).toEqual(new Set(g.outputs));
  });

  test('Concat of two rms_norms along the sequence + rope becomes one row kernel (FLUX q/k)', () => {
    const low = emitFragment(byName('concat_norms_rope'), { namePrefix: 'f' });
    expect(low.kernels).toHaveLength(1);
    expect(low.kernels[0]!.covers.map((n) => n.op)).toEqual(['rms_norm', 'rms_norm', 'Concat', 'rope']);
    // H = 128 bf16: 16 chunks -> 8 threads per row, each holding chunk k and its partner k+1.
    expect(low.kernels[0]!.source).toContain('pdt_row_sum<8>');
    // The two norms have their own weights: a select along the sequence axis picks them.
    expect(low.kernels[0]!.reads).toHaveLength(6);
  });

  test('rms_norm -> rope (rotate_half, table of H/2, BSNH) fuses when the partner is in the same thread', () => {
    expect(ops(byName('rms_rope_rotate_half_f32'))).toEqual(['rms_norm', 'rope']);
    expect(emitFragment(byName('rms_rope_rotate_half_f32'), { namePrefix: 'f' }).kernels).toHaveLength(1);
  });

  test('a pointwise chain with broadcasting and casts is one kernel per output shape', () => {
    const low = emitFragment(byName('pointwise_mix'), { namePrefix: 'f' });
    expect(low.kernels).toHaveLength(1);
    expect(low.kernels[0]!.writes).toHaveLength(4);
  });

  test('reductions: trailing axes take the row kernel, others the loop kernel, in dependency order', () => {
    const low = emitFragment(byName('reductions'), { namePrefix: 'f' });
    const kinds = low.kernels.map((k) => k.entry.replace(/^f_k\d+_/, ''));
    // x - mean ([4,33,65] minus [4,33,1]) cannot be viewed as rows of 33*65, so it is written once.
    // The whole-tensor means (First Block Cache's change ratio) are too long for registers: the
    // wide kernel (blocks of 1024 threads); their Div is a pointwise kernel.
    expect([...kinds].sort()).toEqual(['mean', 'pointwise', 'pointwise', 'reduce_max', 'reduce_sum', 'sumsq', 'wide_mean', 'wide_mean']);
    const wide = low.kernels.find((k) => k.entry.endsWith('wide_mean'))!;
    expect(wide.block).toEqual([1024, 1, 1]);
    // 76800 bf16 = 9600 chunks of 8: two blocks of 1024 threads (>= 4 chunks each), the last
    // one to finish combines the partials.
    expect(wide.grid).toEqual([2, 1, 1]);
    expect(wide.source).toContain('atomicAdd(&f_k');
    expect(wide.source).toContain('pdt_ldv<__nv_bfloat16, 8>');
    expect(kinds.indexOf('mean')).toBeLessThan(kinds.indexOf('pointwise'));
    expect(kinds.indexOf('pointwise')).toBeLessThan(kinds.indexOf('sumsq'));
  });
});

describe('views and data movement', () => {
  test('Reshape/Unsqueeze of an input and contiguous Split pieces are aliases, not kernels', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'bf16', shape: [1, 18432] });
    const parts = b.add('Split', [x], { axis: int(1), num_outputs: int(6) }, { numOutputs: 6, name: 'split' });
    const u = b.add('Unsqueeze', [parts[2]!, b.constant(Tensor.from('i64', [1], [1]))], {}, { name: 'unsq' })[0]!;
    const low = emitFragment(b.build([parts[0]!, u, parts[5]!]), { namePrefix: 'f' });
    expect(low.kernels).toHaveLength(0);
    expect(low.aliases.map((a) => [a.of, a.byteOffset])).toEqual([
      [x, 0],
      [x, 2 * 3072 * 2],
      [x, 5 * 3072 * 2],
    ]);
    expect(low.aliases[1]!.covers.map((n) => n.name)).toEqual(['split', 'unsq']);
  });

  test('a Concat piece materialized only for the Concat is stored in place (FLUX single block: attention out | MLP)', () => {
    const b = new GraphBuilder(18);
    const att = b.input('att', { dtype: 'bf16', shape: [1, 24, 64, 128] });
    const mlp = b.input('mlp', { dtype: 'bf16', shape: [1, 64, 512] });
    const t = b.add('Transpose', [att], { perm: { kind: 'ints', value: [0, 2, 1, 3] } }, { name: 't' })[0]!;
    const r = b.add('Reshape', [t, b.constant(Tensor.from('i64', [3], [1, 64, 3072]))], {}, { name: 'r' })[0]!;
    const cat = b.add('Concat', [r, mlp], { axis: int(2) }, { name: 'cat' })[0]!;
    const low = emitFragment(b.build([cat]), { namePrefix: 'f' });
    // The transpose writes columns [0, 3072) of cat directly, a copy writes [3072, 3584): no
    // intermediate buffer, and cat is the only value written.
    expect(low.kernels).toHaveLength(2);
    expect(low.kernels.flatMap((k) => k.writes)).toEqual([cat, cat]);
    expect(low.kernels[0]!.source).toContain('pdt_stv<__nv_bfloat16, 8>');
    // With a lazy piece (gelu) and a third input: the transpose is still in place, gelu and the
    // input piece are copies into their regions (one kernel per piece shape).
    const g = emitFragment(byName('concat_in_place'), { namePrefix: 'f' });
    expect(g.kernels).toHaveLength(3);
    expect(new Set(g.kernels.flatMap((k) => k.writes)).size).toBe(1);
  });

  test('a misaligned contiguous slice is copied (aliases keep 16-byte alignment)', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: [10] });
    const i64 = (v: number[]): Value => b.constant(Tensor.from('i64', [v.length], v));
    const s = b.add('Slice', [x, i64([1]), i64([9])], {}, { name: 's' })[0]!;
    const low = emitFragment(b.build([s]), { namePrefix: 'f' });
    expect(low.aliases).toHaveLength(0);
    expect(low.kernels).toHaveLength(1);
  });

  test('head transpose [B,S,N,H] -> [B,N,S,H] copies 16-byte vectors along H', () => {
    const k = emitFragment(byName('data_movement'), { namePrefix: 'f' }).kernels;
    expect(k.length).toBeGreaterThanOrEqual(3);
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'bf16', shape: [1, 64, 24, 128] });
    const t = b.add('Transpose', [x], { perm: { kind: 'ints', value: [0, 2, 1, 3] } }, { name: 't' })[0]!;
    const low = emitFragment(b.build([t]), { namePrefix: 'f' });
    expect(low.kernels[0]!.source).toContain('pdt_ldv<__nv_bfloat16, 8>');
    expect(low.kernels[0]!.grid).toEqual([(64 * 24 * 128) / 8 / 256, 1, 1]);
  });

  test('an odd last dim falls back to scalar accesses', () => {
    const k = emitFragment(byName('ln_modulate_f32_odd'), { namePrefix: 'f' }).kernels[0]!;
    expect(k.source).not.toContain('pdt_ldv<float');
    expect(k.source).toContain('if (j');
  });
});

describe('errors', () => {
  test('an op without a CUDA path names the node, the op and the reason', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: [4, 5] });
    const y = b.add('NonZero', [x], {}, { name: 'my_nz' });
    expect(() => emitFragment(b.build([y[0]!]), { namePrefix: 'f' })).toThrow(CodegenError);
    expect(() => emitFragment(b.build([y[0]!]), { namePrefix: 'f' })).toThrow(/NonZero 'my_nz'.*depends on the data/);
  });

  test('ONNX LayerNormalization over several axes takes the indexed path, not the row kernel', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', { dtype: 'f32', shape: [4, 5, 6] });
    const y = b.add('LayerNormalization', [x, b.input('s', { dtype: 'f32', shape: [5, 6] })], { axis: int(1) }, { name: 'ln1' })[0]!;
    const ks = emitFragment(b.build([y]), { namePrefix: 'f' }).kernels;
    expect(ks.map((k) => k.entry.replace(/^f_k\d+_/, ''))).toEqual(['pointwise']);
    expect(ks[0]!.source).toContain('sqrt(');
  });

  test('softmax over a middle axis takes the loop kernel', () => {
    const low = emitFragment(byName('softmaxes'), { namePrefix: 'f' });
    expect(low.kernels.map((k) => k.entry.replace(/^f_k\d+_/, '')).sort()).toEqual(['log_softmax', 'softmax', 'softmax_axis']);
  });
});
