/**
 * Indexed rules with a loop per output element: scans and index-producing reductions along one
 * axis (ArgMax, ArgMin, Hardmax, CumSum, TopK) and the log reductions (ReduceLogSum,
 * ReduceLogSumExp). One thread computes one output element; its operand is materialized first
 * (it is read many times), so the loop reads a buffer. Accumulation is in double like the
 * interpreter (packages/ir/src/ops/reduce-*.ts), ties and orders follow its rules.
 */
import type { Node, OpKind, Value } from '@paradit/ir';
import type { Expr } from './expr';
import type { IndexCtx, PlanAccess } from './indexed';
import { indexed, let_, rule } from './indexed';
import { attrs, constInts, normAxis, reduceAxes } from './plan-ops';
import { computeType, isFloatCompute } from './c-types';

type Lower = (node: Node, p: PlanAccess, opset: number) => (Expr | undefined)[];

const out0 = (node: Node): Value => node.outputs[0]!;

/** A mutable local initialised to `init`. */
function local(c: IndexCtx, ctype: string, init: string, prefix = 'a'): string {
  const t = c.tmp(prefix);
  c.emit(`${ctype} ${t} = ${init};`);
  return t;
}

/** Position in x of output position `at` with `axis` set to q (kept = keepdims: at has the axis). */
function withAxis(at: readonly string[], axis: number, q: string, kept: boolean): string[] {
  if (kept) return at.map((a, d) => (d === axis ? q : a));
  return [...at.slice(0, axis), q, ...at.slice(axis)];
}

function argRule(max: boolean): Lower {
  return (node, p) => {
    const x = node.inputs[0]!;
    const xs = p.shape(x);
    const a = attrs(node);
    const axis = normAxis(node, a.int('axis', 0), xs.length);
    const keep = a.int('keepdims', 1) === 1;
    const last = a.int('select_last_index', 0) === 1;
    const cmp = max ? (last ? '>=' : '>') : last ? '<=' : '<';
    const ct = computeType(x.dtype);
    const r = rule(max ? 'argmax' : 'argmin', (c, at) => {
      const best = local(c, ct, c.read(0, withAxis(at, axis, '0', keep)), 'b');
      const bi = local(c, 'long long', '0', 'bi');
      c.loop(xs[axis]!, (q) => {
        const v = c.read(0, withAxis(at, axis, q, keep));
        c.branch(`${v} ${cmp} ${best}`, () => {
          c.emit(`${best} = ${v};`);
          c.emit(`${bi} = ${q};`);
        });
      });
      return bi;
    });
    return [indexed(node, out0(node), p.shape(out0(node)), r, [p.materialize(x)])];
  };
}

/** Hardmax: 1 at the first maximum of the block (axis, or all dims from axis before opset 13). */
const Hardmax: Lower = (node, p, opset) => {
  const x = node.inputs[0]!;
  const xs = p.shape(x);
  const legacy = opset > 0 && opset < 13;
  const axis = normAxis(node, attrs(node).int('axis', legacy ? 1 : -1), xs.length);
  const dims = legacy ? xs.map((_, d) => d).filter((d) => d >= axis) : [axis];
  const n = dims.reduce((s, d) => s * xs[d]!, 1);
  const ct = computeType(x.dtype);
  const r = rule('hardmax', (c, at) => {
    const pos = (q: string): string[] => {
      const res = [...at];
      let rem = q;
      for (let k = dims.length - 1; k >= 0; k--) {
        const d = dims[k]!;
        res[d] = k === 0 ? rem : let_(c, `(${rem} % ${xs[d]})`);
        if (k > 0) rem = let_(c, `(${rem} / ${xs[d]})`);
      }
      return res;
    };
    const mine = dims.reduce((s, d) => (s === '' ? at[d]! : `(${s} * ${xs[d]} + ${at[d]})`), '');
    const best = local(c, ct, c.read(0, pos('0')), 'b');
    const bi = local(c, c.idx, '0', 'bi');
    c.loop(n, (q) => {
      const v = c.read(0, pos(q));
      c.branch(`${v} > ${best}`, () => {
        c.emit(`${best} = ${v};`);
        c.emit(`${bi} = ${q};`);
      });
    });
    return `(${bi} == ${mine} ? (${ct})1 : (${ct})0)`;
  });
  return [indexed(node, out0(node), xs, r, [p.materialize(x)])];
};

const CumSum: Lower = (node, p) => {
  const x = node.inputs[0]!;
  const xs = p.shape(x);
  const axis = normAxis(node, constInts(node, 1, 'axis')![0]!, xs.length);
  const a = attrs(node);
  const exclusive = a.int('exclusive', 0) === 1;
  const reverse = a.int('reverse', 0) === 1;
  const acc = isFloatCompute(x.dtype) ? 'double' : 'long long';
  const r = rule('cumsum', (c, at) => {
    const i = at[axis]!;
    const sum = local(c, acc, '0', 's');
    const cond = reverse ? (exclusive ? '>' : '>=') : exclusive ? '<' : '<=';
    c.loop(xs[axis]!, (q) => c.branch(`${q} ${cond} ${i}`, () => c.emit(`${sum} += (${acc})${c.read(0, at.map((v, d) => (d === axis ? q : v)))};`)));
    return `(${computeType(x.dtype)})${sum}`;
  });
  return [indexed(node, out0(node), xs, r, [p.materialize(x)])];
};

/**
 * TopK: output t along the axis is the t-th element of the order (better value first, lower
 * index first among equals): found by t + 1 selection passes, each taking the best element
 * after the previous one.
 */
const TopK: Lower = (node, p) => {
  const x = node.inputs[0]!;
  const xs = p.shape(x);
  const a = attrs(node);
  const axis = normAxis(node, a.int('axis', -1), xs.length);
  const largest = a.int('largest', 1) === 1;
  const ct = computeType(x.dtype);
  const better = largest ? '>' : '<';
  const emitSel = (c: IndexCtx, at: readonly string[]): { v: string; i: string } => {
    const t = at[axis]!;
    const pv = local(c, ct, '0', 'pv');
    const pi = local(c, c.idx, '-1', 'pi');
    c.loop(`${t} + 1`, () => {
      const bv = local(c, ct, '0', 'bv');
      const bj = local(c, c.idx, '-1', 'bj');
      c.loop(xs[axis]!, (q) => {
        const v = c.read(0, at.map((s, d) => (d === axis ? q : s)));
        const after = `(${pi} < 0 || ${v} ${largest ? '<' : '>'} ${pv} || (${v} == ${pv} && ${q} > ${pi}))`;
        const before = `(${bj} < 0 || ${v} ${better} ${bv} || (${v} == ${bv} && ${q} < ${bj}))`;
        c.branch(`${after} && ${before}`, () => {
          c.emit(`${bv} = ${v};`);
          c.emit(`${bj} = ${q};`);
        });
      });
      c.emit(`${pv} = ${bv};`);
      c.emit(`${pi} = ${bj};`);
    });
    return { v: pv, i: pi };
  };
  const xe = p.materialize(x);
  const vals = rule('topk_values', (c, at) => emitSel(c, at).v);
  const idx = rule('topk_indices', (c, at) => `(long long)${emitSel(c, at).i}`);
  const os = p.shape(out0(node));
  return [indexed(node, out0(node), os, vals, [xe]), node.outputs[1] ? indexed(node, node.outputs[1], os, idx, [xe]) : undefined];
};

function logReduce(exp: boolean): Lower {
  return (node, p) => {
    const x = node.inputs[0]!;
    const xs = p.shape(x);
    const axes = reduceAxes(node, xs.length);
    const keep = attrs(node).int('keepdims', 1) === 1;
    const n = axes.reduce((s, d) => s * xs[d]!, 1);
    const r = rule(exp ? 'reduce_log_sum_exp' : 'reduce_log_sum', (c, at) => {
      const kept = keep ? at : (() => {
        const res: string[] = [];
        let k = 0;
        xs.forEach((_, d) => res.push(axes.includes(d) ? '0' : at[k++]!));
        return res;
      })();
      const pos = (q: string): string[] => {
        const res = [...kept];
        let rem = q;
        for (let k = axes.length - 1; k >= 0; k--) {
          const d = axes[k]!;
          res[d] = k === 0 ? rem : let_(c, `(${rem} % ${xs[d]})`);
          if (k > 0) rem = let_(c, `(${rem} / ${xs[d]})`);
        }
        return res;
      };
      const m = local(c, 'double', exp ? '-__longlong_as_double(0x7ff0000000000000LL)' : '0.0', 'm');
      if (exp) c.loop(n, (q) => c.emit(`{ const double t = (double)${c.read(0, pos(q))}; if (t > ${m}) ${m} = t; }`));
      const s = local(c, 'double', '0.0', 's');
      c.loop(n, (q) => c.emit(exp ? `${s} += exp((double)${c.read(0, pos(q))} - ${m});` : `${s} += (double)${c.read(0, pos(q))};`));
      const res = exp ? `(${m} == -__longlong_as_double(0x7ff0000000000000LL) ? ${m} : log(${s}) + ${m})` : `log(${s})`;
      return `(${computeType(out0(node).dtype)})(${res})`;
    });
    return [indexed(node, out0(node), p.shape(out0(node)), r, [p.materialize(x)])];
  };
}

export const LOOP_LOWERINGS: Readonly<Partial<Record<OpKind, Lower>>> = {
  ArgMax: argRule(true),
  ArgMin: argRule(false),
  Hardmax,
  CumSum,
  TopK,
  ReduceLogSum: logReduce(false),
  ReduceLogSumExp: logReduce(true),
};

