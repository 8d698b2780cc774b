/**
 * GEMM lowering: linear, MatMul (plain and batched), Gemm (2-D, bias C) become cuBLASLt calls
 * over row-major matrix views. A following tanh-GELU that is the result's only reader folds into
 * the epilogue (cuBLASLt has GELU_BIAS with the tanh approximation; it has no erf GELU or SiLU, so
 * those stay separate kernels). Anything else returns undefined ("no match") and is lowered as a
 * fragment kernel.
 *
 *   linear(x [B,S,K], w [K,M], bias [M]) -> gemm m=B*S n=M k=K, a=x [B*S,K], b=w [K,M], bias
 *   MatMul(a [B,N,S,H], b [B,N,H,T])     -> gemm batch=B*N m=S n=T k=H (batch strides S*H, H*T, S*T)
 *   MatMul(q, Transpose(k){..,-1,-2})   -> gemm reading k [.., T, H] with transB (the transpose,
 *                                          when the MatMul is its only reader, runs no kernel)
 *   linear_fp8(q [B,S,K], s, wq [N,K], ws, bias) -> FP8 gemm m=B*S n=N k=K, a=q, b=wq (transB),
 *                                          scaleA=s (per row), scaleB=ws (per column); no folded
 *                                          epilogue (docs/fp8.md)
 */
import type { Node, Value } from '@paradit/ir';
import { attrsOf, numel } from '@paradit/ir';
import type { LGemm, LMatrix } from './program';

const dims = (v: Value): number[] => v.shape as number[];

function view(value: Value, rows: number, cols: number, batchStride = 0): LMatrix {
  return { value, elemOffset: 0, rows, cols, ld: cols, batchStride };
}

interface GemmContext {
  /** The one node reading `v` in this graph when v is not otherwise used (not an output, not captured). */
  soleReader(v: Value): Node | undefined;
  /** The node defining `v` in this graph. */
  producer(v: Value): Node | undefined;
}

/** A Transpose swapping the last two axes whose only reader is `reader`: its input, read transposed. */
function swappedOperand(v: Value, reader: Node, ctx: GemmContext): Node | undefined {
  const t = ctx.producer(v);
  const perm = t?.attrs['perm'];
  if (!t || t.op !== 'Transpose' || perm?.kind !== 'ints' || ctx.soleReader(v) !== reader) return undefined;
  const r = perm.value.length;
  const ok = r >= 2 && perm.value.every((p, i) => (i < r - 2 ? p === i : i === r - 2 ? p === r - 1 : p === r - 2));
  return ok ? t : undefined;
}

function fold(node: Node, out: Value, ctx: GemmContext): { epilogue: LGemm['epilogue']; out: Value; covers: Node[] } {
  // cuBLASLt's GELU epilogues are not used with FP8 operands (unverified there): GELU stays a kernel.
  if (node.op === 'linear_fp8') return { epilogue: 'none', out, covers: [node] };
  const r = ctx.soleReader(out);
  if (r && r.op === 'gelu' && r.inputs[0] === out && attrsOf(r, 'gelu').approximate === 'tanh') return { epilogue: 'gelu_tanh', out: r.outputs[0]!, covers: [node, r] };
  return { epilogue: 'none', out, covers: [node] };
}

function finish(node: Node, g: Omit<LGemm, 'op' | 'covers' | 'ref' | 'epilogue' | 'out'> & { outRows: number; outCols: number; outBatch: number }, ctx: GemmContext, before: Node[]): LGemm {
  const f = fold(node, node.outputs[0]!, ctx);
  const { outRows, outCols, outBatch, ...rest } = g;
  const inputs = [g.a.value, g.b.value, ...(g.bias ? [g.bias] : []), ...(g.scaleA ? [g.scaleA] : []), ...(g.scaleB ? [g.scaleB] : [])];
  const covers = [...before, ...f.covers];
  return {
    op: 'gemm',
    ...rest,
    out: view(f.out, outRows, outCols, outBatch),
    epilogue: f.epilogue,
    covers,
    ref: { nodes: covers, inputs: [...new Set(inputs)], outputs: [f.out] },
  };
}

function sameDtype(vs: readonly (Value | null | undefined)[]): boolean {
  const d = vs.find((v) => v)?.dtype;
  return vs.every((v) => !v || v.dtype === d) && (d === 'f32' || d === 'f16' || d === 'bf16');
}

function linear(node: Node, ctx: GemmContext): LGemm | undefined {
  const [x, w, bias] = node.inputs;
  if (!x || !w || !sameDtype([x, w, bias])) return undefined;
  const xs = dims(x);
  const transB = attrsOf(node, 'linear').transB === 1;
  const K = xs[xs.length - 1]!;
  const M = transB ? dims(w)[0]! : dims(w)[1]!;
  const rows = numel(xs.slice(0, -1));
  if (rows === 0 || K === 0 || M === 0) return undefined;
  return finish(
    node,
    {
      m: rows, n: M, k: K, batch: 1,
      a: view(x, rows, K), transA: false,
      b: transB ? view(w, M, K) : view(w, K, M), transB,
      bias: bias ?? undefined, alpha: 1,
      outRows: rows, outCols: M, outBatch: 0,
    },
    ctx,
    [],
  );
}

function matmul(node: Node, ctx: GemmContext): LGemm | undefined {
  const [a, b] = node.inputs;
  if (!a || !b || !sameDtype([a, b])) return undefined;
  const as = dims(a);
  const bs = dims(b);
  if (as.length < 2 || bs.length < 2) return undefined;
  const [M, K] = as.slice(-2) as [number, number];
  const N = bs[bs.length - 1]!;
  if (M === 0 || K === 0 || N === 0) return undefined;
  const lead = dims(node.outputs[0]!).slice(0, -2);
  const aLead = as.slice(0, -2);
  const bLead = bs.slice(0, -2);
  const batch = numel(lead);
  if (bLead.every((d) => d === 1)) {
    // B shared by every batch: fold A's batch into rows (one big gemm).
    const rows = numel(aLead) * M;
    if (numel(aLead) !== batch) return undefined;
    return finish(node, { m: rows, n: N, k: K, batch: 1, a: view(a, rows, K), transA: false, b: view(b, K, N), transB: false, alpha: 1, outRows: rows, outCols: N, outBatch: 0 }, ctx, []);
  }
  const full = (l: number[]): boolean => l.length === lead.length && l.every((d, i) => d === lead[i]);
  const ones = (l: number[]): boolean => l.every((d) => d === 1);
  const aStride = full(aLead) ? M * K : ones(aLead) ? 0 : -1;
  const bStride = full(bLead) ? K * N : -1;
  if (aStride < 0 || bStride < 0) return undefined;
  // B = Transpose(Bt) over the last two axes (q @ k^T): read Bt [.., N, K] transposed, no copy.
  const swap = swappedOperand(b, node, ctx);
  const bView = swap ? view(swap.inputs[0]!, N, K, bStride) : view(b, K, N, bStride);
  return finish(node, { m: M, n: N, k: K, batch, a: view(a, M, K, aStride), transA: false, b: bView, transB: swap !== undefined, alpha: 1, outRows: M, outCols: N, outBatch: M * N }, ctx, swap ? [swap] : []);
}

function gemmOp(node: Node, ctx: GemmContext): LGemm | undefined {
  const [a, b, c] = node.inputs;
  if (!a || !b || !sameDtype([a, b, c])) return undefined;
  const int = (k: string, d: number): number => (node.attrs[k]?.kind === 'int' ? (node.attrs[k] as { value: number }).value : d);
  const flt = (k: string, d: number): number => (node.attrs[k]?.kind === 'float' ? (node.attrs[k] as { value: number }).value : d);
  const transA = int('transA', 0) === 1;
  const transB = int('transB', 0) === 1;
  const [ar, ac] = dims(a) as [number, number];
  const [br, bc] = dims(b) as [number, number];
  if (dims(a).length !== 2 || dims(b).length !== 2) return undefined;
  const M = transA ? ac : ar;
  const K = transA ? ar : ac;
  const N = transB ? br : bc;
  if (c) {
    const cs = dims(c);
    const isRow = (cs.length === 1 && cs[0] === N) || (cs.length === 2 && cs[0] === 1 && cs[1] === N);
    if (!isRow || flt('beta', 1) !== 1) return undefined;
    if (cs.length === 2) return undefined; // a [1,N] bias would need a view; rare in DiT exports
  }
  return finish(
    node,
    { m: M, n: N, k: K, batch: 1, a: view(a, ar, ac), transA, b: view(b, br, bc), transB, bias: c ?? undefined, alpha: flt('alpha', 1), outRows: M, outCols: N, outBatch: 0 },
    ctx,
    [],
  );
}

/** linear_fp8 (ops/paradit-fp8.ts): e4m3 operands, per-row and per-column f32 scales. */
function linearFp8(node: Node, ctx: GemmContext): LGemm | undefined {
  const [q, s, wq, ws, bias] = node.inputs;
  if (!q || !s || !wq || !ws) return undefined;
  const transB = !(node.attrs['transB']?.kind === 'int' && node.attrs['transB'].value === 0);
  const qs = dims(q);
  const K = qs[qs.length - 1]!;
  const N = transB ? dims(wq)[0]! : dims(wq)[1]!;
  const rows = numel(qs.slice(0, -1));
  if (rows === 0 || K === 0 || N === 0) return undefined;
  return finish(
    node,
    {
      m: rows, n: N, k: K, batch: 1,
      a: view(q, rows, K), transA: false,
      b: transB ? view(wq, N, K) : view(wq, K, N), transB,
      bias: bias ?? undefined, alpha: 1, scaleA: s, scaleB: ws,
      outRows: rows, outCols: N, outBatch: 0,
    },
    ctx,
    [],
  );
}

/** The gemm computing `node` (and a folded epilogue), or undefined when it is not a plain GEMM. */
export function matchGemm(node: Node, ctx: GemmContext): LGemm | undefined {
  switch (node.op) {
    case 'linear':
      return linear(node, ctx);
    case 'linear_fp8':
      return linearFp8(node, ctx);
    case 'MatMul':
      return matmul(node, ctx);
    case 'Gemm':
      return gemmOp(node, ctx);
    default:
      return undefined;
  }
}
