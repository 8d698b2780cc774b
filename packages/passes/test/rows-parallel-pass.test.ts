/**
 * rows-parallel as a pass (packages/passes/src/rows-parallel/pass.ts), run through the pass manager
 * with the verifier on: Before/Expected IR of a 3x3 -> 1x1 conv chain at W = 2 (hand-written), the
 * cases where it must not fire (W = 1) or must refuse clearly (a transformer, a mixed mesh, rows not
 * divisible, a halo wider than a band, an op without a rule), and numerics on simulated ranks at
 * W = 2 and 4 through compileForMesh: a small decoder (conv, GroupNorm, SiLU, nearest 2x upsample,
 * conv) equals the unsharded interpreter within 1e-5 relative L2 (the convs are bitwise equal;
 * only GroupNorm's all-reduced statistics round differently).
 */
import { GraphBuilder, Module, Tensor, interpret, makeMesh, runSimulated, tensorType, verifySharded } from '@paradit/ir';
import type { Attrs, Value } from '@paradit/ir';
import { compileForMesh } from '@paradit/passes';
import { rowsParallelPass } from '../src/rows-parallel/pass';
import { expectIr, ir, randomInputs, relL2, rng, runOne } from './helpers';

const ints = (value: number[]): Attrs[string] => ({ kind: 'ints', value });
const rows = (w: number): { options: { mesh: ReturnType<typeof makeMesh> } } => ({ options: { mesh: makeMesh({ ring: w }) } });

const W1 = Array.from({ length: 36 }, (_, i) => ((i % 7) / 7).toFixed(6)).join(', ');
const CHAIN = `graph main(%x: f32[1,2,4,3]) {
  %w = const f32[2,2,3,3] [${W1}]
  %y = Conv(%x, %w) {kernel_shape=[3,3], pads=[1,1,1,1]}
  %w2 = const f32[1,2,1,1] [0.5, -1.0]
  %z = Conv(%y, %w2) {kernel_shape=[1,1]}
  return %z
}`;

describe('rows-parallel pass', () => {
  test('Before/Expected: a 3x3 conv gets one halo row from each neighbour, the 1x1 conv none (W = 2)', () => {
    const out = runOne(rowsParallelPass, ir(CHAIN), rows(2));
    // Rank r holds rows [2r, 2r+2). Its last row ("row 1 of every band": Reshape to bands, Slice
    // the within-band axis, Reshape back) goes to rank r+1 (shift 1), its first row to rank r-1
    // (shift -1), both non-cyclic (cyclic=0): rank 0 receives zeros from above and rank 1 from
    // below (the image edge, where the unsharded conv reads its zero padding), and nothing is sent
    // across the edge, so no masks. The halo'd input is placed in
    // rank-chunk token order (2 rows from above, 4 of the bands, 2 from below; one chunk per rank),
    // which the Conv rule accepts because each chunk has the d(k-1)+1-s = 2 extra rows it needs.
    expectIr(
      out,
      `graph main(%x: f32[1,2,4,3]) {
        %bands_shape = const i64[5] [1, 2, 1, 2, 3]
        %s1 = const i64[1] [1]
        %e2 = const i64[1] [2]
        %a3 = const i64[1] [3]
        %row_shape = const i64[4] [1, 2, 1, 3]
        %bands_shape2 = const i64[5] [1, 2, 1, 2, 3]
        %s0 = const i64[1] [0]
        %e1 = const i64[1] [1]
        %a3b = const i64[1] [3]
        %row_shape2 = const i64[4] [1, 2, 1, 3]
        %w = const f32[2,2,3,3] [${W1}]
        %w2 = const f32[1,2,1,1] [0.5, -1.0]
        %band = shard_slice(%x) {axis=2, groupSize=2, meshAxis="ring"} : f32[1,2,2,3]@shard(2,ring)
        %bands = Reshape(%band, %bands_shape) : f32[1,2,1,2,3]@shard(2,ring)
        %last_cut = Slice(%bands, %s1, %e2, %a3) : f32[1,2,1,1,3]@shard(2,ring)
        %last = Reshape(%last_cut, %row_shape) : f32[1,2,1,3]@shard(2,ring)
        %above = ppermute(%last) {cyclic=0, groupSize=2, meshAxis="ring", shift=1} : f32[1,2,1,3]@shard(2,ring)
        %bands2 = Reshape(%band, %bands_shape2) : f32[1,2,1,2,3]@shard(2,ring)
        %first_cut = Slice(%bands2, %s0, %e1, %a3b) : f32[1,2,1,1,3]@shard(2,ring)
        %first = Reshape(%first_cut, %row_shape2) : f32[1,2,1,3]@shard(2,ring)
        %below = ppermute(%first) {cyclic=0, groupSize=2, meshAxis="ring", shift=-1} : f32[1,2,1,3]@shard(2,ring)
        %xh = Concat(%above, %band, %below) {axis=2} : f32[1,2,4,3]@shard(2,ring)@tokens(2:[2,4,2]/2)
        %y = Conv(%xh, %w) {kernel_shape=[3,3], pads=[0,1,0,1]} : f32[1,2,2,3]@shard(2,ring)
        %z = Conv(%y, %w2) {kernel_shape=[1,1], pads=[0,0,0,0]} : f32[1,1,2,3]@shard(2,ring)
        %image = all_gather(%z) {axis=2, groupSize=2, meshAxis="ring"}
        return %image
      }`,
    );
    expect(out.graph.nodes.find((n) => n.op === 'Conv')!.outputs[0]!.type.shape).toEqual([1, 2, 2, 3]);
  });

  test('the SPMD verifier checks the halos: a conv on bands without its halo rows, or with too few, is rejected', () => {
    const conv = (input: string, type: string, extra = ''): string => `graph main(%x: f32[1,2,8,3]) {
        %w = const f32[2,2,3,3] [${W1}]
        %band = shard_slice(%x) {axis=2, groupSize=2, meshAxis="ring"} : f32[1,2,4,3]@shard(2,ring)
        ${extra}
        %y = Conv(${input}, %w) {kernel_shape=[3,3], pads=[0,1,0,1]} : ${type}
        %image = all_gather(%y) {axis=2, groupSize=2, meshAxis="ring"}
        return %image
      }`;
    // No halo: each band would be convolved as if the image ended at its edges.
    expect(() => verifySharded(ir(conv('%band', 'f32[1,2,2,3]@shard(2,ring)')))).toThrow(/Conv.*input 0 is placed 2@ring, but Conv needs replicated/);
    // A whole neighbour band (4 rows) in front of each band: the 3x3 kernel needs 2 extra rows, not 4.
    const above = `%above = ppermute(%band) {groupSize=2, meshAxis="ring", shift=1} : f32[1,2,4,3]@shard(2,ring)
        %xh = Concat(%above, %band) {axis=2} : f32[1,2,8,3]@shard(2,ring)@tokens(2:[8,8]/2)`;
    expect(() => verifySharded(ir(conv('%xh', 'f32[1,2,6,3]@shard(2,ring)', above)))).toThrow(/Conv's rows carry 4 halo rows per rank, but its kernel needs 2/);
    // The pass's own output verifies (runOne verifies around the pass; done again here explicitly).
    expect(() => verifySharded(runOne(rowsParallelPass, ir(CHAIN), rows(2)))).not.toThrow();
  });

  test('must not fire: degree 1 returns the module itself', () => {
    const m = ir(CHAIN);
    expect(runOne(rowsParallelPass, m, rows(1))).toBe(m);
  });

  test('refuses a transformer (no NCHW conv), pointing at sequence parallelism', () => {
    const m = ir(`graph main(%x: f32[1,16,8]) {
      %w = const f32[8,8] [${Array.from({ length: 64 }, (_, i) => (i % 5) / 5).join(', ')}]
      %s = MatMul(%x, %w)
      %p = Softmax(%s) {axis=-1}
      return %p
    }`);
    expect(() => runOne(rowsParallelPass, m, rows(2))).toThrow(/rows-parallel 2: the module has no NCHW \(rank-4\) model input and has attention: it looks like a transformer; use --ulysses\/--ring/);
  });

  test('refuses a mesh that also sets ulysses', () => {
    expect(() => runOne(rowsParallelPass, ir(CHAIN), { options: { mesh: makeMesh({ ring: 2, ulysses: 2 }) } })).toThrow(/also sets ulysses or cfg; .* give --rows-parallel W without --ulysses\/--ring\/--cfg/);
  });

  test('refuses rows not divisible by the degree and halos wider than a band, naming the conv', () => {
    const odd = ir(CHAIN.replace('f32[1,2,4,3]', 'f32[1,2,6,3]'));
    expect(() => runOne(rowsParallelPass, odd, rows(4))).toThrow("rows-parallel: Conv: 6 rows are not divisible by rows-parallel degree 4; use a degree that divides 6");
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [1, 1, 4, 4]));
    const [y] = b.add('Conv', [x, b.constant(Tensor.zeros('f32', [1, 1, 5, 5]))], { kernel_shape: ints([5, 5]), pads: ints([2, 2, 2, 2]) }, { name: 'wide' });
    const wide = new Module(b.build([y!]), { '': 18 });
    expect(() => runOne(rowsParallelPass, wide, rows(4))).toThrow("rows-parallel: Conv 'wide': a halo of 2 rows is larger than a band of 1 rows at degree 4; use a smaller degree");
  });

  test('refuses an op on split rows it has no rule for, naming the node', () => {
    const b = new GraphBuilder(18);
    const x = b.input('x', tensorType('f32', [1, 2, 4, 4]));
    const [c] = b.add('Conv', [x, b.constant(Tensor.zeros('f32', [2, 2, 1, 1]))], { kernel_shape: ints([1, 1]) }, { name: 'pointwise' });
    const [y] = b.add('Softmax', [c!], { axis: { kind: 'int', value: 2 } }, { name: '/decoder/softmax_rows' });
    const m = new Module(b.build([y!]), { '': 18 });
    expect(() => runOne(rowsParallelPass, m, rows(2))).toThrow("rows-parallel: Softmax '/decoder/softmax_rows': this op has no rows-parallel rule (split image rows pass through Conv, nearest Resize");
    expect(() => runOne(rowsParallelPass, m, rows(2))).toThrow(/; decode without --rows-parallel$/);
  });
});

/** Seeded constant of `shape`, uniform in [-1, 1). */
function seeded(shape: number[], seed: number): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from('f32', shape, Array.from({ length: n }, () => r() * 2 - 1));
}

/** conv(2->4, 3x3) -> GroupNorm(2 groups) -> silu -> nearest 2x -> conv(4->3, 3x3), on x f32[1,2,8,5]. */
function tinyDecoder(): Module {
  const b = new GraphBuilder(18);
  const conv = (x: Value, cin: number, cout: number, seed: number): Value =>
    b.add('Conv', [x, b.constant(seeded([cout, cin, 3, 3], seed)), b.constant(seeded([cout], seed + 1))], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) }, { name: `conv${seed}` })[0]!;
  const x = b.input('x', tensorType('f32', [1, 2, 8, 5]));
  const c = conv(x, 2, 4, 10);
  const [g] = b.add('Reshape', [c, b.constant(Tensor.from('i64', [3], [1, 2, 80]))], {}, { name: 'norm/to_groups' });
  const [n] = b.add('InstanceNormalization', [g!, b.constant(Tensor.from('f32', [2], [1, 1])), b.constant(Tensor.from('f32', [2], [0, 0]))], { epsilon: { kind: 'float', value: 1e-6 } }, { name: 'norm' });
  const [back] = b.add('Reshape', [n!, b.constant(Tensor.from('i64', [4], [1, 4, 8, 5]))], {}, { name: 'norm/to_nchw' });
  const [gamma] = b.add('Mul', [back!, b.constant(seeded([4, 1, 1], 3))], {}, { name: 'norm/gamma' });
  const [act] = b.add('silu', [gamma!], {}, { name: 'act' });
  const [up] = b.add('Resize', [act!, null, b.constant(Tensor.from('f32', [4], [1, 1, 2, 2]))], { mode: { kind: 'string', value: 'nearest' } }, { name: 'up' });
  return new Module(b.build([conv(up!, 4, 3, 20)]), { '': 18 });
}

describe('rows-parallel on simulated ranks (compileForMesh, rowsParallel)', () => {
  test.each([2, 4])('W = %i equals the unsharded interpreter (rel L2 < 1e-5)', (world) => {
    const m = tinyDecoder();
    const mesh = makeMesh({ ring: world });
    const sharded = compileForMesh(m, mesh, { prepared: true, rowsParallel: true });
    const inputs = randomInputs(m, 5);
    const got = runSimulated(sharded, mesh, inputs)[0]!;
    const ref = interpret(m, inputs)[0]!;
    expect(got.shape).toEqual([1, 3, 16, 10]);
    expect(relL2(got, ref)).toBeLessThan(1e-5);
  });
});
