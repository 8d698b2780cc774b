/**
 * fuse-norms: RMSNorm and LayerNorm over the last axis become `rms_norm` / `layer_norm`, from the
 * ONNX ops (RMSNormalization, LayerNormalization) and from their decomposed spellings, including
 * per-head q/k norms on [B,S,N,H] or [B,N,S,H] (a last-axis norm like any other).
 *
 * Requires: constants folded (eps, exponents and affine weights are constants).
 * Ensures: matched norms are single ops; constant affine weights/biases are absorbed; an fp32
 *   norm between an up-Cast and a down-Cast becomes a norm on the narrow input (the op computes
 *   its statistics in fp32 anyway). All-ones weights and all-zero biases are dropped.
 *
 *   Before:  %m = ReduceMean(Pow(%x, 2)) {axes=[-1]}
 *            %r = Reciprocal(Sqrt(Add(%m, 1e-6)))
 *            %y = Mul(Mul(%x, %r), %w)
 *   After:   %y = rms_norm(%x, %w) {eps=1e-6}
 */
import type { Node, Value } from '@paradit/ir';
import { isFloat } from '@paradit/ir';
import type { GraphView, RewriteBuilder, RewriteRule } from './rewrite';
import { sameShape } from './rewrite';
import { rewritePass } from './rewriter';
import { fuseTo, isConst, isMeanOverLastAxis, orders, scalarConst, squaredValue } from './fusion-match';

const EPS = (eps: number): { readonly kind: 'float'; readonly value: number } => ({ kind: 'float', value: eps });

/** Float attribute with a default. */
function floatAttr(n: Node, name: string, def: number): number {
  const a = n.attrs[name];
  return a && (a.kind === 'float' || a.kind === 'int') ? a.value : def;
}

/** True when an ONNX norm's `axis` attribute selects only the last axis. */
function normalizesLastAxis(n: Node): boolean {
  const rank = n.inputs[0]!.shape.length;
  const a = n.attrs['axis'];
  const axis = a && a.kind === 'int' ? a.value : -1;
  return (axis < 0 ? axis + rank : axis) === rank - 1;
}

/** An affine operand usable as a [D] vector: [D] or [1,..,1,D], D = x's last dim. */
function affineVector(x: Value, w: Value | null | undefined): boolean {
  if (!w) return true;
  const D = x.shape[x.shape.length - 1];
  const s = w.shape;
  return s.length >= 1 && s[s.length - 1] === D && s.slice(0, -1).every((d) => d === 1) && s.length <= x.shape.length;
}

/** w as a [D] vector (a Reshape when it has leading 1s). */
function asVector(b: RewriteBuilder, w: Value | null | undefined): Value | undefined {
  if (!w) return undefined;
  if (w.shape.length === 1) return w;
  return b.reshape(w, [w.shape[w.shape.length - 1] as number]);
}

/** Drops a constant affine operand that does nothing (all ones for a weight, all zeros for a bias). */
function useful(view: GraphView, w: Value | null | undefined, neutral: number): Value | undefined {
  if (!w) return undefined;
  return isConst(view, w, neutral) ? undefined : w;
}

// RMSNormalization(x, w) {axis=-1, epsilon} -> rms_norm(x, w) {eps}
const fromOnnxRmsNorm: RewriteRule = (n, view) => {
  if (n.op !== 'RMSNormalization' || n.outputs.length !== 1 || !normalizesLastAxis(n)) return undefined;
  const [x, w] = n.inputs as [Value, Value | null];
  if (!affineVector(x, w)) return undefined;
  return fuseTo(n, (b) => b.op('rms_norm', [x, asVector(b, useful(view, w, 1))], { eps: EPS(floatAttr(n, 'epsilon', 1e-5)) }));
};

// LayerNormalization(x, w, bias?) {axis=-1, epsilon} -> layer_norm(x, w, bias) {eps}
const fromOnnxLayerNorm: RewriteRule = (n, view) => {
  if (n.op !== 'LayerNormalization' || !normalizesLastAxis(n)) return undefined;
  if (n.outputs.slice(1).some((o) => view.users(o).length > 0 || view.isGraphOutput(o))) return undefined;
  const [x, w, bias] = n.inputs as [Value, Value | null, Value | null | undefined];
  if (!affineVector(x, w) || !affineVector(x, bias)) return undefined;
  return fuseTo(n, (b) => [
    b.op('layer_norm', [x, asVector(b, useful(view, w, 1)), asVector(b, useful(view, bias, 0))], { eps: EPS(floatAttr(n, 'epsilon', 1e-5)) }),
    ...n.outputs.slice(1),
  ]);
};

/** mean((t)^2) + eps under a Sqrt: returns t and eps for `Add(ReduceMean(t^2), eps)` (or no Add: eps 0). */
function meanSquarePlusEps(view: GraphView, a: Value): { readonly t: Value; readonly eps: number } | undefined {
  let mean = a;
  let eps = 0;
  const add = view.producerOf(a, 'Add');
  if (add) {
    const hit = orders(add).find(([, e]) => scalarConst(view, e) !== undefined);
    if (!hit) return undefined;
    mean = hit[0];
    eps = scalarConst(view, hit[1])!;
    if (!(eps >= 0)) return undefined;
  }
  const rm = view.producer(mean);
  if (!isMeanOverLastAxis(view, rm)) return undefined;
  const t = squaredValue(view, rm.inputs[0]!);
  return t ? { t, eps } : undefined;
}

/** `d` where r = 1/sqrt(d): Reciprocal(Sqrt(d)), Div(1, Sqrt(d)) or Pow(d, -0.5). */
function rsqrtArg(view: GraphView, r: Value): Value | undefined {
  const p = view.producer(r);
  if (!p) return undefined;
  if (p.op === 'Reciprocal') return view.producerOf(p.inputs[0], 'Sqrt')?.inputs[0] ?? undefined;
  if (p.op === 'Div' && isConst(view, p.inputs[0], 1)) return view.producerOf(p.inputs[1], 'Sqrt')?.inputs[0] ?? undefined;
  if (p.op === 'Pow' && isConst(view, p.inputs[1], -0.5)) return p.inputs[0]!;
  return undefined;
}

/** x when c = Sub(x, ReduceMean(x)) over the last axis. */
function centeredInput(view: GraphView, c: Value): Value | undefined {
  const sub = view.producerOf(c, 'Sub');
  if (!sub) return undefined;
  const mean = view.producer(sub.inputs[1]);
  return isMeanOverLastAxis(view, mean) && mean.inputs[0] === sub.inputs[0] ? sub.inputs[0]! : undefined;
}

// Mul(t, 1/sqrt(mean(t^2) + eps)) or Div(t, sqrt(...)) -> rms_norm(t) {eps}; with t = x - mean(x) -> layer_norm(x) {eps}
const decomposedNorm: RewriteRule = (n, view) => {
  let cands: [Value, Value][] = [];
  if (n.op === 'Mul') cands = orders(n).flatMap(([t, r]) => {
    const d = rsqrtArg(view, r);
    return d ? [[t, d] as [Value, Value]] : [];
  });
  else if (n.op === 'Div') {
    const d = view.producerOf(n.inputs[1], 'Sqrt')?.inputs[0];
    if (d) cands = [[n.inputs[0]!, d]];
  }
  for (const [t, d] of cands) {
    if (!isFloat(t.dtype) || !sameShape(t.shape, n.outputs[0]!.shape)) continue;
    const ms = meanSquarePlusEps(view, d);
    if (!ms) continue;
    const x = centeredInput(view, t);
    if (ms.t === t && !x) return fuseTo(n, (b) => b.op('rms_norm', [t], { eps: EPS(ms.eps) }));
    if (x && (ms.t === t || centeredInput(view, ms.t) === x)) return fuseTo(n, (b) => b.op('layer_norm', [x], { eps: EPS(ms.eps) }));
  }
  return undefined;
};

/** The norm node producing v when it is single-use and (for `free`) has no affine operand yet. */
function bareNorm(view: GraphView, v: Value, ops: readonly string[], free: readonly number[]): Node | undefined {
  const p = view.producer(v);
  if (!p || !ops.includes(p.op) || !view.hasSingleUser(v)) return undefined;
  return free.every((i) => !p.inputs[i]) ? p : undefined;
}

// Mul(rms_norm(x) | layer_norm(x), w) -> rms_norm(x, w) | layer_norm(x, w), for a constant [D] weight
const absorbWeight: RewriteRule = (n, view) => {
  if (n.op !== 'Mul') return undefined;
  for (const [y, w] of orders(n)) {
    const norm = bareNorm(view, y, ['rms_norm', 'layer_norm'], [1, 2]);
    if (!norm || !w.constant || w.dtype !== y.dtype || !affineVector(y, w) || !sameShape(n.outputs[0]!.shape, y.shape)) continue;
    return fuseTo(n, (b) => b.op(norm.op, [norm.inputs[0], asVector(b, w)], norm.attrs));
  }
  return undefined;
};

// Add(layer_norm(x, w?), bias) -> layer_norm(x, w, bias), for a constant [D] bias
const absorbNormBias: RewriteRule = (n, view) => {
  if (n.op !== 'Add') return undefined;
  for (const [y, bias] of orders(n)) {
    const norm = bareNorm(view, y, ['layer_norm'], [2]);
    if (!norm || !bias.constant || bias.dtype !== y.dtype || !affineVector(y, bias) || !sameShape(n.outputs[0]!.shape, y.shape)) continue;
    return fuseTo(n, (b) => b.op('layer_norm', [norm.inputs[0], norm.inputs[1], asVector(b, bias)], norm.attrs));
  }
  return undefined;
};

// Cast(norm(Cast(x -> f32), w?, b?) -> dtype(x)) -> norm(x, w?, b?), for a narrower float x
const narrowCastNorm: RewriteRule = (n, view) => {
  if (n.op !== 'Cast') return undefined;
  const norm = view.producer(n.inputs[0]);
  if (!norm || (norm.op !== 'rms_norm' && norm.op !== 'layer_norm') || !view.hasSingleUser(n.inputs[0]!)) return undefined;
  const up = view.producerOf(norm.inputs[0], 'Cast');
  const x = up?.inputs[0];
  if (!x || x.dtype !== n.outputs[0]!.dtype || !isFloat(x.dtype) || !widens(x.dtype, up.outputs[0]!.dtype)) return undefined;
  return fuseTo(n, (b) => b.op(norm.op, [x, ...norm.inputs.slice(1)], norm.attrs));
};

const WIDTH: Readonly<Record<string, number>> = { f8e4m3fn: 1, f8e4m3fnuz: 1, f8e5m2: 1, f8e5m2fnuz: 1, f16: 2, bf16: 2, f32: 4, f64: 8 };

function widens(from: string, to: string): boolean {
  return (WIDTH[to] ?? 0) > (WIDTH[from] ?? 0);
}

const fuseNormsRules: readonly RewriteRule[] = [
  fromOnnxRmsNorm,
  fromOnnxLayerNorm,
  decomposedNorm,
  absorbWeight,
  absorbNormBias,
  narrowCastNorm,
];

export const fuseNorms = rewritePass('fuse-norms', 'Fuses RMSNorm and LayerNorm (ONNX ops and decomposed forms) into rms_norm / layer_norm', fuseNormsRules);
