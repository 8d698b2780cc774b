/**
 * FP8 linear layers (`--dtype fp8`, docs/fp8.md): the two ops the quantize-linears-fp8 pass
 * writes, with their exact reference semantics. Shape letters: M rows (tokens, every leading axis
 * flattened), K input features, N output features.
 *
 *   quantize_fp8_rows(x [...,K]) -> (q f8e4m3fn [...,K], s f32 [...,1])
 *       per row: a = max_k |x_k|; s = fround(a / 448) (s = 1 when a = 0; NaN when the row holds a
 *       NaN or an infinity, so its outputs become NaN instead of finite garbage);
 *       q_k = round_e4m3(fround(x_k / s)), round to nearest even, saturating at +-448.
 *   linear_fp8(q [...,K] f8, s [...,1] f32, wq [N,K] f8 (transB=1) or [K,N], ws [N] f32, bias? [N])
 *       {transB, oDtype=bf16} -> y [...,N] in oDtype:
 *       y_mn = (sum_k q_mk * wq_kn) * s_m * ws_n + bias_n, accumulated in fp32 or wider, rounded once.
 *   dequantize_fp8_rows(q [...,K] f8e4m3fn, s [...,1] f32) {oDtype=bf16} -> y [...,K] in oDtype:
 *       y_k = round_oDtype(fround(q_k * s)); the inverse of quantize_fp8_rows up to its rounding
 *       (`--comm-dtype fp8`: the receiving side of an e4m3 collective, docs/fp8.md).
 *
 * The weight side (wq, ws) is computed at compile time by the pass with the same rounding
 * (quantizeWeightColumns below, per output channel n). Why two ops and not QuantizeLinear /
 * DequantizeLinear: ONNX's QDQ form has no dynamic per-row scale (DynamicQuantizeLinear is uint8,
 * per tensor), and a dequantize-then-matmul spelling would let later passes fuse or reorder the
 * scaling; these two ops are exactly the two device steps (a row-quantize kernel, an FP8 GEMM with
 * outer-vector scales), so each plan instruction's ref is one of them.
 */
import { dtypeFromOnnx, dtypeToOnnx, f32ToFp8Bits, fp8BitsToF32, isFloat } from '../dtype';
import type { DType } from '../dtype';
import type { TensorType } from '../graph';
import { Tensor, numel } from '../tensor';
import type { InferCtx, OpRule, RuleCtx, RunCtx } from './rule';
import { need, tensorType } from './rule';
import { fmt, gemm, permute } from './nn-kernels';
import { dimsAgree } from './paradit-attention';

/** The largest finite e4m3fn value. */
export const E4M3_MAX = 448;

/**
 * Rounds an fp32 value to the nearest e4m3fn value (ties to even), saturating at +-448; NaN stays
 * NaN. Same result as roundTo('f8e4m3fn', x) (tested), without its table search.
 */
export function roundE4m3(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a >= E4M3_MAX) return x < 0 ? -E4M3_MAX : E4M3_MAX;
  // Normal numbers have 3 mantissa bits: step 2^(e-3); subnormals (a < 2^-6) step 2^-9.
  let step = 2 ** -9;
  if (a >= 2 ** -6) {
    let e = Math.floor(Math.log2(a));
    if (2 ** e > a) e--;
    else if (2 ** (e + 1) <= a) e++;
    step = 2 ** (e - 3);
  }
  const r = a / step;
  let n = Math.floor(r);
  const frac = r - n;
  if (frac > 0.5 || (frac === 0.5 && n % 2 === 1)) n++;
  const v = Math.min(n * step, E4M3_MAX);
  return x < 0 || Object.is(x, -0) ? -v : v;
}

let E4M3_CODES: Map<number, number> | undefined;

/**
 * The f8e4m3fn bit pattern of `x`: a table lookup for values that are exact e4m3 already (every
 * element of an f8e4m3fn tensor), the general rounding (f32ToFp8Bits) otherwise.
 */
export function e4m3Bits(x: number): number {
  if (!E4M3_CODES) {
    E4M3_CODES = new Map();
    for (let c = 0xff; c >= 0; c--) {
      const v = fp8BitsToF32('f8e4m3fn', c);
      if (!Number.isNaN(v)) E4M3_CODES.set(v, c); // -0 and +0 share a key; 0x00 (set last) wins
    }
  }
  if (Object.is(x, -0)) return 0x80;
  return E4M3_CODES.get(x) ?? f32ToFp8Bits('f8e4m3fn', x);
}

/** The per-row scale of quantize_fp8_rows for a row with absolute maximum `amax`. */
export function fp8RowScale(amax: number): number {
  if (!Number.isFinite(amax)) return NaN;
  return amax === 0 ? 1 : Math.fround(amax / E4M3_MAX);
}

/** Quantizes `len` values of `src` at `off` with scale `s` into `dst` at `off`. */
function quantizeRun(src: ArrayLike<number>, dst: Float32Array, off: number, len: number, s: number): void {
  for (let i = 0; i < len; i++) dst[off + i] = roundE4m3(Math.fround(src[off + i]! / s));
}

/** Absolute maximum of a run; NaN if it holds a NaN, Infinity if an infinity. */
function amaxRun(src: ArrayLike<number>, off: number, len: number): number {
  let a = 0;
  for (let i = 0; i < len; i++) {
    const v = Math.abs(src[off + i]!);
    if (Number.isNaN(v)) return NaN;
    if (v > a) a = v;
  }
  return a;
}

/**
 * Compile-time weight quantization: w [K,N] (row-major) -> wq [N,K] e4m3 (K contiguous: the layout
 * cuBLASLt's FP8 kernels need) and ws [N] f32, per output channel n: ws_n = amax_n / 448.
 */
export function quantizeWeightColumns(w: Tensor, transB: boolean): { wq: Tensor; ws: Tensor } {
  const [r0, r1] = w.shape as [number, number];
  const K = transB ? r1 : r0;
  const N = transB ? r0 : r1;
  const wt = transB ? Float32Array.from(w.data) : Float32Array.from(permute(w.data, w.shape, [1, 0]));
  const q = new Float32Array(N * K);
  const s = new Float32Array(N);
  for (let n = 0; n < N; n++) {
    const sc = fp8RowScale(amaxRun(wt, n * K, K));
    s[n] = sc;
    quantizeRun(wt, q, n * K, K, sc);
  }
  return { wq: new Tensor('f8e4m3fn', [N, K], q), ws: new Tensor('f32', [N], s) };
}

const requireFloat = (ctx: RuleCtx, t: TensorType, what: string): void => {
  if (!isFloat(t.dtype)) ctx.fail(`${what} must be a float tensor, got ${t.dtype}`);
};

const quantizeRule: OpRule = {
  doc: 'quantize_fp8_rows(x [...,K]) -> (q f8e4m3fn [...,K], s f32 [...,1]): per-row dynamic e4m3 quantization, s = amax/448 (1 for a zero row), q = round_e4m3(x/s)',
  infer(ctx: InferCtx) {
    if (ctx.inputs.length !== 1) ctx.fail(`takes 1 input (x), got ${ctx.inputs.length}`);
    if (ctx.numOutputs !== 2) ctx.fail(`has 2 outputs (q, s), got ${ctx.numOutputs}`);
    const x = need(ctx, ctx.inputs, 0);
    requireFloat(ctx, x, 'x');
    if (x.dtype === 'f8e4m3fn') ctx.fail('x is already f8e4m3fn');
    if (x.shape.length < 1) ctx.fail('x must have rank >= 1 ([...,K]), got a scalar');
    return [tensorType('f8e4m3fn', x.shape), tensorType('f32', [...x.shape.slice(0, -1), 1])];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const K = x.shape[x.shape.length - 1]!;
    const rows = numel(x.shape.slice(0, -1));
    const q = new Float32Array(rows * K);
    const s = new Float32Array(rows);
    for (let r = 0; r < rows; r++) {
      const sc = K === 0 ? 1 : fp8RowScale(amaxRun(x.data, r * K, K));
      s[r] = sc;
      quantizeRun(x.data, q, r * K, K, sc);
    }
    return [new Tensor('f8e4m3fn', x.shape, q), new Tensor('f32', [...x.shape.slice(0, -1), 1], s)];
  },
};

function outDtype(ctx: RuleCtx): DType {
  const code = ctx.attr.int('oDtype', dtypeToOnnx('bf16'));
  const d = dtypeFromOnnx(code);
  if (d !== 'bf16' && d !== 'f16' && d !== 'f32') ctx.fail(`attribute 'oDtype' must be bf16, f16 or f32 (ONNX codes 16, 10, 1), got ${code}`);
  return d;
}

function inferLinearFp8(ctx: InferCtx): TensorType[] {
  if (ctx.inputs.length < 4 || ctx.inputs.length > 5) ctx.fail(`takes 4 or 5 inputs (q, s, wq, ws, bias?), got ${ctx.inputs.length}`);
  const [q, s, wq, ws] = [0, 1, 2, 3].map((i) => need(ctx, ctx.inputs, i)) as [TensorType, TensorType, TensorType, TensorType];
  const bias = ctx.inputs[4];
  if (q.dtype !== 'f8e4m3fn' || wq.dtype !== 'f8e4m3fn') ctx.fail(`q and wq must be f8e4m3fn, got ${q.dtype} and ${wq.dtype}`);
  if (s.dtype !== 'f32' || ws.dtype !== 'f32') ctx.fail(`scales s and ws must be f32, got ${s.dtype} and ${ws.dtype}`);
  const transB = ctx.attr.int('transB', 1);
  if (transB !== 0 && transB !== 1) ctx.fail(`attribute 'transB' must be 0 or 1, got ${transB}`);
  if (q.shape.length < 1) ctx.fail('q must have rank >= 1 ([...,K]), got a scalar');
  const lead = q.shape.slice(0, -1);
  if (s.shape.length !== q.shape.length || !lead.every((d, i) => dimsAgree(d, s.shape[i]!)) || !dimsAgree(s.shape[s.shape.length - 1]!, 1)) {
    ctx.fail(`s must be [...,1] = ${fmt([...lead, 1])} (one scale per row of q ${fmt(q.shape)}), got ${fmt(s.shape)}`);
  }
  const wl = transB ? '[N,K]' : '[K,N]';
  if (wq.shape.length !== 2) ctx.fail(`wq must be ${wl} (transB=${transB}), got ${fmt(wq.shape)}`);
  const K = transB ? wq.shape[1]! : wq.shape[0]!;
  const N = transB ? wq.shape[0]! : wq.shape[1]!;
  if (!dimsAgree(q.shape[q.shape.length - 1]!, K)) ctx.fail(`q ${fmt(q.shape)} has ${q.shape[q.shape.length - 1]} input features, wq ${fmt(wq.shape)} (${wl}) expects K = ${K}`);
  if (ws.shape.length !== 1 || !dimsAgree(ws.shape[0]!, N)) ctx.fail(`ws must be [N] = [${N}], got ${fmt(ws.shape)}`);
  if (bias) {
    requireFloat(ctx, bias, 'bias');
    if (bias.shape.length !== 1 || !dimsAgree(bias.shape[0]!, N)) ctx.fail(`bias must be [N] = [${N}], got ${fmt(bias.shape)}`);
  }
  return [tensorType(outDtype(ctx), [...lead, N])];
}

function runLinearFp8(ctx: RunCtx): Tensor[] {
  const [q, s, wq, ws] = [0, 1, 2, 3].map((i) => need(ctx, ctx.inputs, i)) as [Tensor, Tensor, Tensor, Tensor];
  const bias = ctx.inputs[4];
  const transB = ctx.attr.int('transB', 1) === 1;
  const K = q.shape[q.shape.length - 1]!;
  const N = transB ? wq.shape[0]! : wq.shape[1]!;
  const rows = numel(q.shape.slice(0, -1));
  const wk = transB ? permute(wq.data, wq.shape, [1, 0]) : wq.data;
  const acc = new Float64Array(rows * N);
  gemm(q.data, 0, K, wk, 0, N, acc, 0, N, rows, K, N);
  const out = new Float32Array(rows * N);
  for (let r = 0; r < rows; r++) {
    const sr = s.data[r]!;
    for (let j = 0; j < N; j++) out[r * N + j] = acc[r * N + j]! * sr * ws.data[j]! + (bias ? bias.data[j]! : 0);
  }
  const d = outDtype(ctx);
  return [Tensor.normalized(d, [...q.shape.slice(0, -1), N], out)];
}

export const linearFp8Rule: OpRule = {
  doc: 'linear_fp8(q [...,K] f8e4m3fn, s [...,1] f32, wq [N,K] f8e4m3fn ([K,N] with transB=0), ws [N] f32, bias? [N]) {transB=1, oDtype=bf16}: (q @ wq) * s * ws + bias, fp32 accumulation -> [...,N] in oDtype',
  infer: inferLinearFp8,
  run: runLinearFp8,
};

export const quantizeFp8RowsRule: OpRule = quantizeRule;

function inferDequantize(ctx: InferCtx): TensorType[] {
  if (ctx.inputs.length !== 2) ctx.fail(`takes 2 inputs (q, s), got ${ctx.inputs.length}`);
  const q = need(ctx, ctx.inputs, 0);
  const s = need(ctx, ctx.inputs, 1);
  if (q.dtype !== 'f8e4m3fn') ctx.fail(`q must be f8e4m3fn, got ${q.dtype}`);
  if (s.dtype !== 'f32') ctx.fail(`s must be f32, got ${s.dtype}`);
  if (q.shape.length < 1) ctx.fail('q must have rank >= 1 ([...,K]), got a scalar');
  const lead = q.shape.slice(0, -1);
  if (s.shape.length !== q.shape.length || !lead.every((d, i) => dimsAgree(d, s.shape[i]!)) || !dimsAgree(s.shape[s.shape.length - 1]!, 1)) {
    ctx.fail(`s must be [...,1] = ${fmt([...lead, 1])} (one scale per row of q ${fmt(q.shape)}), got ${fmt(s.shape)}`);
  }
  return [tensorType(outDtype(ctx), q.shape)];
}

function runDequantize(ctx: RunCtx): Tensor[] {
  const q = need(ctx, ctx.inputs, 0);
  const s = need(ctx, ctx.inputs, 1);
  const K = q.shape[q.shape.length - 1]!;
  const rows = numel(q.shape.slice(0, -1));
  const out = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++) {
    const sr = s.data[r]!;
    for (let k = 0; k < K; k++) out[r * K + k] = Math.fround(q.data[r * K + k]! * sr);
  }
  return [Tensor.normalized(outDtype(ctx), q.shape, out)];
}

export const dequantizeFp8RowsRule: OpRule = {
  doc: 'dequantize_fp8_rows(q [...,K] f8e4m3fn, s [...,1] f32) {oDtype=bf16}: y = q * s (fp32 product, rounded once to oDtype) -> [...,K]',
  infer: inferDequantize,
  run: runDequantize,
};
