/**
 * Attention with a 2-D mask [.., Sq, Skv] on joint text + image tokens in rank-chunk order (uneven
 * streams, so the order has padding): the mask is split like the queries on its rows and follows
 * the keys on its columns (whole under a gather or Ulysses, one block per ring step), in one
 * joint token order on both axes. Guards against the old fallback that ran such attention whole
 * on every rank, and against a mask whose columns are left in natural order beside reordered keys.
 *
 * Masks have both padding (text keys past each sample's length) and structure (image queries see
 * the valid text and a band of nearby image tokens; per-head masks hide more), so no mask row or
 * column pattern is uniform. Also: a 2-D additive bias in ONNX spelling (MatMul, Add, Softmax),
 * unfused and fused, and a 2-D mask on a cross-attention over unsplit text. Tolerance: relative
 * L2 1e-5 against the unsharded interpreter.
 */
import { GraphBuilder, Module, Tensor, interpret, makeMesh, orderedLength, parseModule, printModule, runSimulated, verify } from '@paradit/ir';
import type { AttrValue, Value } from '@paradit/ir';
import { compileForMesh } from '../../packages/passes/src/context-parallel';
import { randomTensor, rng } from '../models/tiny-dit';
import { relL2 } from '../support/harness';

interface Case {
  readonly batch: number;
  readonly text: number;
  readonly image: number;
  /** Mask as a model input of this shape kind, or computed in the graph (HunyuanVideo style). */
  readonly mask: 'input-bool' | 'input-float' | 'input-2d' | 'input-heads' | 'computed';
}

const N = 4;
const H = 4;
const int = (value: number): AttrValue => ({ kind: 'int', value });
const i64 = (xs: number[]): Tensor => Tensor.from('i64', [xs.length], xs);

/** Keep (true) when query i may see key j; sample b keeps its first text - 1 - b text tokens. */
function allowed(c: Case, b: number, i: number, j: number): boolean {
  const T = c.text;
  const validText = Math.max(1, T - 1 - b);
  if (j < T && j >= validText) return false; // padding: text keys past the sample's length
  if (i < T) return true; // text queries: every valid key
  if (j < T) return true; // image queries see every valid text token
  return Math.abs(i - j) <= 2; // and a band of image tokens
}

function maskShape(c: Case): number[] {
  const L = c.text + c.image;
  switch (c.mask) {
    case 'input-2d':
      return [L, L];
    case 'input-heads':
      return [c.batch, N, L, L];
    default:
      return [c.batch, 1, L, L];
  }
}

function maskTensor(c: Case): Tensor {
  const L = c.text + c.image;
  const shape = maskShape(c);
  const B = shape.length === 2 ? 1 : c.batch;
  const heads = c.mask === 'input-heads' ? N : 1;
  const data: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < L; i++) {
        for (let j = 0; j < L; j++) {
          // Head h additionally hides key j when (i + j + h) % 7 == 0 (structure that differs per head).
          const keep = allowed(c, b, i, j) && !(c.mask === 'input-heads' && (i + j + h) % 7 === 0 && Math.abs(i - j) > 0);
          if (c.mask === 'input-float') data.push(keep ? 0.25 * Math.sin(i - 2 * j) : -Infinity);
          else data.push(keep ? 1 : 0);
        }
      }
    }
  }
  return Tensor.from(c.mask === 'input-float' ? 'f32' : 'bool', shape, data);
}

/** Joint self-attention over [text; image] with a 2-D mask, then a per-token projection. */
function build(c: Case): Module {
  const rand = rng(c.text * 31 + c.image);
  const b = new GraphBuilder(18);
  const B = c.batch;
  const L = c.text + c.image;
  const D = N * H;
  let k = 0;
  const one = (op: string, ins: (Value | null)[], attrs: Record<string, AttrValue> = {}): Value => b.add(op, ins, attrs, { name: `${op}_${k++}` })[0]!;
  const txt = b.input('encoder_hidden_states', { dtype: 'f32', shape: [B, c.text, D] });
  const img = b.input('hidden_states', { dtype: 'f32', shape: [B, c.image, D] });
  let mask: Value;
  if (c.mask === 'computed') {
    // keep [B, T] -> key validity [B, L] (image always valid) -> outer AND with the row validity
    // of image rows, OR'd with a band structure given as a constant [L, L].
    const keep = b.input('encoder_attention_mask', { dtype: 'bool', shape: [B, c.text] });
    const ones = b.constant(Tensor.from('bool', [B, c.image], new Array<number>(B * c.image).fill(1)), 'image_valid');
    const keys = one('Reshape', [one('Concat', [keep, ones], { axis: int(1) }), b.constant(i64([B, 1, 1, L]))]);
    const band: number[] = [];
    for (let i = 0; i < L; i++) for (let j = 0; j < L; j++) band.push(allowed({ ...c, batch: 1 }, -10, i, j) ? 1 : 0);
    mask = one('And', [keys, b.constant(Tensor.from('bool', [L, L], band), 'structure')]);
  } else {
    mask = b.input('attention_mask', { dtype: c.mask === 'input-float' ? 'f32' : 'bool', shape: maskShape(c) });
  }
  const w = (name: string): Value => b.constant(randomTensor([D, D], rand, 1 / Math.sqrt(D)), name);
  const x = one('Concat', [txt, img], { axis: int(1) });
  const heads = (v: Value): Value => one('Transpose', [one('Reshape', [v, b.constant(i64([B, L, N, H]))])], { perm: { kind: 'ints', value: [0, 2, 1, 3] } });
  const q = heads(one('MatMul', [x, w('wq')]));
  const kk = heads(one('MatMul', [x, w('wk')]));
  const v = heads(one('MatMul', [x, w('wv')]));
  const o = one('attention', [q, kk, v, mask], { scale: { kind: 'float', value: 1 / Math.sqrt(H) }, numHeads: int(N), kvHeads: int(N) });
  const merged = one('Reshape', [one('Transpose', [o], { perm: { kind: 'ints', value: [0, 2, 1, 3] } }), b.constant(i64([B, L, D]))]);
  const out = b.add('MatMul', [merged, w('wo')], {}, { name: 'proj_out', outputNames: ['out'] })[0]!;
  return new Module(b.build([out]), { '': 18 }, { irVersion: 10, producerName: 'paradit-tests', producerVersion: '0.1.0' });
}

function inputs(c: Case): Tensor[] {
  const rand = rng(99);
  const D = N * H;
  const ins = [randomTensor([c.batch, c.text, D], rand), randomTensor([c.batch, c.image, D], rand)];
  if (c.mask === 'computed') {
    const keep: number[] = [];
    for (let b = 0; b < c.batch; b++) for (let t = 0; t < c.text; t++) keep.push(t < Math.max(1, c.text - 1 - b) ? 1 : 0);
    ins.push(Tensor.from('bool', [c.batch, c.text], keep));
  } else ins.push(maskTensor(c));
  return ins;
}

const MESHES: readonly [number, number, number][] = [[2, 1, 1], [1, 2, 1], [2, 2, 1], [4, 1, 1], [1, 4, 1], [1, 3, 1], [1, 1, 2], [2, 1, 2]];
const CASES: readonly [string, Case][] = [
  ['bool [B,1,L,L] input, 5 text + 11 image', { batch: 2, text: 5, image: 11, mask: 'input-bool' }],
  ['additive [B,1,L,L] input with -inf, 6 text + 9 image', { batch: 2, text: 6, image: 9, mask: 'input-float' }],
  ['[L,L] input broadcast over batch and heads, 3 text + 13 image', { batch: 2, text: 3, image: 13, mask: 'input-2d' }],
  ['per-head [B,N,L,L] input, 7 text + 10 image', { batch: 2, text: 7, image: 10, mask: 'input-heads' }],
  ['computed in the graph from a [B,T] padding mask and a structure constant, 5 text + 12 image', { batch: 2, text: 5, image: 12, mask: 'computed' }],
];

describe('2-D attention masks on rank-chunk token orders', () => {
  for (const [label, c] of CASES) {
    const m = build(c);
    const ins = inputs(c);
    const ref = interpret(m, ins)[0]!;
    test.each(MESHES)(`${label}: U%i R%i C%i`, (u, r, cfg) => {
      const mesh = makeMesh({ ulysses: u, ring: r, cfg });
      const out = compileForMesh(m, mesh, { prepared: true });
      verify(out);
      // Split, not run whole: the attention runs on this rank's query rows only.
      const att = out.graph.nodes.filter((n) => n.op === 'attention' || n.op === 'attention_lse');
      expect(att.length).toBe(r);
      const P = u * r;
      // Each rank holds 1/P of the query rows x heads of the padded joint sequence.
      const ordered = P > 1 ? orderedLength({ segments: [c.text, c.image], chunks: P }) : c.text + c.image;
      for (const n of att) {
        const rows = n.inputs[0]!.shape[2] as number;
        expect(rows * (n.inputs[0]!.shape[1] as number) * P).toBe(ordered * N);
        const mask = n.inputs[3]!;
        // Mask rows follow the query block; its columns the key block present at this step.
        expect(mask.shape[mask.shape.length - 2]).toBe(rows);
        expect(mask.shape[mask.shape.length - 1]).toBe(n.inputs[1]!.shape[2]);
      }
      expect(relL2(runSimulated(out, mesh, ins)[0]!, ref)).toBeLessThan(1e-5);
    });
  }

  test('the mask carries one joint token order on rows and columns (printed @tokens(2,3:...))', () => {
    const c: Case = { batch: 1, text: 5, image: 11, mask: 'input-bool' };
    const out = compileForMesh(build(c), makeMesh({ ring: 2 }), { prepared: true });
    const step0 = out.graph.nodes.find((n) => n.op === 'attention_lse')!;
    // The mask path: rows into the joint order and split (this rank's 9 rows), then columns into
    // the joint order, key padding masked, then one column block per ring step.
    const text = printModule(out);
    const path = [
      /to_token_order\(%2\) \{axis=2, chunks=2, fill=1\.0, segments=\[5,11\]\} : bool\[1,1,18,16\]@replicated@tokens\(2:\[5,11\]\/2\)/,
      /shard_slice\(%\d+\) \{axis=2, groupSize=2, meshAxis="ring"\} : bool\[1,1,9,16\]@shard\(2,ring\)@tokens\(2:\[5,11\]\/2\)/,
      /to_token_order\(%\d+\) \{axis=3, chunks=2, fill=1\.0, segments=\[5,11\]\} : bool\[1,1,9,18\]@shard\(2,ring\)@tokens\(2,3:\[5,11\]\/2\)/,
      /And\(%\d+, %\d+\) : bool\[1,1,9,18\]@shard\(2,ring\)@tokens\(2,3:\[5,11\]\/2\)/,
      /shard_slice\(%\d+\) \{axis=3, groupSize=2, meshAxis="ring", shift=1\} : bool\[1,1,9,9\]@shard\(2,ring\)@shard\(3,ring\)@tokens\(2,3:\[5,11\]\/2\)/,
    ];
    for (const re of path) expect(text).toMatch(re);
    const p = step0.inputs[3]!.type.placement;
    expect(p).toEqual({ kind: 'sharded', axis: 2, meshAxis: 'ring', also: [{ axis: 3, meshAxis: 'ring' }], tokens: { axis: 2, segments: [5, 11], chunks: 2, also: [3] } });
  });
});

describe('2-D additive bias in ONNX spelling (MatMul, Add, Softmax)', () => {
  // 3 text + 6 image tokens, 2 heads; the bias hides every fifth (query, key) pair.
  const m = parseModule(`graph main(%t: f32[1,3,8], %i: f32[1,6,8], %bias: f32[1,1,9,9]) {
    %s = const i64[4] [1, 9, 2, 4]
    %x = Concat(%t, %i) {axis=1}
    %r = Reshape(%x, %s)
    %q = Transpose(%r) {perm=[0,2,1,3]}
    %kt = Transpose(%r) {perm=[0,2,3,1]}
    %sc = MatMul(%q, %kt)
    %b = Add(%sc, %bias)
    %p = Softmax(%b) {axis=-1}
    %o = MatMul(%p, %q)
    return %o
  }`);
  const rand = rng(4);
  const bias = Array.from({ length: 81 }, (_, i) => (i % 5 === 0 ? -1e9 : rand()));
  const ins = [randomTensor([1, 3, 8], rand), randomTensor([1, 6, 8], rand), Tensor.from('f32', [1, 1, 9, 9], bias)];
  const ref = interpret(m, ins)[0]!;
  test.each([[2, 1], [1, 2], [2, 2], [1, 3]])('unfused and fused (default pipeline): U%i R%i', (u, r) => {
    const mesh = makeMesh({ ulysses: u, ring: r });
    for (const prepared of [true, false]) {
      const out = compileForMesh(m, mesh, { prepared });
      expect(relL2(runSimulated(out, mesh, ins)[0]!, ref)).toBeLessThan(1e-5);
    }
  });
});

describe('a 2-D mask on a cross-attention over unsplit text (Wan-style), 7 image tokens', () => {
  // Rows follow the split (padded) image queries; the text keys and the mask's columns stay whole.
  const m = parseModule(`graph main(%x: f32[1,2,7,4], %t: f32[1,2,3,4], %m: bool[1,1,7,3]) {
    %a = attention(%x, %x, %x) {kvHeads=2, numHeads=2, scale=0.5}
    %c = attention(%a, %t, %t, %m) {kvHeads=2, numHeads=2, scale=0.5}
    return %c
  }`);
  const rand = rng(3);
  const keep = Array.from({ length: 21 }, (_, i) => (i % 3 === 1 || i % 4 === 0 ? 1 : 0));
  const ins = [randomTensor([1, 2, 7, 4], rand), randomTensor([1, 2, 3, 4], rand), Tensor.from('bool', [1, 1, 7, 3], keep)];
  const ref = interpret(m, ins)[0]!;
  test.each([[2, 1], [1, 2], [2, 2], [1, 4]])('U%i R%i: the cross-attention runs on local query rows only', (u, r) => {
    const mesh = makeMesh({ ulysses: u, ring: r });
    const out = compileForMesh(m, mesh, { prepared: true });
    const cross = out.graph.nodes.filter((n) => n.op === 'attention' && out.graph.inputs.includes(n.inputs[1]!));
    expect(cross).toHaveLength(1);
    expect(cross[0]!.inputs[3]!.shape).toEqual([1, 1, orderedLength({ segments: [7], chunks: u * r }) / (u * r), 3]);
    expect(relL2(runSimulated(out, mesh, ins)[0]!, ref)).toBeLessThan(1e-5);
  });
});
