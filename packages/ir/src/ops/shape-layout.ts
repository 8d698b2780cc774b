/**
 * Layout ops that move or reinterpret data without indexing by values: Reshape, Transpose,
 * Flatten, Squeeze, Unsqueeze, Expand, Tile, DepthToSpace, SpaceToDepth.
 *
 * Reshape-like ops (Reshape, Flatten, Squeeze, Unsqueeze) share the input's buffer: tensors are
 * never mutated after creation. The others copy through copyStrided (shape-copy.ts).
 */
import type { Dim } from '../graph';
import { Tensor, allocData, numel, stridesOf } from '../tensor';
import type { InferCtx, OpRule, RuleCtx, RunCtx } from './rule';
import { broadcastShapes, need, tensorType } from './rule';
import { copyStrided } from './shape-copy';
import {
  attrOrInputInts, dimProduct, fmtShape, freshDim, inputInts, normAxes, productDim, runAttrOrInputInts,
  subtractSymbols,
} from './shape-util';
import type { IntsOperand } from './shape-util';

type LayoutOp =
  | 'Reshape' | 'Transpose' | 'Flatten' | 'Squeeze' | 'Unsqueeze' | 'Expand' | 'Tile'
  | 'DepthToSpace' | 'SpaceToDepth';

// ---------------------------------------------------------------------------------------------
// Reshape

/** Reshape-1 took the target as attribute 'shape'; Reshape-5 onwards as input 1. */
function reshapeTarget(ctx: InferCtx): IntsOperand {
  return attrOrInputInts(ctx, 5, 'shape', 1);
}

/**
 * Resolves a Reshape target against the input shape: 0 copies the input dim (unless allowzero),
 * -1 takes what is left. With symbolic dims the -1 is solved when the symbols cancel; otherwise
 * it becomes a fresh symbol.
 */
function resolveReshape(ctx: RuleCtx, input: readonly Dim[], target: readonly number[], allowzero: boolean): Dim[] {
  const bad = (why: string): never => {
    const p = dimProduct(input);
    const count = p.symbols.length ? [p.factor, ...p.symbols].join('*') : String(p.factor);
    return ctx.fail(`cannot reshape ${count} elements to ${fmtShape(target)} (input shape ${fmtShape(input)})${why}`);
  };
  const out: Dim[] = [];
  let inferAt = -1;
  target.forEach((v, i) => {
    if (v === -1) {
      if (inferAt >= 0) bad(': at most one dim may be -1');
      inferAt = i;
      out.push(-1);
    } else if (v === 0 && !allowzero) {
      if (i >= input.length) bad(`: dim ${i} is 0 (copy the input dim) but the input has rank ${input.length}`);
      out.push(input[i]!);
    } else if (v < 0 || !Number.isInteger(v)) {
      bad(`: dim ${i} is ${v}`);
    } else out.push(v);
  });
  if (allowzero && inferAt >= 0 && target.includes(0)) bad(': with allowzero=1 a 0 and a -1 cannot appear together');
  const inP = dimProduct(input);
  const outP = dimProduct(out.filter((_, i) => i !== inferAt));
  const rest = subtractSymbols(inP.symbols, outP.symbols);
  if (inferAt < 0) {
    const sameSymbols = rest !== undefined && rest.length === 0 && outP.symbols.length === inP.symbols.length;
    if (sameSymbols && inP.factor !== outP.factor) bad('');
    return out;
  }
  if (outP.factor === 0) {
    if (inP.factor === 0 && inP.symbols.length === 0) bad(': the -1 dim is ambiguous when other dims are 0');
    bad('');
  }
  if (rest === undefined) out[inferAt] = freshDim(ctx, inferAt);
  else if (inP.factor % outP.factor !== 0) {
    // With symbols left over the division may still work out at run time (B*6 / 5 for B=5).
    if (rest.length === 0) bad('');
    out[inferAt] = freshDim(ctx, inferAt);
  } else {
    const q = inP.factor / outP.factor;
    if (rest.length === 0) out[inferAt] = q;
    else if (rest.length === 1 && q === 1) out[inferAt] = rest[0]!;
    else out[inferAt] = freshDim(ctx, inferAt);
  }
  return out;
}

const reshape: OpRule = {
  doc: 'Reshape(data, shape: i64[k]) {allowzero}: same elements in a new shape; 0 copies a dim, -1 is inferred.',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const target = reshapeTarget(ctx);
    const allowzero = ctx.opset >= 14 && ctx.attr.int('allowzero', 0) === 1;
    if (target.kind === 'absent') ctx.fail('the target shape is missing');
    if (target.kind === 'unknown') {
      if (target.length === undefined) ctx.fail('the target shape is unknown and has symbolic length, so the output rank is unknown');
      return [tensorType(x.dtype, Array.from({ length: target.length }, (_, i) => freshDim(ctx, i)))];
    }
    return [tensorType(x.dtype, resolveReshape(ctx, x.shape, target.values, allowzero))];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const target = runAttrOrInputInts(ctx, 5, 'shape', 1) ?? ctx.fail('the target shape is missing');
    const allowzero = ctx.opset >= 14 && ctx.attr.int('allowzero', 0) === 1;
    return [x.reshape(resolveReshape(ctx, x.shape, target, allowzero) as number[])];
  },
};

// ---------------------------------------------------------------------------------------------
// Transpose

function permOf(ctx: RuleCtx, rank: number): number[] {
  const p = ctx.attr.optInts('perm');
  if (p === undefined) return Array.from({ length: rank }, (_, i) => rank - 1 - i);
  if (p.length !== rank) ctx.fail(`perm ${fmtShape(p)} must have one entry per input dim (rank ${rank})`);
  const seen = new Set<number>();
  for (const a of p) {
    if (!Number.isInteger(a) || a < 0 || a >= rank || seen.has(a)) ctx.fail(`perm ${fmtShape(p)} is not a permutation of 0..${rank - 1}`);
    seen.add(a);
  }
  return [...p];
}

const transpose: OpRule = {
  doc: 'Transpose(data) {perm}: output dim i is input dim perm[i]; perm defaults to reversing the dims.',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const perm = permOf(ctx, x.shape.length);
    return [tensorType(x.dtype, perm.map((p) => x.shape[p]!))];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const perm = permOf(ctx, x.rank);
    const shape = perm.map((p) => x.shape[p]!);
    if (perm.every((p, i) => p === i)) return [x];
    const strides = stridesOf(x.shape);
    const out = allocData(x.dtype, x.size);
    copyStrided(x.data, 0, shape, perm.map((p) => strides[p]!), out);
    return [new Tensor(x.dtype, shape, out)];
  },
};

// ---------------------------------------------------------------------------------------------
// Flatten, Squeeze, Unsqueeze

function flattenAxis(ctx: RuleCtx, rank: number): number {
  const a = ctx.attr.int('axis', 1);
  const n = a < 0 ? a + rank : a;
  if (n < 0 || n > rank) ctx.fail(`axis ${a} is out of range for rank ${rank} (expected ${-rank}..${rank})`);
  return n;
}

const flatten: OpRule = {
  doc: 'Flatten(data) {axis=1}: 2-D [prod(dims before axis), prod(dims from axis)].',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const a = flattenAxis(ctx, x.shape.length);
    return [tensorType(x.dtype, [productDim(ctx, x.shape.slice(0, a), 0), productDim(ctx, x.shape.slice(a), 1)])];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const a = flattenAxis(ctx, x.rank);
    return [x.reshape([numel(x.shape.slice(0, a)), numel(x.shape.slice(a))])];
  },
};

/** Output dims of Squeeze for known (or absent) axes. */
function squeezeShape(ctx: RuleCtx, shape: readonly Dim[], axes: readonly number[] | undefined): Dim[] {
  if (axes === undefined) {
    const sym = shape.find((d) => typeof d === 'string');
    if (sym !== undefined) {
      ctx.fail(`without axes the output rank of ${fmtShape(shape)} depends on whether '${sym}' is 1; give the axes to squeeze`);
    }
    return shape.filter((d) => d !== 1);
  }
  const ax = normAxes(ctx, axes, shape.length);
  for (const a of ax) {
    const d = shape[a]!;
    if (typeof d === 'number' && d !== 1) ctx.fail(`cannot squeeze axis ${a} of size ${d} (input shape ${fmtShape(shape)}); only size-1 dims can be removed`);
  }
  return shape.filter((_, i) => !ax.includes(i));
}

const squeeze: OpRule = {
  doc: 'Squeeze(data, axes?: i64[k]): removes the given size-1 dims (all size-1 dims without axes).',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const axes = attrOrInputInts(ctx, 13, 'axes', 1);
    if (axes.kind === 'unknown') {
      if (axes.length === undefined) ctx.fail('axes are unknown and of symbolic length, so the output rank is unknown');
      return [tensorType(x.dtype, Array.from({ length: x.shape.length - axes.length }, (_, i) => freshDim(ctx, i)))];
    }
    return [tensorType(x.dtype, squeezeShape(ctx, x.shape, axes.kind === 'known' ? axes.values : undefined))];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    return [x.reshape(squeezeShape(ctx, x.shape, runAttrOrInputInts(ctx, 13, 'axes', 1)) as number[])];
  },
};

function unsqueezeShape(ctx: RuleCtx, shape: readonly Dim[], axes: readonly number[]): Dim[] {
  const rank = shape.length + axes.length;
  const ax = normAxes(ctx, axes, rank);
  const out: Dim[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) out.push(ax.includes(i) ? 1 : shape[k++]!);
  return out;
}

const unsqueeze: OpRule = {
  doc: 'Unsqueeze(data, axes: i64[k]): inserts size-1 dims at the given positions of the output.',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const axes = attrOrInputInts(ctx, 13, 'axes', 1);
    if (axes.kind === 'absent') ctx.fail('axes are required');
    if (axes.kind === 'unknown') {
      if (axes.length === undefined) ctx.fail('axes are unknown and of symbolic length, so the output rank is unknown');
      return [tensorType(x.dtype, Array.from({ length: x.shape.length + axes.length }, (_, i) => freshDim(ctx, i)))];
    }
    return [tensorType(x.dtype, unsqueezeShape(ctx, x.shape, axes.values))];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const axes = runAttrOrInputInts(ctx, 13, 'axes', 1) ?? ctx.fail('axes are required');
    return [x.reshape(unsqueezeShape(ctx, x.shape, axes) as number[])];
  },
};

// ---------------------------------------------------------------------------------------------
// Expand, Tile

const expand: OpRule = {
  doc: 'Expand(data, shape: i64[k]): broadcasts data and shape against each other (numpy rules).',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const target = inputInts(ctx, 1, 'input 1 (shape)');
    if (target.kind === 'absent') ctx.fail('the target shape is missing');
    if (target.kind === 'known') {
      if (target.values.some((v) => v < 0)) ctx.fail(`target shape ${fmtShape(target.values)} has negative dims`);
      return [tensorType(x.dtype, broadcastShapes(ctx, [x.shape, target.values]))];
    }
    if (target.length === undefined) ctx.fail('the target shape is unknown and has symbolic length, so the output rank is unknown');
    const rank = Math.max(x.shape.length, target.length);
    const out: Dim[] = [];
    for (let i = 0; i < rank; i++) {
      const d = x.shape[i - (rank - x.shape.length)];
      out.push(typeof d === 'number' && d !== 1 ? d : freshDim(ctx, i));
    }
    return [tensorType(x.dtype, out)];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const target = need(ctx, ctx.inputs, 1).toArray();
    const shape = broadcastShapes(ctx, [x.shape, target]) as number[];
    if (shape.length === x.rank && shape.every((d, i) => d === x.shape[i])) return [x];
    const inStrides = stridesOf(x.shape);
    const off = shape.length - x.rank;
    const strides = shape.map((_, i) => (i < off || x.shape[i - off] === 1 ? 0 : inStrides[i - off]!));
    const out = allocData(x.dtype, numel(shape));
    copyStrided(x.data, 0, shape, strides, out);
    return [new Tensor(x.dtype, shape, out)];
  },
};

function checkRepeats(ctx: RuleCtx, reps: readonly number[], rank: number): void {
  if (reps.length !== rank) ctx.fail(`repeats ${fmtShape(reps)} must have one entry per input dim (rank ${rank})`);
  if (reps.some((r) => r < 0 || !Number.isInteger(r))) ctx.fail(`repeats ${fmtShape(reps)} must be non-negative integers`);
}

const tile: OpRule = {
  doc: 'Tile(data, repeats: i64[rank]): output dim i is data dim i times repeats[i], the data repeated.',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const reps = inputInts(ctx, 1, 'input 1 (repeats)');
    if (reps.kind === 'absent') ctx.fail('repeats are missing');
    if (reps.kind === 'unknown') {
      if (reps.length !== undefined && reps.length !== x.shape.length) ctx.fail(`repeats must have ${x.shape.length} entries, got ${reps.length}`);
      return [tensorType(x.dtype, x.shape.map((_, i) => freshDim(ctx, i)))];
    }
    checkRepeats(ctx, reps.values, x.shape.length);
    const out = x.shape.map((d, i) => {
      const r = reps.values[i]!;
      if (typeof d === 'number' || r === 0) return typeof d === 'number' ? d * r : 0;
      return r === 1 ? d : freshDim(ctx, i);
    });
    return [tensorType(x.dtype, out)];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const reps = need(ctx, ctx.inputs, 1).toArray();
    checkRepeats(ctx, reps, x.rank);
    const shape = x.shape.map((d, i) => d * reps[i]!);
    // View the output as [r0, d0, r1, d1, ...]: repeat dims read the same data (stride 0).
    const inStrides = stridesOf(x.shape);
    const viewShape: number[] = [];
    const viewStrides: number[] = [];
    x.shape.forEach((d, i) => {
      viewShape.push(reps[i]!, d);
      viewStrides.push(0, inStrides[i]!);
    });
    const out = allocData(x.dtype, numel(shape));
    copyStrided(x.data, 0, viewShape, viewStrides, out);
    return [new Tensor(x.dtype, shape, out)];
  },
};

// ---------------------------------------------------------------------------------------------
// DepthToSpace, SpaceToDepth (NCHW)

function blockOf(ctx: RuleCtx): number {
  const b = ctx.attr.int('blocksize');
  if (b < 1) ctx.fail(`blocksize must be positive, got ${b}`);
  return b;
}

function need4d(ctx: RuleCtx, shape: readonly Dim[]): void {
  if (shape.length !== 4) ctx.fail(`expected a 4-D NCHW input, got rank ${shape.length} ${fmtShape(shape)}`);
}

function scaleDim(ctx: RuleCtx, d: Dim, mul: number, div: number, tag: number, what: string): Dim {
  if (typeof d === 'string') return mul === div ? d : freshDim(ctx, tag);
  if ((d * mul) % div !== 0) ctx.fail(`${what} ${d} is not divisible by ${div}`);
  return (d * mul) / div;
}

const depthToSpace: OpRule = {
  doc: 'DepthToSpace(x: [N,C,H,W]) {blocksize b, mode DCR|CRD}: -> [N, C/b², H*b, W*b].',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    need4d(ctx, x.shape);
    const b = blockOf(ctx);
    const mode = ctx.attr.string('mode', 'DCR');
    if (mode !== 'DCR' && mode !== 'CRD') ctx.fail(`mode must be DCR or CRD, got '${mode}'`);
    const [n, c, h, w] = x.shape as [Dim, Dim, Dim, Dim];
    return [tensorType(x.dtype, [n, scaleDim(ctx, c, 1, b * b, 1, 'channel count'), scaleDim(ctx, h, b, 1, 2, 'height'), scaleDim(ctx, w, b, 1, 3, 'width')])];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const b = blockOf(ctx);
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const co = c / (b * b);
    const hw = h * w;
    // Output viewed as [N, C', H, b1, W, b2]; strides locate each element in the input.
    const [sC, sB1, sB2] = ctx.attr.string('mode', 'DCR') === 'CRD' ? [b * b * hw, b * hw, hw] : [hw, b * co * hw, co * hw];
    const out = allocData(x.dtype, x.size);
    copyStrided(x.data, 0, [n, co, h, b, w, b], [c * hw, sC, w, sB1, 1, sB2], out);
    return [new Tensor(x.dtype, [n, co, h * b, w * b], out)];
  },
};

const spaceToDepth: OpRule = {
  doc: 'SpaceToDepth(x: [N,C,H,W]) {blocksize b}: -> [N, C*b², H/b, W/b] (channel index = (b1*b + b2)*C + c).',
  infer(ctx: InferCtx) {
    const x = need(ctx, ctx.inputs, 0);
    need4d(ctx, x.shape);
    const b = blockOf(ctx);
    const [n, c, h, w] = x.shape as [Dim, Dim, Dim, Dim];
    return [tensorType(x.dtype, [n, scaleDim(ctx, c, b * b, 1, 1, 'channel count'), scaleDim(ctx, h, 1, b, 2, 'height'), scaleDim(ctx, w, 1, b, 3, 'width')])];
  },
  run(ctx: RunCtx) {
    const x = need(ctx, ctx.inputs, 0);
    const b = blockOf(ctx);
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const ho = h / b;
    const wo = w / b;
    // Output viewed as [N, b1, b2, C, H', W'] over the input viewed as [N, C, H', b1, W', b2].
    const out = allocData(x.dtype, x.size);
    copyStrided(x.data, 0, [n, b, b, c, ho, wo], [c * h * w, w, 1, h * w, b * w, b], out);
    return [new Tensor(x.dtype, [n, c * b * b, ho, wo], out)];
  },
};

export const layoutRules: { readonly [K in LayoutOp]: OpRule } = {
  Reshape: reshape,
  Transpose: transpose,
  Flatten: flatten,
  Squeeze: squeeze,
  Unsqueeze: unsqueeze,
  Expand: expand,
  Tile: tile,
  DepthToSpace: depthToSpace,
  SpaceToDepth: spaceToDepth,
};
