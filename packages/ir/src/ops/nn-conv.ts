/**
 * Convolutions over 1-3 spatial axes, NC[D]HW layout:
 * - Conv(X[N, C, ...], W[M, C/group, k...], B[M]?): im2col per group and block of output rows,
 *   then the shared gemm (W_g[M/g, C/g*K] x col[C/g*K, cols]). A DiT patch embedding
 *   (stride = kernel, no padding) makes im2col a plain rearrangement of X; 1x1 convs skip it.
 * - ConvTranspose(X[N, C, ...], W[C, M/group, k...], B[M]?): gemm of W_g^T with X, then
 *   col2im scatter-add into the output (o = i*stride - pad + k*dilation).
 */
import type { Dim, TensorType } from '../graph';
import type { TensorData } from '../tensor';
import type { InferCtx, OpRule, RunCtx } from './rule';
import { need, sameDtype, tensorType } from './rule';
import { alloc, finish, fmt, gemm, permute, requireFloat } from './nn-kernels';
import { Window, checkSpatialRank, inputCoords, readWindow, resolveWindow, to3 } from './nn-spatial';

interface ConvPlan {
  readonly win: Window;
  readonly group: number;
  readonly out: Dim[];
  readonly padB: number[];
}

function planConv(ctx: InferCtx | RunCtx, x: readonly Dim[], w: readonly Dim[], b: readonly Dim[] | undefined): ConvPlan {
  checkSpatialRank(ctx, x.length, `X ${fmt(x)}`);
  if (w.length !== x.length) ctx.fail(`W must have the rank of X (${x.length}), got W ${fmt(w)} for X ${fmt(x)}`);
  const group = ctx.attr.int('group', 1);
  if (group < 1) ctx.fail(`group must be >= 1, got ${group}`);
  const C = x[1]!;
  const M = w[0]!;
  const Cg = w[1]!;
  if (typeof C === 'number' && typeof Cg === 'number' && C !== Cg * group) {
    ctx.fail(`X has ${C} channels but W ${fmt(w)} expects ${Cg} per group x ${group} groups = ${Cg * group}`);
  }
  if (typeof M === 'number' && M % group !== 0) ctx.fail(`W's ${M} output channels are not divisible by group ${group}`);
  if (b && (b.length !== 1 || (typeof b[0] === 'number' && typeof M === 'number' && b[0] !== M))) {
    ctx.fail(`B must be [${M}] (one bias per output channel), got ${fmt(b)}`);
  }
  const win = readWindow(ctx, x.length - 2, w.slice(2));
  const r = resolveWindow(ctx, x.slice(2), win);
  return { win, group, out: [x[0]!, M, ...r.out], padB: r.padB };
}

function convInfer(ctx: InferCtx): TensorType[] {
  const x = need(ctx, ctx.inputs, 0);
  const w = need(ctx, ctx.inputs, 1);
  const dtype = sameDtype(ctx, [x, w, ctx.inputs[2]]);
  requireFloat(ctx, dtype, 'X');
  return [tensorType(dtype, planConv(ctx, x.shape, w.shape, ctx.inputs[2]?.shape).out)];
}

/** Target size of an im2col block (elements), to bound scratch memory on large images. */
const BLOCK = 1 << 20;

function convRun(ctx: RunCtx) {
  const X = need(ctx, ctx.inputs, 0);
  const W = need(ctx, ctx.inputs, 1);
  const B = ctx.inputs[2];
  const plan = planConv(ctx, X.shape, W.shape, B?.shape);
  const outShape = plan.out as number[];
  const [N, C] = X.shape as [number, number];
  const [D, H, Wd] = to3(X.shape.slice(2), 1) as [number, number, number];
  const [KD, KH, KW] = to3(plan.win.kernel, 1) as [number, number, number];
  const [OD, OH, OW] = to3(outShape.slice(2), 1) as [number, number, number];
  const [sd, sh, sw] = to3(plan.win.strides, 1);
  const [dd, dh, dw] = to3(plan.win.dilations, 1);
  const [pd, ph, pw] = to3(plan.padB, 0);
  const M = outShape[1]!;
  const G = plan.group;
  const Mg = M / G;
  const Cg = C / G;
  const Kt = KD * KH * KW;
  const R = Cg * Kt;
  const P = OD * OH * OW;
  const Pin = D * H * Wd;
  const out = alloc(X.dtype, outShape);
  // Start every output row at its bias so the gemm accumulates onto it (one rounding at the end).
  if (B) for (let n = 0; n < N; n++) for (let m = 0; m < M; m++) out.fill(B.data[m]!, (n * M + m) * P, (n * M + m + 1) * P);
  const pointwise = Kt === 1 && sd === 1 && sh === 1 && sw === 1 && pd === 0 && ph === 0 && pw === 0;
  if (pointwise) {
    for (let n = 0; n < N; n++) {
      for (let g = 0; g < G; g++) {
        gemm(W.data, g * Mg * R, R, X.data, (n * C + g * Cg) * Pin, Pin, out, (n * M + g * Mg) * P, P, Mg, R, P, true);
      }
    }
    return [finish(X.dtype, outShape, out)];
  }
  const tabD = inputCoords(D, OD, KD, sd!, dd!, pd!);
  const tabH = inputCoords(H, OH, KH, sh!, dh!, ph!);
  const tabW = inputCoords(Wd, OW, KW, sw!, dw!, pw!);
  const rowsTotal = OD * OH;
  const blkRows = Math.max(1, Math.min(rowsTotal, Math.floor(BLOCK / Math.max(1, R * OW))));
  const col = new Float64Array(R * blkRows * OW);
  const x = X.data;
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < G; g++) {
      for (let row0 = 0; row0 < rowsTotal; row0 += blkRows) {
        const rows = Math.min(blkRows, rowsTotal - row0);
        const cols = rows * OW;
        im2col(x, (n * C + g * Cg) * Pin, Cg, D, H, Wd, KD, KH, KW, OD, OH, OW, tabD, tabH, tabW, row0, rows, col, cols);
        gemm(W.data, g * Mg * R, R, col, 0, cols, out, (n * M + g * Mg) * P + row0 * OW, P, Mg, R, cols, true);
      }
    }
  }
  return [finish(X.dtype, outShape, out)];
}

/** Fills col[r, rr*OW + ow] for kernel row r = ((c*KD + kd)*KH + kh)*KW + kw and output rows row0.. */
function im2col(
  x: TensorData, xOff: number, Cg: number, D: number, H: number, W: number,
  KD: number, KH: number, KW: number, OD: number, OH: number, OW: number,
  tabD: Int32Array, tabH: Int32Array, tabW: Int32Array, row0: number, rows: number, col: Float64Array, cols: number,
): void {
  let r = 0;
  for (let c = 0; c < Cg; c++) {
    const cOff = xOff + c * D * H * W;
    for (let kd = 0; kd < KD; kd++) {
      for (let kh = 0; kh < KH; kh++) {
        for (let kw = 0; kw < KW; kw++, r++) {
          const dst = r * cols;
          const tw = kw * OW;
          for (let rr = 0; rr < rows; rr++) {
            const odoh = row0 + rr;
            const od = Math.floor(odoh / OH);
            const id = tabD[kd * OD + od]!;
            const ih = tabH[kh * OH + (odoh - od * OH)]!;
            const d0 = dst + rr * OW;
            if (id < 0 || ih < 0) {
              col.fill(0, d0, d0 + OW);
              continue;
            }
            const base = cOff + (id * H + ih) * W;
            for (let ow = 0; ow < OW; ow++) {
              const iw = tabW[tw + ow]!;
              col[d0 + ow] = iw < 0 ? 0 : x[base + iw]!;
            }
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// ConvTranspose

interface ConvTPlan {
  readonly win: Window;
  readonly group: number;
  readonly out: Dim[];
  readonly padB: number[];
}

function planConvT(ctx: InferCtx | RunCtx, x: readonly Dim[], w: readonly Dim[], b: readonly Dim[] | undefined): ConvTPlan {
  checkSpatialRank(ctx, x.length, `X ${fmt(x)}`);
  if (w.length !== x.length) ctx.fail(`W must have the rank of X (${x.length}), got W ${fmt(w)} for X ${fmt(x)}`);
  const n = x.length - 2;
  const group = ctx.attr.int('group', 1);
  if (group < 1) ctx.fail(`group must be >= 1, got ${group}`);
  const C = x[1]!;
  if (typeof C === 'number' && typeof w[0] === 'number' && C !== w[0]) {
    ctx.fail(`X has ${C} channels but W ${fmt(w)} expects ${w[0]} input channels (W is [C, M/group, k...])`);
  }
  const M: Dim = typeof w[1] === 'number' ? w[1] * group : w[1]!;
  if (b && (b.length !== 1 || (typeof b[0] === 'number' && typeof M === 'number' && b[0] !== M))) {
    ctx.fail(`B must be [${M}] (one bias per output channel), got ${fmt(b)}`);
  }
  const win = readWindow(ctx, n, w.slice(2));
  const outPad = ctx.attr.ints('output_padding', new Array<number>(n).fill(0));
  if (outPad.length !== n) ctx.fail(`output_padding must have ${n} values, got ${fmt(outPad)}`);
  let target = ctx.attr.optInts('output_shape');
  if (target && target.length === n + 2) target = target.slice(2);
  if (target && target.length !== n) ctx.fail(`output_shape must have ${n} spatial values, got ${fmt(target)}`);
  const out: Dim[] = [x[0]!, M];
  const padB: number[] = [];
  for (let i = 0; i < n; i++) {
    const size = x[i + 2]!;
    const s = win.strides[i]!;
    const ek = (win.kernel[i]! - 1) * win.dilations[i]! + 1;
    const same = win.autoPad === 'SAME_UPPER' || win.autoPad === 'SAME_LOWER';
    if (typeof size !== 'number') {
      out.push(target ? target[i]! : `${size}_convtranspose${i}`);
      padB.push(0);
      continue;
    }
    const full = s * (size - 1) + outPad[i]! + ek;
    if (target || same) {
      const o = target ? target[i]! : size * s;
      const total = full - o;
      // SAME_UPPER puts the odd pad at the end; NOTSET and SAME_LOWER at the beginning (ONNX spec).
      padB.push(win.autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : total - Math.floor(total / 2));
      out.push(o);
    } else {
      const o = full - win.pads[i]! - win.pads[i + n]!;
      if (o < 1) ctx.fail(`spatial axis ${i}: pads ${win.pads[i]}+${win.pads[i + n]} leave no output (full size ${full})`);
      padB.push(win.pads[i]!);
      out.push(o);
    }
  }
  return { win, group, out, padB };
}

/** For each kernel offset k and input position i: output coordinate i*s - padB + k*d or -1. */
function outputCoords(inSize: number, outSize: number, k: number, s: number, d: number, padB: number): Int32Array {
  const t = new Int32Array(k * inSize);
  for (let kk = 0; kk < k; kk++) {
    for (let i = 0; i < inSize; i++) {
      const o = i * s - padB + kk * d;
      t[kk * inSize + i] = o >= 0 && o < outSize ? o : -1;
    }
  }
  return t;
}

function convTRun(ctx: RunCtx) {
  const X = need(ctx, ctx.inputs, 0);
  const W = need(ctx, ctx.inputs, 1);
  const B = ctx.inputs[2];
  const plan = planConvT(ctx, X.shape, W.shape, B?.shape);
  const outShape = plan.out as number[];
  const [N, C] = X.shape as [number, number];
  const [D, H, Wd] = to3(X.shape.slice(2), 1) as [number, number, number];
  const [KD, KH, KW] = to3(plan.win.kernel, 1) as [number, number, number];
  const [OD, OH, OW] = to3(outShape.slice(2), 1) as [number, number, number];
  const [sd, sh, sw] = to3(plan.win.strides, 1) as [number, number, number];
  const [dd, dh, dw] = to3(plan.win.dilations, 1) as [number, number, number];
  const [pd, ph, pw] = to3(plan.padB, 0) as [number, number, number];
  const M = outShape[1]!;
  const G = plan.group;
  const Mg = M / G;
  const Cg = C / G;
  const Kt = KD * KH * KW;
  const R = Mg * Kt;
  const Pin = D * H * Wd;
  const P = OD * OH * OW;
  const tabD = outputCoords(D, OD, KD, sd, dd, pd);
  const tabH = outputCoords(H, OH, KH, sh, dh, ph);
  const tabW = outputCoords(Wd, OW, KW, sw, dw, pw);
  const acc = new Float64Array(N * M * P);
  if (B) for (let n = 0; n < N; n++) for (let m = 0; m < M; m++) acc.fill(B.data[m]!, (n * M + m) * P, (n * M + m + 1) * P);
  const rowsTotal = D * H;
  const blkRows = Math.max(1, Math.min(rowsTotal, Math.floor(BLOCK / Math.max(1, R * Wd))));
  const col = new Float64Array(R * blkRows * Wd);
  for (let g = 0; g < G; g++) {
    // W_g is [Cg, Mg*Kt]; the gemm wants its transpose [Mg*Kt, Cg].
    const wgT = permute(W.data.subarray(g * Cg * R, (g + 1) * Cg * R), [Cg, R], [1, 0]);
    for (let n = 0; n < N; n++) {
      for (let row0 = 0; row0 < rowsTotal; row0 += blkRows) {
        const rows = Math.min(blkRows, rowsTotal - row0);
        const cols = rows * Wd;
        gemm(wgT, 0, Cg, X.data, (n * C + g * Cg) * Pin + row0 * Wd, Pin, col, 0, cols, R, Cg, cols);
        let r = 0;
        for (let m = 0; m < Mg; m++) {
          const oBase = (n * M + g * Mg + m) * P;
          for (let kd = 0; kd < KD; kd++) {
            for (let kh = 0; kh < KH; kh++) {
              for (let kw = 0; kw < KW; kw++, r++) {
                for (let rr = 0; rr < rows; rr++) {
                  const idih = row0 + rr;
                  const id = Math.floor(idih / H);
                  const od = tabD[kd * D + id]!;
                  const oh = tabH[kh * H + (idih - id * H)]!;
                  if (od < 0 || oh < 0) continue;
                  const dst = oBase + (od * OH + oh) * OW;
                  const src = r * cols + rr * Wd;
                  for (let iw = 0; iw < Wd; iw++) {
                    const ow = tabW[kw * Wd + iw]!;
                    if (ow >= 0) acc[dst + ow] = acc[dst + ow]! + col[src + iw]!;
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  const out = alloc(X.dtype, outShape);
  out.set(acc);
  return [finish(X.dtype, outShape, out)];
}

export const convRules: { readonly Conv: OpRule; readonly ConvTranspose: OpRule } = {
  Conv: {
    doc: 'Conv(X[N,C,...], W[M,C/group,k...], B[M]?) {strides, pads|auto_pad, dilations, group} -> [N,M,...]: cross-correlation over 1-3 spatial axes.',
    infer: convInfer,
    run: convRun,
  },
  ConvTranspose: {
    doc: 'ConvTranspose(X[N,C,...], W[C,M/group,k...], B[M]?) {strides, pads|auto_pad|output_shape, output_padding, dilations, group} -> [N,M,...]: transposed convolution.',
    infer(ctx) {
      const x = need(ctx, ctx.inputs, 0);
      const w = need(ctx, ctx.inputs, 1);
      const dtype = sameDtype(ctx, [x, w, ctx.inputs[2]]);
      requireFloat(ctx, dtype, 'X');
      return [tensorType(dtype, planConvT(ctx, x.shape, w.shape, ctx.inputs[2]?.shape).out)];
    },
    run: convTRun,
  },
};
