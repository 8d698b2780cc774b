/**
 * The generic element-indexed path: an op without a dedicated emitter computes each output
 * element with index math over its operands (one thread per element, inside the pointwise or
 * loop kernel that holds the expression). An IndexRule is decided at plan time (shapes, attributes
 * and constant operands already read) and only renders C: given the output multi-index it reads
 * its operands at computed positions (`read`), with loops and branches in their own scopes.
 *
 * Because the result is an ordinary Expr, producers are evaluated inline where the rule reads
 * them and consumers fuse on top (Pad -> Conv input, Tile -> Mul, ...). Rules that read an
 * operand many times per element (reductions along an axis, windows) materialize it first.
 *
 * Per-op rules: indexed-gather.ts (data movement) and indexed-loop.ts (per-element loops).
 */
import type { DType, Node, Value } from '@paradit/ir';
import type { Expr, IndexedExpr } from './expr';
import { freshId } from './expr';

export interface IndexCtx {
  /** The C integer type of indices in this kernel (int or long long). */
  readonly idx: string;
  emit(line: string): void;
  tmp(prefix?: string): string;
  /** Operand k at the multi-index `at` (C expressions, one per operand dim), in its compute type. */
  read(k: number, at: readonly string[]): string;
  /** `for (idx v = 0; v < n; v++) { body(v) }` with its own memo scope. */
  loop(n: number | string, body: (v: string) => void): void;
  /** `if (cond) { then } else { other }` with their own memo scopes. */
  branch(cond: string, then: () => void, other?: () => void): void;
  /** A module-scope declaration (a constant table), emitted once before the kernel. */
  global(decl: string): void;
}

export interface IndexRule {
  readonly name: string;
  /** Emits statements and returns the C expression of the element at `at` (e.dtype's compute type). */
  emit(c: IndexCtx, at: readonly string[], e: IndexedExpr): string;
}

/** What the per-op rules need from the planner. */
export interface PlanAccess {
  get(v: Value): Expr;
  /** Gives v a buffer (unless it already reads one contiguously) and returns its contiguous leaf. */
  materialize(v: Value): Expr;
  shape(v: Value): number[];
}

/** Makes the lowering of one node: the expression of each output, or undefined when the op has no indexed rule. */
export type IndexedLowering = (node: Node, p: PlanAccess, opset: number) => (Expr | undefined)[];

export function indexed(node: Node, out: Value, shape: readonly number[], rule: IndexRule, args: readonly Expr[], dtype: DType = out.dtype): IndexedExpr {
  return { kind: 'indexed', id: freshId(), dtype, shape, nodes: [node], rule, args };
}

/** A rule from a render function (most rules need nothing else). */
export function rule(name: string, emit: IndexRule['emit']): IndexRule {
  return { name, emit };
}

/** `const idx t = expr;` and returns t. */
export function let_(c: IndexCtx, expr: string, prefix = 'j'): string {
  const t = c.tmp(prefix);
  c.emit(`const ${c.idx} ${t} = ${expr};`);
  return t;
}

/** A guarded module-scope constant table (content-named, so identical tables are shared). */
export function table(c: IndexCtx, ctype: string, values: readonly number[]): string {
  let h = 2166136261;
  const text = values.map((v) => (ctype === 'double' ? fmtDouble(v) : String(Math.trunc(v)))).join(', ');
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  const name = `pdt_tab_${ctype === 'double' ? 'd' : 'i'}${values.length}_${h.toString(16)}`;
  const guard = name.toUpperCase();
  c.global(`#ifndef ${guard}\n#define ${guard}\nstatic __device__ const ${ctype} ${name}[${Math.max(1, values.length)}] = {${text || '0'}};\n#endif\n`);
  return name;
}

function fmtDouble(v: number): string {
  if (Number.isNaN(v)) return '(0.0 / 0.0)';
  if (!Number.isFinite(v)) return v > 0 ? '(1.0 / 0.0)' : '(-1.0 / 0.0)';
  const s = v.toPrecision(17);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}
