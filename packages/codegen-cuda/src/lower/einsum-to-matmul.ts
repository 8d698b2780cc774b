/**
 * einsum-to-matmul: Einsum becomes ops the lowering has (no Einsum kernel exists):
 *   one operand, output a permutation of its letters        -> Transpose
 *   two operands, each letter in the output or contracted   -> Transpose, Reshape, batched MatMul
 *                                                              (a GEMM), Reshape, Transpose
 * Letters are grouped as batch (in A, B and out), m (A and out), n (B and out), k (A and B only).
 * Anything else (repeated letters, ellipses, sums over one operand) stays an Einsum ("no match").
 *
 *   before: %y = Einsum(%x) {equation="nhwpqc->nchpwq"}
 *   after:  %y = Transpose(%x) {perm=[0,5,1,3,2,4]}
 *   before: %y = Einsum(%a: [B,S,K], %b: [K,N]) {equation="bsk,kn->bsn"}
 *   after:  %y = Reshape(MatMul(Reshape(%a, [1,B*S,K]), Reshape(%b, [1,K,N])), [B,S,N])
 */
import { Module, Node, Tensor, Value } from '@paradit/ir';
import { rebuildModule } from '@paradit/ir';
import type { ReplayCtx } from '@paradit/ir';
import type { Pass } from '@paradit/passes';

interface Parsed {
  readonly ins: string[];
  readonly out: string;
}

function parse(n: Node): Parsed | undefined {
  const a = n.attrs['equation'];
  if (a?.kind !== 'string') return undefined;
  const eq = a.value.replace(/\s+/g, '');
  const m = /^([a-zA-Z]+(?:,[a-zA-Z]+)*)->([a-zA-Z]*)$/.exec(eq);
  if (!m) return undefined;
  const ins = m[1]!.split(',');
  const unique = (s: string): boolean => new Set(s).size === s.length;
  if (!ins.every(unique) || !unique(m[2]!) || ins.length !== n.inputs.length) return undefined;
  return { ins, out: m[2]! };
}

/** How `n` lowers, or undefined. */
export function einsumForm(n: Node): 'transpose' | 'matmul' | undefined {
  if (n.op !== 'Einsum') return undefined;
  const p = parse(n);
  if (!p) return undefined;
  if (p.ins.length === 1) {
    const [a] = p.ins as [string];
    return a.length === p.out.length && [...p.out].every((c) => a.includes(c)) ? 'transpose' : undefined;
  }
  if (p.ins.length !== 2) return undefined;
  const [a, b] = p.ins as [string, string];
  // Every letter is kept or contracted between the two operands (no single-operand sums).
  const ok = [...a].every((c) => p.out.includes(c) || b.includes(c)) && [...b].every((c) => p.out.includes(c) || a.includes(c)) && [...p.out].every((c) => a.includes(c) || b.includes(c));
  return ok ? 'matmul' : undefined;
}

const dims = (v: Value): number[] => v.shape as number[];
const prod = (xs: number[]): number => xs.reduce((x, y) => x * y, 1);

function rewrite(n: Node, ctx: ReplayCtx): Value[] {
  const p = parse(n)!;
  const bld = ctx.builder;
  const name = n.name || 'einsum';
  let i = 0;
  const add = (op: string, ins: Value[], attrs = {}): Value => bld.add(op, ins, attrs, { name: `${name}/${op.toLowerCase()}_${i++}` })[0]!;
  const transpose = (x: Value, perm: number[]): Value => (perm.every((q, j) => q === j) ? x : add('Transpose', [x], { perm: { kind: 'ints', value: perm } }));
  const reshape = (x: Value, shape: number[]): Value =>
    dims(x).length === shape.length && dims(x).every((d, j) => d === shape[j]) ? x : add('Reshape', [x, bld.constant(Tensor.from('i64', [shape.length], shape))]);
  const ins = n.inputs.map((v) => ctx.map(v!));
  let y: Value;
  if (p.ins.length === 1) {
    y = transpose(ins[0]!, [...p.out].map((c) => p.ins[0]!.indexOf(c)));
  } else {
    const [a, b] = p.ins as [string, string];
    const [A, B] = ins as [Value, Value];
    const size = new Map<string, number>();
    [...a].forEach((c, j) => size.set(c, dims(A)[j]!));
    [...b].forEach((c, j) => size.set(c, dims(B)[j]!));
    const batch = [...p.out].filter((c) => a.includes(c) && b.includes(c));
    const mL = [...p.out].filter((c) => a.includes(c) && !b.includes(c));
    const nL = [...p.out].filter((c) => b.includes(c) && !a.includes(c));
    const kL = [...a].filter((c) => b.includes(c) && !p.out.includes(c));
    const sz = (ls: string[]): number[] => ls.map((c) => size.get(c)!);
    const A2 = reshape(transpose(A, [...batch, ...mL, ...kL].map((c) => a.indexOf(c))), [prod(sz(batch)), prod(sz(mL)), prod(sz(kL))]);
    const B2 = reshape(transpose(B, [...batch, ...kL, ...nL].map((c) => b.indexOf(c))), [prod(sz(batch)), prod(sz(kL)), prod(sz(nL))]);
    const mm = add('MatMul', [A2, B2]);
    const order = [...batch, ...mL, ...nL];
    y = transpose(reshape(mm, sz(order)), [...p.out].map((c) => order.indexOf(c)));
  }
  // Keep the output name; an Identity is free (a view) when nothing else renamed it.
  return [y === ins[0] ? add('Identity', [y]) : y];
}

export function rewriteEinsums(m: Module): Module {
  const any = (nodes: readonly Node[]): boolean => nodes.some((n) => einsumForm(n) !== undefined || n.subgraphs().some((g) => any(g.nodes)));
  if (!any(m.graph.nodes)) return m;
  return rebuildModule(m, { hook: (n, ctx) => (einsumForm(n) ? rewrite(n, ctx) : undefined) });
}

export const einsumToMatmulPass: Pass = { name: 'einsum-to-matmul', description: 'Einsums become Transposes, or batched MatMuls with layout changes', run: (m) => rewriteEinsums(m) };
