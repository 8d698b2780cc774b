/**
 * quantize-linears-fp8: Before/Expected IR (weights quantized by hand), must-not-fire cases (a
 * dynamic weight, an unaligned layer, a --keep-bf16 pattern), the block-based choice on a tiny
 * DiT (embedders and the head stay bf16), pattern syntax and its errors, and numerics: the
 * rewritten module against the original within the tolerance docs/fp8.md derives.
 */
import { Tensor, interpret, makeMesh } from '@paradit/ir';
import { compileForMesh } from '../src/context-parallel/pipeline';
import { formatFp8Plan, parseKeepPattern, planFp8Linears, quantizeLinearsFp8, quantizeLinearsFp8Pass, summarizeFp8Plan } from '@paradit/passes';
import { buildTinyDit, tinyDitInputs } from '../../../tests/models/tiny-dit';
import { compile, relL2 } from '../../../tests/models/pipeline-helpers';
import { expectIr, ir, runOne } from './helpers';

const K = 16;
const N = 16;
/** w [K,N]: 2 on the diagonal, -1 one column to the right (so each column's amax is 2). */
function weightText(): string {
  const v: number[] = [];
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) v.push(k === n ? 2 : n === k + 1 ? -1 : 0);
  return `%w = const f32[${K},${N}] [${v.map((x) => x.toFixed(1)).join(', ')}]`;
}
/** By hand: ws_n = 2/448; wq [N,K] = W^T / ws: 448 at (n,n), -224 at (n, n-1). */
function quantizedText(): string {
  const q: number[] = [];
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) q.push(k === n ? 448 : k === n - 1 ? -224 : 0);
  const s = Math.fround(2 / 448);
  return `%wq = const f8e4m3fn[${N},${K}] [${q.map((x) => x.toFixed(1)).join(', ')}]
      %ws = const f32[${N}] [${new Array<string>(N).fill(String(s)).join(', ')}]`;
}
const BIAS = `%b = const f32[${N}] [${new Array<string>(N).fill('0.5').join(', ')}]`;

describe('quantize-linears-fp8', () => {
  test('Before/Expected: linear(x, w, b) -> quantize_fp8_rows + linear_fp8 with hand-quantized weights', () => {
    const before = ir(`graph main(%x: f32[2,3,${K}]) {
      ${weightText()}
      ${BIAS}
      %y = linear(%x, %w, %b) {transB=0}
      return %y }`);
    const after = runOne(quantizeLinearsFp8Pass(), before);
    expectIr(
      after,
      `graph main(%x: f32[2,3,${K}]) {
        ${quantizedText()}
        ${BIAS}
        %q, %s = quantize_fp8_rows(%x)
        %y = linear_fp8(%q, %s, %wq, %ws, %b) {oDtype=1, transB=1}
        return %y }`,
    );
  });

  test('must not fire: a dynamic weight, an unaligned layer, a kept pattern (Expected = Before)', () => {
    const dyn = ir(`graph main(%x: f32[2,${K}], %w: f32[${K},${N}]) {
      %y = linear(%x, %w) {transB=0}
      return %y }`);
    expect(runOne(quantizeLinearsFp8Pass(), dyn)).toBe(dyn);
    expect(summarizeFp8Plan(planFp8Linears(dyn.graph, [])).kept.map((k) => k.reason)).toEqual(['dynamic weight (not a constant)']);
    const odd = ir(`graph main(%x: f32[2,4]) {
      %w = const f32[4,3] [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2]
      %y = linear(%x, %w) {transB=0}
      return %y }`);
    expect(runOne(quantizeLinearsFp8Pass(), odd)).toBe(odd);
    // IR text carries no node names: the named layers of the tiny DiT, every one kept by a pattern.
    const dit = compile(buildTinyDit());
    expect(runOne(quantizeLinearsFp8Pass({ keepBf16: [parseKeepPattern('*.weight')] }), dit)).toBe(dit);
    expect(runOne(quantizeLinearsFp8Pass({ keepBf16: [parseKeepPattern('/^node_Add_/')] }), dit)).toBe(dit);
    expect(runOne(quantizeLinearsFp8Pass({ keepBf16: [parseKeepPattern('/^no_such_layer$/')] }), dit)).not.toBe(dit);
  });

  test('a MatMul by a constant weight is a layer; a MatMul of two activations is not', () => {
    const m = ir(`graph main(%x: f32[2,${K}], %a: f32[2,${K}], %bt: f32[${K},2]) {
      ${weightText()}
      %y = MatMul(%x, %w)
      %z = MatMul(%a, %bt)
      return %y, %z }`);
    const p = planFp8Linears(m.graph, []);
    expect(p.layers.map((d) => [d.op, d.k, d.n, d.keep])).toEqual([['MatMul', K, N, undefined]]);
    const after = runOne(quantizeLinearsFp8Pass(), m);
    expect(after.graph.nodes.map((n) => n.op)).toEqual(['quantize_fp8_rows', 'linear_fp8', 'MatMul']);
  });

  test('a ring-sharded step makes the same decisions as the unsharded model (blocks found through attention_lse)', () => {
    // fp8 runs after context parallelism; ring attention replaces each attention by partial
    // attention_lse ops, which block discovery must still take for the block's attention.
    const dit = buildTinyDit();
    const plain = summarizeFp8Plan(planFp8Linears(compile(dit).graph, []));
    const ring = compileForMesh(dit, makeMesh({ ring: 2 }));
    expect(ring.graph.nodes.some((n) => n.op === 'attention_lse')).toBe(true);
    const sharded = summarizeFp8Plan(planFp8Linears(ring.graph, []));
    expect(sharded.fp8).toBe(plain.fp8);
    expect(sharded.kept.map((k) => [k.weight, k.reason])).toEqual(plain.kept.map((k) => [k.weight, k.reason]));
  });

  test('tiny DiT: block linears become fp8; embedders (prologue) and the head stay, with their reasons', () => {
    const m = compile(buildTinyDit());
    const p = planFp8Linears(m.graph, []);
    const s = summarizeFp8Plan(p);
    // 2 blocks x 7 linears (modulation, qkv, out, 3 context, mlp up/down ... as the model builds them)
    expect(s.fp8).toBe(14);
    expect(s.kept.map((k) => k.reason)).toEqual([
      ...new Array<string>(4).fill('embedder (before the first transformer block)'),
      ...new Array<string>(2).fill('final projection (after the last transformer block)'),
    ]);
    expect(s.kept.map((k) => k.weight)).toEqual(expect.arrayContaining(['proj_out.weight', 'norm_out.linear.weight']));
    expect(formatFp8Plan(p)).toMatch(/^bf16 .*embedder/m);
    // --keep-bf16 on every first-block layer by weight name (glob)
    const k = summarizeFp8Plan(planFp8Linears(m.graph, [parseKeepPattern('blocks.0.*')]));
    expect(k.fp8).toBe(7);
    expect(k.kept.filter((x) => x.reason === 'matches --keep-bf16 blocks.0.*')).toHaveLength(7);
  });

  test('numerics: interpreter(pass(m)) vs interpreter(m) on the tiny DiT, within the derived bound and not exact', () => {
    const m = compile(buildTinyDit());
    const q = runOne(quantizeLinearsFp8Pass(), m);
    expect(q.graph.nodes.filter((n) => n.op === 'linear_fp8')).toHaveLength(14);
    const ins = tinyDitInputs();
    const e = relL2(interpret(q, ins)[0]!, interpret(m, ins)[0]!);
    // docs/fp8.md: one e4m3 linear costs ~0.036 rel. L2 of its output; the model's output is mostly
    // the residual stream and the bf16-kept head, so the end-to-end error is far below that.
    expect(e).toBeGreaterThan(1e-5);
    expect(e).toBeLessThan(0.036);
  });

  test('pattern syntax: globs match the whole name, /regex/ searches; a bad regex is an input error', () => {
    expect(parseKeepPattern('*proj_out*').re.test('transformer.proj_out.weight')).toBe(true);
    expect(parseKeepPattern('proj_out').re.test('transformer.proj_out.weight')).toBe(false);
    expect(parseKeepPattern('blocks.?.attn*').re.test('blocks.3.attn.to_q')).toBe(true);
    expect(parseKeepPattern('blocks.?.attn*').re.test('blocksX3Xattn')).toBe(false);
    expect(parseKeepPattern('/to_(q|k)/').re.test('blocks.3.attn.to_k.weight')).toBe(true);
    expect(() => parseKeepPattern('/to_(q/')).toThrow(/--keep-bf16 \/to_\(q\/: not a valid regular expression/);
    expect(() => parseKeepPattern('')).toThrow(/empty pattern/);
  });

  test('a zero weight column gets scale 1 and quantizes to zeros (no NaN)', () => {
    const m = ir(`graph main(%x: f32[1,${K}]) {
      %w = const f32[${K},${N}] [${new Array<string>(K * N).fill('0.0').join(', ')}]
      %y = linear(%x, %w) {transB=0}
      return %y }`);
    const q = quantizeLinearsFp8(m);
    const ws = q.graph.nodes[1]!.inputs[3]!.constant!.tensor();
    expect(Array.from(ws.data)).toEqual(new Array<number>(N).fill(1));
    const y = interpret(q, [Tensor.from('f32', [1, K], new Array<number>(K).fill(1))])[0]!;
    expect(Array.from(y.data)).toEqual(new Array<number>(N).fill(0));
  });
});
