/**
 * Resize (nearest / linear / cubic, every coordinate mode the interpreter takes) as an indexed
 * rule. The interpreter's own per-axis taps (ir resizeTaps: source indices and weights for each
 * output index) become constant tables in the kernel, so both agree on every rounding decision;
 * the kernel applies them axis by axis as the interpreter does (an output outside a
 * tf_crop_and_resize roi takes the extrapolation value at that axis).
 */
import type { Node, Value } from '@paradit/ir';
import { resizeTaps } from '@paradit/ir';
import type { Expr } from './expr';
import type { PlanAccess } from './indexed';
import { indexed, rule, table } from './indexed';
import { attrs } from './plan-ops';
import { computeType } from './c-types';
import { CodegenError } from './codegen-error';

function constFloats(node: Node, i: number, what: string): number[] | undefined {
  const v: Value | null | undefined = node.inputs[i];
  if (!v) return undefined;
  if (!v.constant) throw CodegenError.at(node, `input ${i} (${what}) must be a compile-time constant for a CUDA kernel (the output shape depends on it)`);
  return Array.from(v.constant.tensor().data, (x) => Number(x));
}

export function lowerResize(node: Node, p: PlanAccess, opset: number): (Expr | undefined)[] {
  const x = node.inputs[0]!;
  const xs = p.shape(x);
  const old = opset > 0 && opset < 11;
  const fail = (m: string): never => {
    throw CodegenError.at(node, m);
  };
  const ctx = { node: { op: node.op, name: node.name, attrs: node.attrs }, opset: opset || 19, numOutputs: 1, attr: attrs(node), fail };
  const operands = old
    ? { scales: constFloats(node, 1, 'scales') }
    : { roi: constFloats(node, 1, 'roi'), scales: constFloats(node, 2, 'scales'), sizes: constFloats(node, 3, 'sizes') };
  const { shape, taps } = resizeTaps(ctx, xs, operands);
  const ct = computeType(x.dtype);
  const r = rule('resize', (c, at) => {
    const tabs = taps.map((t) => ({
      t,
      index: table(c, 'int', Array.from(t.index)),
      weight: table(c, 'double', Array.from(t.weight)),
      extra: t.extrapolate.some((e) => e) ? table(c, 'int', Array.from(t.extrapolate)) : undefined,
    }));
    // value after applying taps[0..k) at `pos` (output coords on those axes, input coords elsewhere)
    const value = (k: number, pos: readonly string[]): string => {
      if (k === 0) return `(double)${c.read(0, pos)}`;
      const { t, index, weight, extra } = tabs[k - 1]!;
      const o = pos[t.axis]!;
      const v = c.tmp('rv');
      c.emit(`double ${v} = 0.0;`);
      const interp = (): void =>
        c.loop(t.n, (q) => {
          const w = c.tmp('w');
          c.emit(`const double ${w} = ${weight}[${o} * ${t.n} + ${q}];`);
          c.branch(`${w} != 0.0`, () => {
            const src = c.tmp('si');
            c.emit(`const ${c.idx} ${src} = ${index}[${o} * ${t.n} + ${q}];`);
            c.emit(`${v} += ${w} * ${value(k - 1, pos.map((s, d) => (d === t.axis ? src : s)))};`);
          });
        });
      if (extra) c.branch(`${extra}[${o}]`, () => c.emit(`${v} = ${t.fill};`), interp);
      else interp();
      return v;
    };
    return `(${ct})${value(tabs.length, at)}`;
  });
  return [indexed(node, node.outputs[0]!, shape, r, [p.materialize(x)])];
}
