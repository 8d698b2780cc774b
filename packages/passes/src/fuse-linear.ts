/**
 * fuse-linear: projections by a constant weight become `linear(x, w, bias?) {transB}`.
 *
 * Requires: constants folded (a transposed weight is a constant, or a Transpose of one).
 * Ensures: MatMul(x, W) with a constant 2-D W, its bias Add, and Gemm (alpha = beta = 1,
 *   transA = 0, bias [M] or [1,M]) are linear ops; MatMuls of two activations (attention) are
 *   left alone.
 *
 *   Before:  %h = MatMul(%x, %W)           # x [B,S,K], W [K,M] constant
 *            %y = Add(%h, %bias)           # bias [M] constant
 *   After:   %y = linear(%x, %W, %bias) {transB=0}
 *
 *   Before:  %y = Gemm(%x, %W, %bias) {transB=1}
 *   After:   %y = linear(%x, %W, %bias) {transB=1}
 */
import type { Node, Value } from '@paradit/ir';
import { isFloat } from '@paradit/ir';
import type { GraphView, RewriteBuilder, RewriteRule } from './rewrite';
import { intAttr, sameShape } from './rewrite';
import { rewritePass } from './rewriter';
import { fuseTo, orders } from './fusion-match';

/** A constant weight, or Transpose(constant 2-D) read as transB. */
function weightOf(view: GraphView, w: Value): { readonly w: Value; readonly transB: boolean } | undefined {
  if (w.shape.length !== 2 || !isFloat(w.dtype)) return undefined;
  if (w.constant) return { w, transB: false };
  const t = view.producerOf(w, 'Transpose');
  const src = t?.inputs[0];
  const perm = t?.attrs['perm'];
  if (src && src.constant && src.shape.length === 2 && (!perm || (perm.kind === 'ints' && perm.value[0] === 1))) return { w: src, transB: true };
  return undefined;
}

/** A constant bias usable as [M]: [M] or [1,...,1,M]. */
function biasOf(b: Value, M: number | string): boolean {
  const s = b.shape;
  return !!b.constant && s.length >= 1 && s[s.length - 1] === M && s.slice(0, -1).every((d) => d === 1);
}

function asVector(b: RewriteBuilder, bias: Value): Value | undefined {
  return bias.shape.length === 1 ? bias : b.reshape(bias, [bias.shape[bias.shape.length - 1] as number]);
}

function attrNum(n: Node, name: string, def: number): number {
  const a = n.attrs[name];
  return a && (a.kind === 'int' || a.kind === 'float') ? a.value : def;
}

// MatMul(x, W) -> linear(x, W) {transB=0};  MatMul(x, Transpose(W)) -> linear(x, W) {transB=1}
const matmulToLinear: RewriteRule = (n, view) => {
  if (n.op !== 'MatMul') return undefined;
  const [x, w] = n.inputs as [Value, Value];
  const wt = weightOf(view, w);
  if (!wt || x.shape.length < 1 || x.dtype !== w.dtype || x.constant) return undefined;
  return fuseTo(n, (b) => b.op('linear', [x, wt.w], { transB: intAttr(wt.transB ? 1 : 0) }));
};

// Add(linear(x, W), bias) -> linear(x, W, bias)
const absorbLinearBias: RewriteRule = (n, view) => {
  if (n.op !== 'Add') return undefined;
  for (const [y, bias] of orders(n)) {
    const lin = view.producerOf(y, 'linear');
    if (!lin || lin.inputs[2] || !view.hasSingleUser(y) || bias.dtype !== y.dtype) continue;
    if (!biasOf(bias, y.shape[y.shape.length - 1]!) || !sameShape(n.outputs[0]!.shape, y.shape)) continue;
    return fuseTo(n, (b) => b.op('linear', [lin.inputs[0], lin.inputs[1], asVector(b, bias)], lin.attrs));
  }
  return undefined;
};

// Gemm(x, W, bias?) {alpha=1, beta=1, transA=0, transB} -> linear(x, W, bias) {transB}
const gemmToLinear: RewriteRule = (n) => {
  if (n.op !== 'Gemm' || attrNum(n, 'alpha', 1) !== 1 || attrNum(n, 'transA', 0) !== 0) return undefined;
  const [x, w, c] = n.inputs as [Value, Value, Value | null | undefined];
  const transB = attrNum(n, 'transB', 0) === 1;
  const M = transB ? w.shape[0]! : w.shape[1]!;
  if (c && (attrNum(n, 'beta', 1) !== 1 || c.shape.length < 1 || c.shape[c.shape.length - 1] !== M || !c.shape.slice(0, -1).every((d) => d === 1))) return undefined;
  if (x.dtype !== w.dtype || (c && c.dtype !== x.dtype)) return undefined;
  return fuseTo(n, (b) => b.op('linear', [x, w, c ? asVector(b, c) : undefined], { transB: intAttr(transB ? 1 : 0) }));
};

const fuseLinearRules: readonly RewriteRule[] = [gemmToLinear, matmulToLinear, absorbLinearBias];

export const fuseLinear = rewritePass('fuse-linear', 'Fuses MatMul by a constant weight (+ bias Add) and Gemm into linear ops', fuseLinearRules);
