/**
 * decompose-attention: rewrites the attention nodes the flash kernel cannot run (fp32 plans, head
 * dims other than 64/128, odd masks) into two batched GEMMs around an fp32 softmax, which the
 * gemm lowering and the fragment emitter handle. Scores and probabilities are fp32 (fp32
 * statistics whatever the storage dtype); a fully masked row gives zeros like the fused op.
 * When the whole [B,N,Sq,Skv] fp32 score matrix would exceed a budget (64 MiB by default; FLUX's
 * VAE mid block at 1024x1024 has 16384^2 scores, 1 GiB), the queries are taken in chunks of C rows
 * (Slice of Q on axis 2, the same steps per chunk, the chunk outputs Concat'ed on axis 2), so one
 * chunk's [B,N,C,Skv] scores are live at a time.
 *
 *   before: %o = attention(%q, %k, %v, %m) {scale=s} : bf16[B,N,S,H]
 *   after:  %s = MatMul(Cast(%q){f32}, Transpose(Cast(%k){f32}){0,1,3,2}) ; %s2 = Mul(%s, s)
 *           %p = Softmax(Where(%m, %s2, -inf)) ; %p2 = Where(IsNaN(%p), 0, %p)
 *           %o = MatMul(Cast(%p2){bf16}, %v)
 *   chunked: %qi = Slice(Cast(%q){f32}, [i*C], [(i+1)*C], axes=[2]) ; (the steps above on %qi -> %oi)
 *           %o = Concat(%o0, %o1, ...) {axis=2}
 */
import { Module, Node, Tensor, Value, dtypeToOnnx } from '@paradit/ir';
import { rebuildModule } from '@paradit/ir';
import type { Attrs, ReplayCtx } from '@paradit/ir';
import { flashSupported, isAttentionOp } from './attention';
import type { Pass } from '@paradit/passes';

const dims = (v: Value): number[] => v.shape as number[];

/** Default bound on one query chunk's fp32 scores (B*N*C*Skv*4 bytes): 64 MiB. */
export const DEFAULT_SCORE_BUDGET_BYTES = 64 * 1024 * 1024;

/**
 * Query rows per chunk so that one chunk's fp32 scores [B, N, C, Skv] fit `budget` bytes: all of
 * Sq when they fit whole, else the largest C under the budget, a multiple of 64 when C >= 64 (GEMM
 * tiles), at least 1. FLUX's VAE mid block at 1024x1024 (B = N = 1, S = 16384): C = 1024, 16 chunks.
 */
export function queryChunkRows(b: number, n: number, sq: number, skv: number, budget: number): number {
  const perRow = b * n * skv * 4;
  if (perRow * sq <= budget) return sq;
  const c = Math.max(1, Math.floor(budget / perRow));
  return c >= 64 ? c - (c % 64) : c;
}

type Add = (op: string, ins: (Value | null)[], attrs?: Attrs) => Value;

/** Names the final values of a node's rewrite carry (its outputs' names), when they are final. */
interface Final {
  readonly name: string;
  readonly outNames: readonly string[];
}

function decompose(n: Node, ctx: ReplayCtx, budget: number): Value[] {
  const b = ctx.builder;
  const name = n.name || 'attention';
  let step = 0;
  const add: Add = (op, ins, attrs = {}) => b.add(op, ins, attrs, { name: `${name}/${op.toLowerCase()}_${step++}` })[0]!;
  const cast = (x: Value, d: string): Value => (x.dtype === d ? x : add('Cast', [x], { to: { kind: 'int', value: dtypeToOnnx(d as 'f32') } }));
  const [q0, k0, v0, m0] = n.inputs.map((v) => (v ? ctx.map(v) : null)) as [Value, Value, Value, Value | null | undefined];
  const dt = q0.dtype;
  const [B, N, Sq] = dims(q0) as [number, number, number];
  const Nkv = dims(k0)[1]!;
  const Skv = dims(k0)[2]!;
  // Grouped-query attention: repeat each kv head N/Nkv times so every query head has its own.
  const repeatHeads = (x: Value): Value => {
    if (Nkv === N) return x;
    const [Bx, , S, H] = dims(x) as [number, number, number, number];
    const g = N / Nkv;
    const u = add('Unsqueeze', [x, b.constant(Tensor.from('i64', [1], [2]))]);
    const e = add('Expand', [u, b.constant(Tensor.from('i64', [5], [Bx, Nkv, g, S, H]))]);
    return add('Reshape', [e, b.constant(Tensor.from('i64', [4], [Bx, N, S, H]))]);
  };
  const q = cast(q0, 'f32');
  const k = repeatHeads(cast(k0, 'f32'));
  const v = repeatHeads(v0);
  const kt = add('Transpose', [k], { perm: { kind: 'ints', value: [0, 1, 3, 2] } });
  const scaleAttr = n.attrs['scale'];
  const scale = scaleAttr?.kind === 'float' ? scaleAttr.value : 1 / Math.sqrt(dims(q0)[3]!);
  const i64 = (x: number): Value => b.constant(Tensor.from('i64', [1], [x]));
  // Rows [r0, r1) of x on `axis` (Slice's input form from opset 10, its attribute form before).
  const rows = (x: Value, axis: number, r0: number, r1: number): Value =>
    b.opset >= 10
      ? add('Slice', [x, i64(r0), i64(r1), i64(axis)])
      : add('Slice', [x], { starts: { kind: 'ints', value: [r0] }, ends: { kind: 'ints', value: [r1] }, axes: { kind: 'ints', value: [axis] } });
  // A mask with a query axis of its own (not broadcast) is sliced with the queries.
  const maskRows = (r0: number, r1: number): Value | null => {
    if (!m0) return null;
    const md = dims(m0);
    return md.length >= 2 && md[md.length - 2] === Sq && Sq > 1 ? rows(m0, md.length - 2, r0, r1) : m0;
  };
  // Query rows [r0, r1): scores, softmax, P.V (and the lse of a ring step).
  const chunk = (r0: number, r1: number, final?: Final): Value[] => {
    const qc = r0 === 0 && r1 === Sq ? q : rows(q, 2, r0, r1);
    const mc = r0 === 0 && r1 === Sq ? (m0 ?? null) : maskRows(r0, r1);
    let s = add('Mul', [add('MatMul', [qc, kt]), b.constant(Tensor.scalar('f32', scale))]);
    if (mc) {
      s = mc.dtype === 'bool' ? add('Where', [mc, s, b.constant(Tensor.scalar('f32', -Infinity))]) : add('Add', [s, cast(mc, 'f32')]);
    }
    if (n.op === 'attention_lse') return withLse(n, ctx, s, v, add, final);
    let p = add('Softmax', [s], { axis: { kind: 'int', value: -1 } });
    if (mc) p = add('Where', [add('IsNaN', [p]), b.constant(Tensor.scalar('f32', 0)), p]);
    const ins = [cast(p, dt), v];
    return [final ? b.add('MatMul', ins, {}, { name: final.name, outputNames: [final.outNames[0]!] })[0]! : add('MatMul', ins)];
  };
  const outNames = n.outputs.map((o) => o.name);
  const C = queryChunkRows(B, N, Sq, Skv, budget);
  if (C >= Sq) return chunk(0, Sq, { name, outNames });
  // Query-chunked: each chunk's scores die before the next chunk's are made (node order is the
  // schedule), so the arena holds one [B, N, C, Skv] score block instead of [B, N, Sq, Skv].
  // Rows are independent in the softmax and in P.V, so every output row is computed as unchunked.
  const parts: Value[][] = [];
  for (let r0 = 0; r0 < Sq; r0 += C) parts.push(chunk(r0, Math.min(Sq, r0 + C)));
  const axis = { axis: { kind: 'int' as const, value: 2 } };
  return n.outputs.map((_, i) =>
    b.add('Concat', parts.map((p) => p[i]!), axis, { name: i === 0 ? name : `${name}/lse`, outputNames: [outNames[i]!] })[0]!,
  );
}

/**
 * A ring step's attention with its row log-sum-exp, from the fp32 scores s: mx = max_j s (0 when
 * the whole row is masked, so nothing is -inf - -inf), p = exp(s - mx), l = sum_j p,
 * o = (p / l) v (0 when l = 0), lse = mx + log(l) (-inf when l = 0).
 */
function withLse(n: Node, ctx: ReplayCtx, s: Value, v: Value, add: Add, final?: Final): Value[] {
  const b = ctx.builder;
  // Reduce over the last axis: axes are an attribute before the op's opset 18 (ReduceSum: 13), an input from then on.
  const reduce = (op: 'ReduceMax' | 'ReduceSum', x: Value): Value => {
    const since = op === 'ReduceSum' ? 13 : 18;
    const keep = { keepdims: { kind: 'int' as const, value: 1 } };
    if (b.opset >= since) return add(op, [x, b.constant(Tensor.from('i64', [1], [-1]))], keep);
    return add(op, [x], { ...keep, axes: { kind: 'ints' as const, value: [-1] } });
  };
  const zero = b.constant(Tensor.scalar('f32', 0));
  const mx = reduce('ReduceMax', s);
  const m = add('Where', [add('IsInf', [mx]), zero, mx]);
  const p = add('Exp', [add('Sub', [s, m])]);
  const l = reduce('ReduceSum', p);
  const safe = add('Where', [add('Equal', [l, zero]), b.constant(Tensor.scalar('f32', 1)), l]);
  const od = n.outputs[0]!.dtype;
  const pn = add('Div', [p, safe]);
  const oIns = [od === 'f32' ? pn : add('Cast', [pn], { to: { kind: 'int', value: dtypeToOnnx(od) } }), v.dtype === od ? v : add('Cast', [v], { to: { kind: 'int', value: dtypeToOnnx(od) } })];
  const lseIns = [add('Add', [add('Log', [l]), m]), b.constant(Tensor.from('i64', [1], [-1]))];
  if (!final) return [add('MatMul', oIns), add('Squeeze', lseIns)];
  const o = b.add('MatMul', oIns, {}, { name: final.name, outputNames: [final.outNames[0]!] })[0]!;
  const lse = b.add('Squeeze', lseIns, {}, { name: `${final.name}/lse`, outputNames: [final.outNames[1]!] })[0]!;
  return [o, lse];
}

export interface DecomposeAttentionOptions {
  /** Decompose every attention node (the flash kernel is off). */
  readonly all?: boolean;
  /** Bound on one query chunk's fp32 scores in bytes (default DEFAULT_SCORE_BUDGET_BYTES). */
  readonly scoreBudgetBytes?: number;
}

/**
 * Decomposes every attention node that `flashSupported` rejects (every one with `all`, when the
 * flash kernel is off); returns `m` when there is none.
 */
export function decomposeAttention(m: Module, opts: DecomposeAttentionOptions = {}): Module {
  const wanted = (n: Node): boolean => isAttentionOp(n.op) && (opts.all === true || !flashSupported(n));
  let any = false;
  const visit = (nodes: readonly Node[]): void => {
    for (const n of nodes) {
      if (wanted(n)) any = true;
      for (const g of n.subgraphs()) visit(g.nodes);
    }
  };
  visit(m.graph.nodes);
  if (!any) return m;
  const budget = opts.scoreBudgetBytes ?? DEFAULT_SCORE_BUDGET_BYTES;
  if (!(budget > 0)) throw new Error(`decompose-attention: the score budget must be a positive byte count, got ${budget}`);
  return rebuildModule(m, { hook: (n, ctx) => (wanted(n) ? decompose(n, ctx, budget) : undefined) });
}

/** The pass form of `decomposeAttention` (`all`: every attention, as `--no-flash` asks). */
export function decomposeAttentionPass(opts: DecomposeAttentionOptions = {}): Pass {
  return { name: 'decompose-attention', description: 'attention the flash kernel cannot run becomes GEMMs and an fp32 softmax', run: (m) => decomposeAttention(m, opts) };
}
