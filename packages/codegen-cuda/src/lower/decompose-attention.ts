/**
 * decompose-attention: rewrites the attention nodes the flash kernel cannot run (fp32 plans, head
 * dims other than 64/128, odd masks) into two batched GEMMs around an fp32 softmax, which the
 * gemm lowering and the fragment emitter handle. Scores and probabilities are fp32 (fp32
 * statistics whatever the storage dtype); a fully masked row gives zeros like the fused op.
 *
 *   before: %o = attention(%q, %k, %v, %m) {scale=s} : bf16[B,N,S,H]
 *   after:  %s = MatMul(Cast(%q){f32}, Transpose(Cast(%k){f32}){0,1,3,2}) ; %s2 = Mul(%s, s)
 *           %p = Softmax(Where(%m, %s2, -inf)) ; %p2 = Where(IsNaN(%p), 0, %p)
 *           %o = MatMul(Cast(%p2){bf16}, %v)
 */
import { Module, Node, Tensor, Value, dtypeToOnnx } from '@paradit/ir';
import { rebuildModule } from '@paradit/ir';
import type { ReplayCtx } from '@paradit/ir';
import { flashSupported, isAttentionOp } from './attention';
import type { Pass } from '@paradit/passes';

const dims = (v: Value): number[] => v.shape as number[];

function decompose(n: Node, ctx: ReplayCtx): Value[] {
  const b = ctx.builder;
  const name = n.name || 'attention';
  let step = 0;
  const add = (op: string, ins: (Value | null)[], attrs = {}): Value => b.add(op, ins, attrs, { name: `${name}/${op.toLowerCase()}_${step++}` })[0]!;
  const cast = (x: Value, d: string): Value => (x.dtype === d ? x : add('Cast', [x], { to: { kind: 'int', value: dtypeToOnnx(d as 'f32') } }));
  const [q0, k0, v0, m0] = n.inputs.map((v) => (v ? ctx.map(v) : null)) as [Value, Value, Value, Value | null | undefined];
  const dt = q0.dtype;
  const N = dims(q0)[1]!;
  const Nkv = dims(k0)[1]!;
  // Grouped-query attention: repeat each kv head N/Nkv times so every query head has its own.
  const repeatHeads = (x: Value): Value => {
    if (Nkv === N) return x;
    const [B, , S, H] = dims(x) as [number, number, number, number];
    const g = N / Nkv;
    const u = add('Unsqueeze', [x, b.constant(Tensor.from('i64', [1], [2]))]);
    const e = add('Expand', [u, b.constant(Tensor.from('i64', [5], [B, Nkv, g, S, H]))]);
    return add('Reshape', [e, b.constant(Tensor.from('i64', [4], [B, N, S, H]))]);
  };
  const q = cast(q0, 'f32');
  const k = repeatHeads(cast(k0, 'f32'));
  const v = repeatHeads(v0);
  const kt = add('Transpose', [k], { perm: { kind: 'ints', value: [0, 1, 3, 2] } });
  const scaleAttr = n.attrs['scale'];
  const scale = scaleAttr?.kind === 'float' ? scaleAttr.value : 1 / Math.sqrt(dims(q0)[3]!);
  let s = add('Mul', [add('MatMul', [q, kt]), b.constant(Tensor.scalar('f32', scale))]);
  if (m0) {
    s = m0.dtype === 'bool' ? add('Where', [m0, s, b.constant(Tensor.scalar('f32', -Infinity))]) : add('Add', [s, cast(m0, 'f32')]);
  }
  if (n.op === 'attention_lse') return withLse(n, ctx, s, v, add);
  let p = add('Softmax', [s], { axis: { kind: 'int', value: -1 } });
  if (m0) p = add('Where', [add('IsNaN', [p]), b.constant(Tensor.scalar('f32', 0)), p]);
  const o = b.add('MatMul', [cast(p, dt), v], {}, { name, outputNames: [n.outputs[0]!.name] })[0]!;
  return [o];
}

/**
 * A ring step's attention with its row log-sum-exp, from the fp32 scores s: mx = max_j s (0 when
 * the whole row is masked, so nothing is -inf - -inf), p = exp(s - mx), l = sum_j p,
 * o = (p / l) v (0 when l = 0), lse = mx + log(l) (-inf when l = 0).
 */
function withLse(n: Node, ctx: ReplayCtx, s: Value, v: Value, add: (op: string, ins: (Value | null)[], attrs?: object) => Value): Value[] {
  const b = ctx.builder;
  const name = n.name || 'attention_lse';
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
  const o = b.add('MatMul', [od === 'f32' ? pn : add('Cast', [pn], { to: { kind: 'int', value: dtypeToOnnx(od) } }), v.dtype === od ? v : add('Cast', [v], { to: { kind: 'int', value: dtypeToOnnx(od) } })], {}, { name, outputNames: [n.outputs[0]!.name] })[0]!;
  const lse = b.add('Squeeze', [add('Add', [add('Log', [l]), m]), b.constant(Tensor.from('i64', [1], [-1]))], {}, { name: `${name}/lse`, outputNames: [n.outputs[1]!.name] })[0]!;
  return [o, lse];
}

/**
 * Decomposes every attention node that `flashSupported` rejects (every one with `all`, when the
 * flash kernel is off); returns `m` when there is none.
 */
export function decomposeAttention(m: Module, opts: { readonly all?: boolean } = {}): Module {
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
  return rebuildModule(m, { hook: (n, ctx) => (wanted(n) ? decompose(n, ctx) : undefined) });
}

/** The pass form of `decomposeAttention` (`all`: every attention, as `--no-flash` asks). */
export function decomposeAttentionPass(opts: { readonly all?: boolean } = {}): Pass {
  return { name: 'decompose-attention', description: 'attention the flash kernel cannot run becomes GEMMs and an fp32 softmax', run: (m) => decomposeAttention(m, opts) };
}
