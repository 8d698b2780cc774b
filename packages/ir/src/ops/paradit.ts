/**
 * ParaDiT's own DiT-level ops: the rule table for ParaditOp. The fusion passes
 * (packages/passes/src/fuse-*.ts) create these from the ONNX spellings; they are never imported.
 *
 * Shape letters: B batch, S sequence, N heads, H head dim, D model dim, K/M a linear layer's
 * input/output features; "..." any leading axes.
 *
 * attention, rms_norm/layer_norm and rope live in paradit-attention.ts, paradit-norm.ts and
 * paradit-rope.ts; the pointwise ops and linear are here. Every op computes in fp32 (doubles
 * here) and rounds once to its output dtype.
 */
import type { TensorType } from '../graph';
import { isFloat } from '../dtype';
import { Tensor, numel } from '../tensor';
import type { ParaditOp } from './op-kinds';
import type { InferCtx, OpRule, RuleCtx, RunCtx } from './rule';
import { broadcastShapes, need, tensorType } from './rule';
import { mapTernary, mapUnary } from './broadcast';
import type { Ternary, Unary } from './broadcast';
import { erf } from './elementwise-unary';
import { alloc, finish, fmt, gemm, permute } from './nn-kernels';
import { attentionRule, dimsAgree } from './paradit-attention';
import { layerNormRule, rmsNormRule } from './paradit-norm';
import { ropeRule } from './paradit-rope';
import { dequantizeFp8RowsRule, linearFp8Rule, quantizeFp8RowsRule } from './paradit-fp8';

function requireFloat(ctx: RuleCtx, t: TensorType, what: string): void {
  if (!isFloat(t.dtype)) ctx.fail(`${what} must be a float tensor, got ${t.dtype}`);
}

/** Float operands of one dtype, broadcast together (modulate, gated_residual). */
function inferBroadcast(ctx: InferCtx, names: readonly string[]): TensorType[] {
  if (ctx.inputs.length !== names.length) ctx.fail(`takes ${names.length} inputs (${names.join(', ')}), got ${ctx.inputs.length}`);
  const types = names.map((n, i) => {
    const t = need(ctx, ctx.inputs, i);
    requireFloat(ctx, t, n);
    return t;
  });
  const d = types[0]!.dtype;
  types.forEach((t, i) => {
    if (t.dtype !== d) ctx.fail(`${names[i]} must have ${names[0]}'s dtype ${d}, got ${t.dtype}`);
  });
  return [tensorType(d, broadcastShapes(ctx, types.map((t) => t.shape)))];
}

function runTernary(ctx: RunCtx, f: Ternary): Tensor[] {
  const [a, b, c] = [0, 1, 2].map((i) => need(ctx, ctx.inputs, i)) as [Tensor, Tensor, Tensor];
  const shape = broadcastShapes(ctx, [a.shape, b.shape, c.shape]) as number[];
  const out = alloc(a.dtype, shape);
  mapTernary(a, b, c, shape, out, f);
  return [finish(a.dtype, shape, out)];
}

function unaryFloatRule(doc: string, make: (ctx: RuleCtx) => Unary): OpRule {
  return {
    doc,
    infer(ctx) {
      if (ctx.inputs.length !== 1) ctx.fail(`takes 1 input, got ${ctx.inputs.length}`);
      const x = need(ctx, ctx.inputs, 0);
      requireFloat(ctx, x, 'x');
      make(ctx);
      return [x];
    },
    run(ctx) {
      const x = need(ctx, ctx.inputs, 0);
      const out = alloc(x.dtype, x.shape);
      mapUnary(x.data, out, make(ctx));
      return [finish(x.dtype, x.shape, out)];
    },
  };
}

const SQRT_HALF = Math.SQRT1_2;
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

function geluFn(ctx: RuleCtx): Unary {
  const mode = ctx.attr.string('approximate', 'none');
  if (mode === 'none') return (x) => 0.5 * x * (1 + erf(x * SQRT_HALF));
  if (mode === 'tanh') return (x) => 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
  return ctx.fail(`attribute 'approximate' must be 'none' or 'tanh', got '${mode}'`);
}

// ---------------------------------------------------------------------------------------------
// linear

function inferLinear(ctx: InferCtx): TensorType[] {
  const x = need(ctx, ctx.inputs, 0);
  const w = need(ctx, ctx.inputs, 1);
  const bias = ctx.inputs[2];
  requireFloat(ctx, x, 'x');
  if (w.dtype !== x.dtype || (bias && bias.dtype !== x.dtype)) {
    ctx.fail(`x, w and bias must share a dtype, got ${x.dtype}, ${w.dtype}${bias ? ` and ${bias.dtype}` : ''}`);
  }
  const transB = ctx.attr.int('transB', 0);
  if (transB !== 0 && transB !== 1) ctx.fail(`attribute 'transB' must be 0 or 1, got ${transB}`);
  if (x.shape.length < 1) ctx.fail('x must have rank >= 1 ([...,K]), got a scalar');
  const wl = transB ? '[M,K]' : '[K,M]';
  if (w.shape.length !== 2) ctx.fail(`w must be ${wl} (transB=${transB}), got ${fmt(w.shape)}`);
  const K = transB ? w.shape[1]! : w.shape[0]!;
  const M = transB ? w.shape[0]! : w.shape[1]!;
  if (!dimsAgree(x.shape[x.shape.length - 1]!, K)) {
    ctx.fail(`x ${fmt(x.shape)} has ${x.shape[x.shape.length - 1]} input features, w ${fmt(w.shape)} (${wl}) expects K = ${K}`);
  }
  if (bias && (bias.shape.length !== 1 || !dimsAgree(bias.shape[0]!, M))) ctx.fail(`bias must be [M] = [${M}], got ${fmt(bias.shape)}`);
  if (ctx.inputs.length > 3) ctx.fail(`takes at most 3 inputs (x, w, bias), got ${ctx.inputs.length}`);
  return [tensorType(x.dtype, [...x.shape.slice(0, -1), M])];
}

function runLinear(ctx: RunCtx): Tensor[] {
  const x = need(ctx, ctx.inputs, 0);
  const w = need(ctx, ctx.inputs, 1);
  const bias = ctx.inputs[2];
  const transB = ctx.attr.int('transB', 0) === 1;
  const K = x.shape[x.shape.length - 1]!;
  const M = transB ? w.shape[0]! : w.shape[1]!;
  const wk = transB ? permute(w.data, w.shape, [1, 0]) : w.data;
  const shape = [...x.shape.slice(0, -1), M];
  const rows = numel(x.shape.slice(0, -1));
  const out = alloc(x.dtype, shape);
  gemm(x.data, 0, K, wk, 0, M, out, 0, M, rows, K, M);
  if (bias) {
    const bd = bias.data;
    for (let r = 0; r < rows; r++) for (let j = 0; j < M; j++) out[r * M + j]! += bd[j]!;
  }
  return [finish(x.dtype, shape, out)];
}

const linearRule: OpRule = {
  doc: 'linear(x [...,K], w [K,M] ([M,K] with transB=1), bias? [M]) {transB}: x @ w + bias -> [...,M]',
  infer: inferLinear,
  run: runLinear,
};

export const paraditRules: { readonly [K in ParaditOp]: OpRule } = {
  attention: attentionRule,
  rms_norm: rmsNormRule,
  layer_norm: layerNormRule,
  gelu: unaryFloatRule("gelu(x) {approximate: 'none'|'tanh'}: x*Phi(x) (erf form) or its tanh approximation 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)))", geluFn),
  silu: unaryFloatRule('silu(x): x * sigmoid(x)', () => (x) => x / (1 + Math.exp(-x))),
  rope: ropeRule,
  modulate: {
    doc: 'modulate(x, shift, scale): x * (1 + scale) + shift (AdaLN modulation; numpy broadcasting, e.g. x [B,S,D], shift/scale [B,1,D])',
    infer: (ctx) => inferBroadcast(ctx, ['x', 'shift', 'scale']),
    run: (ctx) => runTernary(ctx, (x, shift, scale) => x * (1 + scale) + shift),
  },
  gated_residual: {
    doc: 'gated_residual(x, gate, y): x + gate * y (AdaLN-Zero residual gating; numpy broadcasting, e.g. x/y [B,S,D], gate [B,1,D])',
    infer: (ctx) => inferBroadcast(ctx, ['x', 'gate', 'y']),
    run: (ctx) => runTernary(ctx, (x, g, y) => x + g * y),
  },
  linear: linearRule,
  quantize_fp8_rows: quantizeFp8RowsRule,
  linear_fp8: linearFp8Rule,
  dequantize_fp8_rows: dequantizeFp8RowsRule,
};
