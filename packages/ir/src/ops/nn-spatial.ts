/**
 * Window geometry shared by Conv, ConvTranspose and the pooling ops: reading kernel_shape,
 * strides, dilations, pads and auto_pad, and turning them into per-axis output sizes and
 * begin/end pads. Kernels run on a canonical 3-D spatial layout ([D, H, W]); 1-D and 2-D
 * operands get leading unit axes (`to3`), which leaves flat indices unchanged.
 */
import type { Dim } from '../graph';
import type { RuleCtx } from './rule';
import { fmt } from './nn-kernels';

export interface Window {
  readonly kernel: readonly number[];
  readonly strides: readonly number[];
  readonly dilations: readonly number[];
  /** Explicit pads [b1..bn, e1..en] (zeros when auto_pad is set). */
  readonly pads: readonly number[];
  readonly autoPad: 'NOTSET' | 'SAME_UPPER' | 'SAME_LOWER' | 'VALID';
}

/** Reads the window attributes for `n` spatial axes; `kernel` comes from the weights when known. */
export function readWindow(ctx: RuleCtx, n: number, kernelFromWeights?: readonly Dim[]): Window {
  const ks = ctx.attr.optInts('kernel_shape');
  let kernel: number[];
  if (ks) {
    kernel = [...ks];
    if (kernelFromWeights && kernelFromWeights.some((d, i) => typeof d === 'number' && d !== ks[i])) {
      ctx.fail(`kernel_shape ${fmt(ks)} disagrees with the weight's spatial shape ${fmt(kernelFromWeights)}`);
    }
  } else if (kernelFromWeights) {
    if (kernelFromWeights.some((d) => typeof d !== 'number')) ctx.fail(`weight has a symbolic spatial shape ${fmt(kernelFromWeights)}`);
    kernel = kernelFromWeights as number[];
  } else {
    return ctx.fail("missing required attribute 'kernel_shape' (ints)");
  }
  const ones = new Array<number>(n).fill(1);
  const strides = [...ctx.attr.ints('strides', ones)];
  const dilations = [...ctx.attr.ints('dilations', ones)];
  const autoPad = ctx.attr.string('auto_pad', 'NOTSET');
  if (autoPad !== 'NOTSET' && autoPad !== 'SAME_UPPER' && autoPad !== 'SAME_LOWER' && autoPad !== 'VALID') {
    ctx.fail(`auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID, got '${autoPad}'`);
  }
  const pads = autoPad === 'NOTSET' ? [...ctx.attr.ints('pads', new Array<number>(2 * n).fill(0))] : new Array<number>(2 * n).fill(0);
  const check = (name: string, v: readonly number[], len: number): void => {
    if (v.length !== len) ctx.fail(`${name} must have ${len} values for ${n} spatial axes, got ${fmt(v)}`);
  };
  check('kernel_shape', kernel, n);
  check('strides', strides, n);
  check('dilations', dilations, n);
  check('pads', pads, 2 * n);
  if (strides.some((s) => s < 1)) ctx.fail(`strides must be >= 1, got ${fmt(strides)}`);
  if (dilations.some((s) => s < 1)) ctx.fail(`dilations must be >= 1, got ${fmt(dilations)}`);
  if (kernel.some((s) => s < 1)) ctx.fail(`kernel_shape must be >= 1, got ${fmt(kernel)}`);
  return { kernel, strides, dilations, pads, autoPad };
}

interface Resolved {
  readonly out: Dim[];
  readonly padB: number[];
  readonly padE: number[];
}

/**
 * Output sizes and begin pads of a convolution or pooling window over `input` (spatial dims).
 * `ceilMode` (pools) rounds the window count up, dropping a last window that would start
 * in the end padding. Symbolic input sizes give a symbolic output (the same symbol where the
 * size cannot change).
 */
export function resolveWindow(ctx: RuleCtx, input: readonly Dim[], w: Window, ceilMode = false): Resolved {
  const n = input.length;
  const out: Dim[] = [];
  const padB: number[] = [];
  const padE: number[] = [];
  for (let i = 0; i < n; i++) {
    const size = input[i]!;
    const s = w.strides[i]!;
    const ek = (w.kernel[i]! - 1) * w.dilations[i]! + 1;
    if (typeof size !== 'number') {
      const same = (w.autoPad === 'SAME_UPPER' || w.autoPad === 'SAME_LOWER') && s === 1;
      const identity = s === 1 && ek === 1 && w.pads[i] === 0 && w.pads[i + n] === 0;
      out.push(same || identity ? size : `${size}_${ctx.node.op.toLowerCase()}${i}`);
      padB.push(0);
      padE.push(0);
      continue;
    }
    let b = w.pads[i]!;
    let e = w.pads[i + n]!;
    if (w.autoPad === 'SAME_UPPER' || w.autoPad === 'SAME_LOWER') {
      const o = Math.ceil(size / s);
      const total = Math.max(0, (o - 1) * s + ek - size);
      const small = Math.floor(total / 2);
      b = w.autoPad === 'SAME_UPPER' ? small : total - small;
      e = total - b;
    }
    const span = size + b + e - ek;
    if (span < 0) {
      ctx.fail(`spatial axis ${i}: the input size ${size} plus pads ${b}+${e} is smaller than the (dilated) kernel ${ek}`);
    }
    let o = (ceilMode ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
    if (ceilMode && (o - 1) * s >= size + b) o--;
    out.push(o);
    padB.push(b);
    padE.push(e);
  }
  return { out, padB, padE };
}

/** Left-pads a spatial list to length 3 (canonical [D, H, W] layout). */
export function to3(xs: readonly number[], fill: number): number[] {
  if (xs.length > 3) throw new Error('more than 3 spatial axes');
  return [...new Array<number>(3 - xs.length).fill(fill), ...xs];
}

/** Rejects operands with more than 3 spatial axes (the kernels' canonical layout). */
export function checkSpatialRank(ctx: RuleCtx, rank: number, what: string): void {
  if (rank < 3) ctx.fail(`${what} must have rank >= 3 ([N, C, spatial...]), got rank ${rank}`);
  if (rank > 5) ctx.fail(`${what} has ${rank - 2} spatial axes; at most 3 are supported`);
}

/**
 * For each kernel offset k and output position o along one axis: the input coordinate
 * o*stride - padB + k*dilation, or -1 when it falls in the padding. Indexed [k * outSize + o].
 */
export function inputCoords(inSize: number, outSize: number, k: number, stride: number, dilation: number, padB: number): Int32Array {
  const t = new Int32Array(k * outSize);
  for (let kk = 0; kk < k; kk++) {
    for (let o = 0; o < outSize; o++) {
      const x = o * stride - padB + kk * dilation;
      t[kk * outSize + o] = x >= 0 && x < inSize ? x : -1;
    }
  }
  return t;
}
