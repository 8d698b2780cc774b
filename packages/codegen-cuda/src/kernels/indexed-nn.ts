/**
 * Indexed rules of the nn ops the GEMM and row kernels do not take: direct Conv and
 * ConvTranspose (any group, stride, dilation, pads), MaxPool (with Indices), AveragePool,
 * the global pools, Gemm forms cuBLASLt is not given, inference BatchNormalization,
 * InstanceNormalization and LayerNormalization over several axes or with its Mean/InvStdDev
 * outputs. One thread per output element with loops over its window or normalized block,
 * accumulating in double like the interpreter (packages/ir/src/ops/nn-*.ts). These are
 * correctness paths for shapes DiT exports rarely send here, not fast kernels.
 */
import type { Node, OpKind, RuleCtx, Value } from '@paradit/ir';
import { readWindow, resolveWindow } from '@paradit/ir';
import type { Expr } from './expr';
import type { IndexCtx, PlanAccess } from './indexed';
import { indexed, let_, rule } from './indexed';
import { attrs, normAxis } from './plan-ops';
import { computeType } from './c-types';
import { CodegenError } from './codegen-error';

type Lower = (node: Node, p: PlanAccess, opset: number) => (Expr | undefined)[];

const out0 = (node: Node): Value => node.outputs[0]!;

function ruleCtx(node: Node): RuleCtx {
  const fail = (m: string): never => {
    throw CodegenError.at(node, m);
  };
  return { node: { op: node.op, name: node.name, attrs: node.attrs }, opset: 0, numOutputs: node.outputs.length, attr: attrs(node), fail };
}

function local(c: IndexCtx, ctype: string, init: string, prefix = 'a'): string {
  const t = c.tmp(prefix);
  c.emit(`${ctype} ${t} = ${init};`);
  return t;
}

/** Nested loops over a box of sizes; body gets one index name per dim. */
function loops(c: IndexCtx, sizes: readonly number[], body: (ix: string[]) => void, got: string[] = []): void {
  if (got.length === sizes.length) return body(got);
  c.loop(sizes[got.length]!, (v) => loops(c, sizes, body, [...got, v]));
}

/** `(t)` clamped-index reads of a broadcastable operand (shape s) at output position `at`. */
function bcast(at: readonly string[], s: readonly number[]): string[] {
  const lead = at.length - s.length;
  return s.map((d, i) => (d === 1 ? '0' : at[i + lead]!));
}

interface Geometry {
  readonly kernel: readonly number[];
  readonly strides: readonly number[];
  readonly dilations: readonly number[];
  readonly padB: readonly number[];
  readonly padE: readonly number[];
}

function windowOf(node: Node, xs: readonly number[], ceil: boolean, kernelFromWeights?: readonly number[]): Geometry {
  const ctx = ruleCtx(node);
  const w = readWindow(ctx, xs.length - 2, kernelFromWeights);
  const r = resolveWindow(ctx, xs.slice(2), w, ceil);
  return { kernel: w.kernel, strides: w.strides, dilations: w.dilations, padB: r.padB, padE: r.padE };
}

const Conv: Lower = (node, p) => {
  const [x, w, b] = node.inputs;
  const xs = p.shape(x!);
  const ws = p.shape(w!);
  const g = windowOf(node, xs, false, ws.slice(2));
  const group = attrs(node).int('group', 1);
  const Mg = ws[0]! / group;
  const Cg = ws[1]!;
  const args = [p.materialize(x!), p.materialize(w!), ...(b ? [p.get(b)] : [])];
  const r = rule('conv', (c, at) => {
    const acc = local(c, 'double', b ? `(double)${c.read(2, [at[1]!])}` : '0.0', 's');
    const gc = let_(c, `(${at[1]} / ${Mg}) * ${Cg}`);
    c.loop(Cg, (cc) => loops(c, g.kernel, (k) => {
      const pos = k.map((kk, d) => let_(c, `${at[d + 2]} * ${g.strides[d]} - ${g.padB[d]} + ${kk} * ${g.dilations[d]}`));
      const ok = pos.map((q, d) => `${q} >= 0 && ${q} < ${xs[d + 2]}`).join(' && ');
      c.branch(ok || 'true', () => c.emit(`${acc} += (double)${c.read(0, [at[0]!, `(${gc} + ${cc})`, ...pos])} * (double)${c.read(1, [at[1]!, cc, ...k])};`));
    }));
    return `(${computeType(out0(node).dtype)})${acc}`;
  });
  return [indexed(node, out0(node), p.shape(out0(node)), r, args)];
};

/** ConvTranspose's begin pads (ONNX: output_shape / auto_pad / pads), as its shape rule derives them. */
function convTransposePads(node: Node, xs: readonly number[], ws: readonly number[], os: readonly number[]): Geometry {
  const ctx = ruleCtx(node);
  const n = xs.length - 2;
  const w = readWindow(ctx, n, ws.slice(2));
  const a = attrs(node);
  const outPad = a.ints('output_padding', new Array<number>(n).fill(0));
  const explicit = a.optInts('output_shape') !== undefined;
  const same = w.autoPad === 'SAME_UPPER' || w.autoPad === 'SAME_LOWER';
  const padB = xs.slice(2).map((size, i) => {
    const ek = (w.kernel[i]! - 1) * w.dilations[i]! + 1;
    const full = w.strides[i]! * (size - 1) + outPad[i]! + ek;
    if (!explicit && !same) return w.pads[i]!;
    const total = full - os[i + 2]!;
    return w.autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : total - Math.floor(total / 2);
  });
  return { kernel: w.kernel, strides: w.strides, dilations: w.dilations, padB, padE: padB.map(() => 0) };
}

const ConvTranspose: Lower = (node, p) => {
  const [x, w, b] = node.inputs;
  const xs = p.shape(x!);
  const ws = p.shape(w!);
  const os = p.shape(out0(node));
  const g = convTransposePads(node, xs, ws, os);
  const group = attrs(node).int('group', 1);
  const Mg = ws[1]!;
  const Cg = xs[1]! / group;
  const args = [p.materialize(x!), p.materialize(w!), ...(b ? [p.get(b)] : [])];
  const r = rule('conv_transpose', (c, at) => {
    const acc = local(c, 'double', b ? `(double)${c.read(2, [at[1]!])}` : '0.0', 's');
    const gc = let_(c, `(${at[1]} / ${Mg}) * ${Cg}`);
    const ml = let_(c, `(${at[1]} % ${Mg})`);
    c.loop(Cg, (cc) => loops(c, g.kernel, (k) => {
      const t = k.map((kk, d) => let_(c, `${at[d + 2]} + ${g.padB[d]} - ${kk} * ${g.dilations[d]}`));
      const i = t.map((q, d) => `(${q} / ${g.strides[d]})`);
      const ok = t.map((q, d) => `${q} >= 0 && ${q} % ${g.strides[d]} == 0 && ${q} / ${g.strides[d]} < ${xs[d + 2]}`).join(' && ');
      c.branch(ok, () => c.emit(`${acc} += (double)${c.read(0, [at[0]!, `(${gc} + ${cc})`, ...i])} * (double)${c.read(1, [`(${gc} + ${cc})`, ml, ...k])};`));
    }));
    return `(${computeType(out0(node).dtype)})${acc}`;
  });
  return [indexed(node, out0(node), os, r, args)];
};

/** Flat input index of a spatial position (row-major, or column-major over the spatial axes). */
function flatIndex(at: readonly string[], pos: readonly string[], xs: readonly number[], colMajor: boolean): string {
  const sp = xs.slice(2);
  const plane = sp.reduce((a, b) => a * b, 1);
  const base = `((${at[0]}) * ${xs[1]} + ${at[1]}) * ${plane}`;
  let off = '';
  if (colMajor) for (let d = sp.length - 1; d >= 0; d--) off = off ? `(${off}) * ${sp[d]} + ${pos[d]}` : pos[d]!;
  else sp.forEach((s, d) => (off = off ? `(${off}) * ${s} + ${pos[d]}` : pos[d]!));
  return `(${base} + ${off})`;
}

function pool(max: boolean): Lower {
  return (node, p) => {
    const x = node.inputs[0]!;
    const xs = p.shape(x);
    const a = attrs(node);
    const g = windowOf(node, xs, a.int('ceil_mode', 0) !== 0);
    const includePad = a.int('count_include_pad', 0) !== 0;
    const colMajor = a.int('storage_order', 0) === 1;
    const ct = computeType(x.dtype);
    const xe = p.materialize(x);
    const body = (c: IndexCtx, at: readonly string[], want: 'value' | 'index'): string => {
      const acc = local(c, 'double', max ? '-__longlong_as_double(0x7ff0000000000000LL)' : '0.0', 's');
      const arg = local(c, 'long long', '-1', 'ai');
      const cnt = local(c, 'long long', '0', 'n');
      const padded = local(c, 'long long', '0', 'np');
      loops(c, g.kernel, (k) => {
        const pos = k.map((kk, d) => let_(c, `${at[d + 2]} * ${g.strides[d]} - ${g.padB[d]} + ${kk} * ${g.dilations[d]}`));
        const ok = pos.map((q, d) => `${q} >= 0 && ${q} < ${xs[d + 2]}`).join(' && ');
        const inPad = pos.map((q, d) => `${q} >= ${-g.padB[d]!} && ${q} < ${xs[d + 2]! + g.padE[d]!}`).join(' && ');
        if (!max) c.branch(inPad, () => c.emit(`${padded}++;`));
        c.branch(ok, () => {
          const v = c.read(0, [at[0]!, at[1]!, ...pos]);
          if (max) c.branch(`(double)${v} > ${acc} || ${arg} < 0`, () => {
            c.emit(`${acc} = (double)${v};`);
            c.emit(`${arg} = ${flatIndex(at, pos, xs, colMajor)};`);
          });
          else {
            c.emit(`${acc} += (double)${v};`);
            c.emit(`${cnt}++;`);
          }
        });
      });
      if (want === 'index') return arg;
      if (max) return `(${ct})${acc}`;
      const d = includePad ? padded : cnt;
      return `(${ct})(${d} > 0 ? ${acc} / (double)${d} : __longlong_as_double(0x7ff8000000000000LL))`;
    };
    const os = p.shape(out0(node));
    const y = indexed(node, out0(node), os, rule(max ? 'max_pool' : 'avg_pool', (c, at) => body(c, at, 'value')), [xe]);
    const idx = max && node.outputs[1] ? indexed(node, node.outputs[1], os, rule('max_pool_indices', (c, at) => body(c, at, 'index')), [xe]) : undefined;
    return [y, idx];
  };
}

function globalPool(max: boolean): Lower {
  return (node, p) => {
    const x = node.inputs[0]!;
    const xs = p.shape(x);
    const ct = computeType(x.dtype);
    const r = rule(max ? 'global_max_pool' : 'global_avg_pool', (c, at) => {
      const acc = local(c, 'double', max ? '-__longlong_as_double(0x7ff0000000000000LL)' : '0.0', 's');
      loops(c, xs.slice(2), (k) => {
        const v = `(double)${c.read(0, [at[0]!, at[1]!, ...k])}`;
        c.emit(max ? `{ const double t = ${v}; if (t > ${acc} || t != t) ${acc} = t; }` : `${acc} += ${v};`);
      });
      const n = xs.slice(2).reduce((a, b) => a * b, 1);
      return max ? `(${ct})${acc}` : `(${ct})(${acc} / ${n}.0)`;
    });
    return [indexed(node, out0(node), p.shape(out0(node)), r, [p.materialize(x)])];
  };
}

const Gemm: Lower = (node, p) => {
  const [A, B, C] = node.inputs;
  const a = attrs(node);
  const ta = a.int('transA', 0) === 1;
  const tb = a.int('transB', 0) === 1;
  const alpha = a.float('alpha', 1);
  const beta = a.float('beta', 1);
  const K = p.shape(A!)[ta ? 0 : 1]!;
  const cs = C ? p.shape(C) : [];
  const args = [p.materialize(A!), p.materialize(B!), ...(C ? [p.get(C)] : [])];
  const r = rule('gemm', (c, [i, j]) => {
    const acc = local(c, 'double', '0.0', 's');
    c.loop(K, (k) => c.emit(`${acc} += (double)${c.read(0, ta ? [k, i!] : [i!, k])} * (double)${c.read(1, tb ? [j!, k] : [k, j!])};`));
    const bias = C ? ` + ${beta} * (double)${c.read(2, bcast([i!, j!], cs))}` : '';
    return `(${computeType(out0(node).dtype)})(${alpha} * ${acc}${bias})`;
  });
  return [indexed(node, out0(node), p.shape(out0(node)), r, args)];
};

/**
 * Two-pass moments of operand 0 over the loop box (`pos` maps the box's loop variables to x's
 * index): emits the mean and the sum of squared deviations, both in double.
 */
function boxMoments(c: IndexCtx, box: readonly number[], pos: (k: readonly string[]) => string[]): { mean: string; sq: string } {
  const n = box.reduce((a, b) => a * b, 1);
  const sum = local(c, 'double', '0.0', 'm');
  loops(c, box, (k) => c.emit(`${sum} += (double)${c.read(0, pos(k))};`));
  const mean = c.tmp('mu');
  c.emit(`const double ${mean} = ${sum} / ${n}.0;`);
  const sq = local(c, 'double', '0.0', 'v');
  loops(c, box, (k) => c.emit(`{ const double t = (double)${c.read(0, pos(k))} - ${mean}; ${sq} += t * t; }`));
  return { mean, sq };
}

/**
 * Normalization of x over the dims `norm` (mean and variance in double, two passes), then the
 * affine part read through `affine` (scale, bias operand positions).
 */
function normalized(c: IndexCtx, at: readonly string[], xs: readonly number[], norm: readonly number[], eps: number): { mean: string; inv: string } {
  const box = norm.map((d) => xs[d]!);
  const n = box.reduce((a, b) => a * b, 1);
  const { mean, sq } = boxMoments(c, box, (k) => at.map((v, d) => (norm.includes(d) ? k[norm.indexOf(d)]! : v)));
  const inv = c.tmp('inv');
  c.emit(`const double ${inv} = 1.0 / sqrt(${sq} / ${n}.0 + ${eps});`);
  return { mean, inv };
}

/** LayerNormalization from any axis, with its optional Mean and InvStdDev outputs. */
const LayerNormalization: Lower = (node, p) => {
  const [x, scale, bias] = node.inputs;
  const xs = p.shape(x!);
  const a = attrs(node);
  const axis = normAxis(node, a.int('axis', -1), xs.length);
  const eps = a.float('epsilon', 1e-5);
  const norm = xs.map((_, d) => d).filter((d) => d >= axis);
  const xe = p.materialize(x!);
  const args = [xe, p.get(scale!), ...(bias ? [p.get(bias)] : [])];
  const ss = p.shape(scale!);
  const bs = bias ? p.shape(bias) : [];
  const y = rule('layer_norm_axes', (c, at) => {
    const { mean, inv } = normalized(c, at, xs, norm, eps);
    const b = bias ? ` + (double)${c.read(2, bcast(at, bs))}` : '';
    return `(${computeType(out0(node).dtype)})(((double)${c.read(0, at)} - ${mean}) * ${inv} * (double)${c.read(1, bcast(at, ss))}${b})`;
  });
  const stat = (which: 'mean' | 'inv'): ReturnType<typeof rule> =>
    rule(`layer_norm_${which}`, (c, at) => {
      const r = normalized(c, at.map((v, d) => (d >= axis ? '0' : v)), xs, norm, eps);
      return `(float)${which === 'mean' ? r.mean : r.inv}`;
    });
  const outs = node.outputs;
  return [
    indexed(node, outs[0]!, xs, y, args),
    outs[1] ? indexed(node, outs[1], p.shape(outs[1]), stat('mean'), [xe]) : undefined,
    outs[2] ? indexed(node, outs[2], p.shape(outs[2]), stat('inv'), [xe]) : undefined,
  ];
};

const InstanceNormalization: Lower = (node, p) => {
  const [x, scale, bias] = node.inputs;
  const xs = p.shape(x!);
  const eps = attrs(node).float('epsilon', 1e-5);
  const norm = xs.map((_, d) => d).filter((d) => d >= 2);
  const r = rule('instance_norm', (c, at) => {
    const { mean, inv } = normalized(c, at, xs, norm, eps);
    return `(${computeType(out0(node).dtype)})(((double)${c.read(0, at)} - ${mean}) * ${inv} * (double)${c.read(1, [at[1]!])} + (double)${c.read(2, [at[1]!])})`;
  });
  return [indexed(node, out0(node), xs, r, [p.materialize(x!), p.get(scale!), p.get(bias!)])];
};

/** GroupNormalization: statistics over (C / num_groups channels x spatial); scale/bias per channel (opset 21) or per group. */
const GroupNormalization: Lower = (node, p, opset) => {
  const [x, scale, bias] = node.inputs;
  const xs = p.shape(x!);
  const a = attrs(node);
  const G = a.int('num_groups');
  const eps = a.float('epsilon', 1e-5);
  const Cg = xs[1]! / G;
  const sl = p.shape(scale!)[0]!;
  const perChannel = opset >= 21 || (sl !== G && sl === xs[1]);
  const box = [Cg, ...xs.slice(2)];
  const n = box.reduce((s, d) => s * d, 1);
  const r = rule('group_norm', (c, at) => {
    const g0 = let_(c, `(${at[1]} / ${Cg}) * ${Cg}`);
    const { mean, sq } = boxMoments(c, box, (k) => [at[0]!, `(${g0} + ${k[0]})`, ...k.slice(1)]);
    const pi = perChannel ? at[1]! : `(${at[1]} / ${Cg})`;
    return `(${computeType(out0(node).dtype)})(((double)${c.read(0, at)} - ${mean}) / sqrt(${sq} / ${n}.0 + ${eps}) * (double)${c.read(1, [pi])} + (double)${c.read(2, [pi])})`;
  });
  return [indexed(node, out0(node), xs, r, [p.materialize(x!), p.get(scale!), p.get(bias!)])];
};

/** Inference BatchNormalization: per-channel affine of the running statistics. */
const BatchNormalization: Lower = (node, p) => {
  const a = attrs(node);
  if (a.int('training_mode', 0) === 1) throw CodegenError.at(node, 'training_mode=1 (batch statistics and running-stat outputs) has no kernel; export the model in eval mode');
  const [x, scale, bias, mean, v] = node.inputs as Value[];
  const eps = a.float('epsilon', 1e-5);
  const r = rule('batch_norm', (c, at) => {
    const ch = [at[1]!];
    return `(${computeType(out0(node).dtype)})(((double)${c.read(0, at)} - (double)${c.read(3, ch)}) / sqrt((double)${c.read(4, ch)} + ${eps}) * (double)${c.read(1, ch)} + (double)${c.read(2, ch)})`;
  });
  return [indexed(node, out0(node), p.shape(out0(node)), r, [p.get(x!), p.get(scale!), p.get(bias!), p.get(mean!), p.get(v!)])];
};

export const NN_LOWERINGS: Readonly<Partial<Record<OpKind, Lower>>> = {
  Conv, ConvTranspose, MaxPool: pool(true), AveragePool: pool(false), GlobalMaxPool: globalPool(true), GlobalAveragePool: globalPool(false),
  Gemm, InstanceNormalization, BatchNormalization, GroupNormalization,
};

/** LayerNormalization forms the row kernel does not take (several axes, statistics outputs used). */
export const LAYER_NORM_FALLBACK: Lower = LayerNormalization;
