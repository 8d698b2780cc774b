/**
 * Einsum forms that einsum-to-matmul.ts does not turn into GEMMs (diagonals, full sums, inner
 * products, sums over one operand): one thread per output element, a loop over every letter that
 * is summed away. Ellipses expand to as many letters as the operand's rank needs.
 */
import type { Node } from '@paradit/ir';
import type { Expr } from './expr';
import type { PlanAccess } from './indexed';
import { indexed, rule } from './indexed';
import { attrs } from './plan-ops';
import { computeType } from './c-types';
import { CodegenError } from './codegen-error';

/** Terms of `eq` with "..." replaced by upper-case letters (one per broadcast dim, right-aligned). */
function expand(node: Node, eq: string, ranks: readonly number[]): { ins: string[]; out: string } {
  const [lhs, rhsRaw] = eq.replace(/\s/g, '').split('->');
  const ins = lhs!.split(',');
  if (ins.length !== ranks.length) throw CodegenError.at(node, `equation '${eq}' has ${ins.length} operands, the node ${ranks.length}`);
  let ell = 0;
  const terms = ins.map((t, k) => {
    if (!t.includes('...')) return t;
    const n = ranks[k]! - (t.length - 3);
    ell = Math.max(ell, n);
    return t.replace('...', 'ABCDEFGHIJKLMNOP'.slice(16 - n));
  });
  const ellLetters = 'ABCDEFGHIJKLMNOP'.slice(16 - ell);
  let out: string;
  if (rhsRaw !== undefined) out = rhsRaw.replace('...', ellLetters);
  else {
    const counts = new Map<string, number>();
    for (const t of terms) for (const ch of t) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    out = ellLetters + [...counts].filter(([ch, n]) => n === 1 && ch >= 'a').map(([ch]) => ch).sort().join('');
  }
  return { ins: terms, out };
}

export function lowerEinsum(node: Node, p: PlanAccess): (Expr | undefined)[] {
  const ops = node.inputs.map((v) => v!);
  const shapes = ops.map((v) => p.shape(v));
  const { ins, out } = expand(node, attrs(node).string('equation'), shapes.map((s) => s.length));
  const size = new Map<string, number>();
  ins.forEach((t, k) => [...t].forEach((ch, d) => {
    const n = shapes[k]![d]!;
    if (n !== 1 || !size.has(ch)) size.set(ch, Math.max(n, size.get(ch) ?? 1));
  }));
  const summed = [...size.keys()].filter((ch) => !out.includes(ch));
  const dt = node.outputs[0]!.dtype;
  const r = rule('einsum', (c, at) => {
    const letter = new Map<string, string>([...out].map((ch, d) => [ch, at[d]!]));
    const acc = c.tmp('s');
    c.emit(`double ${acc} = 0.0;`);
    const body = (k: number): void => {
      if (k === summed.length) {
        const terms = ins.map((t, j) => `(double)${c.read(j, [...t].map((ch, d) => (shapes[j]![d] === 1 ? '0' : letter.get(ch)!)))}`);
        c.emit(`${acc} += ${terms.join(' * ') || '1.0'};`);
        return;
      }
      c.loop(size.get(summed[k]!)!, (v) => {
        letter.set(summed[k]!, v);
        body(k + 1);
      });
    };
    body(0);
    return `(${computeType(dt)})${acc}`;
  });
  return [indexed(node, node.outputs[0]!, p.shape(node.outputs[0]!), r, ops.map((v) => p.materialize(v)))];
}
