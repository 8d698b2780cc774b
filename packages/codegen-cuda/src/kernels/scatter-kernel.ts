/**
 * Scatter kernels (ScatterElements, ScatterND), the second of copy-then-scatter: the planner
 * stores `data` into the output buffer with an ordinary (fusable) sink, then this kernel writes
 * the updates into it. Deterministic and race-free without atomics:
 * - ScatterElements: one thread per update line (every coordinate but `axis`); it walks the line
 *   in order, so duplicates combine in the interpreter's order (threads own disjoint outputs:
 *   the coordinates off the axis are the update's own);
 * - ScatterND without reduction: one thread per update element (duplicate indices are undefined
 *   in ONNX); with a reduction: one thread per slice element, walking the index tuples in order.
 * Out-of-range indices (after wrapping negatives) are skipped.
 */
import type { Node, Value } from '@paradit/ir';
import type { Expr } from './expr';
import type { Sink } from './plan';
import { contiguousStrides, indexType, numelOf } from './expr';
import { Evaluator, Params } from './eval';
import { computeType, fromStorage, isFloatCompute, roundTo, toStorage } from './c-types';
import { SourceBuilder } from './source-builder';

export type ScatterReduction = 'none' | 'add' | 'mul' | 'max' | 'min';

export interface ScatterPlan {
  readonly kind: 'elements' | 'nd';
  /** The copy of `data` into `out` (a pointwise kernel before the scatter kernel). */
  readonly copy: Sink;
  readonly node: Node;
  readonly out: Value;
  readonly outShape: readonly number[];
  readonly indices: Expr;
  readonly updates: Expr;
  readonly axis: number;
  readonly reduction: ScatterReduction;
}

const SCATTER_BLOCK = 128;

function combine(r: ScatterReduction, o: string, v: string, float: boolean): string {
  switch (r) {
    case 'none':
      return v;
    case 'add':
      return `(${o} + ${v})`;
    case 'mul':
      return `(${o} * ${v})`;
    case 'max':
      return float ? `pdt_max(${o}, ${v})` : `(${v} > ${o} ? ${v} : ${o})`;
    case 'min':
      return float ? `pdt_min(${o}, ${v})` : `(${v} < ${o} ? ${v} : ${o})`;
  }
}

/** Emits `const idx n<d> = v % s; v /= s;` innermost first and returns the names (outermost first). */
function unflatten(b: SourceBuilder, idx: string, v: string, shape: readonly number[], tag: string): string[] {
  const names: string[] = new Array<string>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    names[d] = `${tag}${d}`;
    b.emit(`const ${idx} ${tag}${d} = ${v} % ${shape[d]};`);
    b.emit(`${v} /= ${shape[d]};`);
  }
  return names;
}

export function emitScatter(name: string, plan: ScatterPlan): { source: string; grid: number; block: number; params: Params } {
  const os = plan.outShape;
  const us = plan.updates.shape;
  const is = plan.indices.shape;
  const idx = indexType(Math.max(numelOf(os), numelOf(us)), [plan.indices, plan.updates]);
  const b = new SourceBuilder();
  const params = new Params();
  const ev = new Evaluator(b, params, idx);
  const out = params.write(plan.out);
  const dt = plan.out.dtype;
  const ct = computeType(dt);
  const float = isFloatCompute(dt);
  const ostr = contiguousStrides(os);
  const store = (pos: readonly string[], v: string): void => {
    const off = pos.map((p, d) => `(${idx})${ostr[d]} * ${p}`).join(' + ') || '0';
    const o = b.tmp('o');
    b.emit(`const ${idx} ${o} = ${off};`);
    const cur = plan.reduction === 'none' ? '' : `${fromStorage(dt, `${out}[${o}]`)}`;
    b.emit(`${out}[${o}] = ${toStorage(dt, `(${ct})(${roundTo(dt, combine(plan.reduction, cur, v, float))})`)};`);
  };
  const wrap = (raw: string, size: number): string => {
    const g = b.tmp('g');
    b.emit(`${idx} ${g} = (${idx})(${raw});`);
    b.emit(`if (${g} < 0) ${g} += ${size};`);
    return g;
  };
  let threads: number;
  b.emit(`${idx} r = (${idx})blockIdx.x * ${SCATTER_BLOCK} + (${idx})threadIdx.x;`);
  if (plan.kind === 'elements') {
    const ax = plan.axis;
    const lineShape = us.map((d, k) => (k === ax ? 1 : d));
    threads = numelOf(lineShape);
    b.emit(`if (r >= ${threads}) return;`);
    const pos = unflatten(b, idx, 'r', lineShape, 'u');
    b.open(`for (${idx} t = 0; t < ${us[ax]}; t++)`);
    ev.push();
    const at = pos.map((p, k) => (k === ax ? 't' : p));
    const g = wrap(ev.eval(plan.indices, { key: 'i', start: at, lanes: 1 })[0]!, os[ax]!);
    const v = ev.eval(plan.updates, { key: 'u', start: at, lanes: 1 })[0]!;
    b.open(`if (${g} >= 0 && ${g} < ${os[ax]})`);
    store(at.map((p, k) => (k === ax ? g : p)), v);
    b.close();
    ev.pop();
    b.close();
  } else {
    const k = is[is.length - 1]!;
    const lead = is.slice(0, -1);
    const slice = os.slice(k);
    const U = numelOf(lead);
    const S = numelOf(slice);
    const body = (u: readonly string[], s: readonly string[]): void => {
      const tuple: string[] = [];
      for (let j = 0; j < k; j++) tuple.push(wrap(ev.eval(plan.indices, { key: `i${j}`, start: [...u, String(j)], lanes: 1 })[0]!, os[j]!));
      const v = ev.eval(plan.updates, { key: 'u', start: [...u, ...s], lanes: 1 })[0]!;
      const ok = tuple.map((g, j) => `${g} >= 0 && ${g} < ${os[j]}`).join(' && ') || 'true';
      b.open(`if (${ok})`);
      store([...tuple, ...s], v);
      b.close();
    };
    if (plan.reduction === 'none') {
      threads = U * S;
      b.emit(`if (r >= ${threads}) return;`);
      const s = unflatten(b, idx, 'r', slice, 's');
      const u = unflatten(b, idx, 'r', lead, 'u');
      body(u, s);
    } else {
      threads = S;
      b.emit(`if (r >= ${threads}) return;`);
      const s = unflatten(b, idx, 'r', slice, 's');
      b.open(`for (${idx} q = 0; q < ${U}; q++)`);
      ev.push();
      b.emit(`${idx} qq = q;`);
      const u = unflatten(b, idx, 'qq', lead, 'u');
      body(u, s);
      ev.pop();
      b.close();
    }
  }
  const source =
    ev.globals.join('') +
    `extern "C" __global__ void __launch_bounds__(${SCATTER_BLOCK}) ${name}(${params.decl()}) {\n` +
    b.text().split('\n').filter((l) => l).map((l) => `  ${l}`).join('\n') +
    '\n}\n';
  return { source, grid: Math.max(1, Math.ceil(threads / SCATTER_BLOCK)), block: SCATTER_BLOCK, params };
}
