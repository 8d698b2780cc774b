/**
 * Turns the planner's sinks into kernel groups. Rules, in order:
 * - an expression may read the output of at most one row kernel, at that kernel's own positions
 *   (same shape, not under a select/gather/rope table, rope partners the thread holds); where not,
 *   the row kernel writes its output and readers load it (`demote`);
 * - a sink reading one row kernel is part of its epilogue; a row-free sink whose expression is
 *   part of a row kernel's input (gated_residual feeding layer_norm) is part of its prologue;
 * - the other sinks are pointwise kernels; sinks of one shape reading only fragment inputs share one.
 */
import type { Value } from '@paradit/ir';
import type { Expr } from './expr';
import { contiguousStrides, freshId, isContiguousLeaf, leaf, numelOf, rowPlansIn, substitute, visitExpr } from './expr';
import { reshapeStrides } from './views';
import type { Planner, Sink, LoopPlan, StoreView } from './plan';
import type { RowPlan } from './row-plan';
import type { ScatterPlan } from './scatter-kernel';

export type Group =
  | { readonly kind: 'row'; readonly plan: RowPlan; readonly prologue: Sink[]; readonly epilogue: Sink[] }
  | { readonly kind: 'pointwise'; readonly sinks: Sink[] }
  | { readonly kind: 'loop'; readonly plan: LoopPlan }
  | { readonly kind: 'scatter'; readonly plan: ScatterPlan };

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((d, i) => d === b[i]);

/** Row values of `plan` are read only where the row kernel holds them. */
function rowUseOk(e: Expr, plan: RowPlan): boolean {
  let ok = true;
  const walk = (x: Expr, free: boolean): void => {
    if (!ok) return;
    switch (x.kind) {
      case 'row':
        if (!free || x.plan !== plan) ok = false;
        return;
      case 'leaf':
      case 'const':
        return;
      case 'map':
        x.args.forEach((a) => walk(a, free));
        return;
      case 'select':
        x.pieces.forEach((a) => walk(a, false));
        return;
      case 'indexed':
        x.args.forEach((a) => walk(a, false));
        return;
      case 'gather':
        walk(x.x, false);
        walk(x.idx, false);
        return;
      case 'rope': {
        const C = plan.L / plan.V;
        const partnerOk = x.style === 'interleaved' ? plan.V >= 2 : (C / 2) % plan.T === 0 && (plan.L / 2) % plan.V === 0;
        walk(x.x, free && partnerOk);
        walk(x.cos, false);
        walk(x.sin, false);
        return;
      }
    }
  };
  walk(e, true);
  return ok;
}

export function assignGroups(p: Planner): Group[] {
  const rowLeaf = (plan: RowPlan): Expr => leaf(plan.outValue, plan.shape);
  const demote = (plans: Set<RowPlan>, e: Expr): Expr => {
    for (const q of plans) {
      if (!p.sinks.some((s) => s.value === q.outValue)) {
        p.sinks.push({ value: q.outValue, expr: { kind: 'row', id: freshId(), dtype: q.outDtype, shape: q.shape, nodes: [], plan: q } });
      }
    }
    const memo = new Map<RowPlan, Expr>();
    const get = (q: RowPlan): Expr => memo.get(q) ?? (memo.set(q, rowLeaf(q)), memo.get(q)!);
    return substitute(e, (x) => (x.kind === 'row' && plans.has(x.plan) ? get(x.plan) : undefined));
  };
  let changed = true;
  while (changed) {
    changed = false;
    for (const plan of p.rows) {
      for (const f of ['input', 'weight', 'bias'] as const) {
        const e = plan[f];
        if (!e) continue;
        const k = rowPlansIn(e);
        if (k.size) {
          plan[f] = demote(k, e);
          changed = true;
        }
      }
    }
    for (const sc of p.scatters) {
      const k = rowPlansIn(sc.copy.expr);
      if (k.size) {
        sc.copy.expr = demote(k, sc.copy.expr);
        changed = true;
      }
    }
    for (const loop of p.loops) {
      const k = rowPlansIn(loop.input);
      if (k.size) {
        loop.input = demote(k, loop.input);
        changed = true;
      }
    }
    for (let i = 0; i < p.sinks.length; i++) {
      const s = p.sinks[i]!;
      const k = rowPlansIn(s.expr);
      if (k.size === 0) continue;
      const plan = [...k][0]!;
      const primary = s.expr.kind === 'row' && s.value === plan.outValue;
      if (primary) continue;
      if (k.size > 1 || !sameShape(s.expr.shape, plan.shape) || !rowUseOk(s.expr, plan)) {
        s.expr = demote(k, s.expr);
        changed = true;
      }
    }
  }
  writePiecesInPlace(p);
  const groups: Group[] = [];
  const rowGroups = new Map<RowPlan, Extract<Group, { kind: 'row' }>>();
  for (const plan of p.rows) {
    const g = { kind: 'row' as const, plan, prologue: [] as Sink[], epilogue: [] as Sink[] };
    rowGroups.set(plan, g);
    groups.push(g);
  }
  const external = (e: Expr): boolean => {
    let ok = true;
    visitExpr(e, (x) => {
      if (x.kind === 'leaf' && !x.value.constant && !p.graph.inputs.includes(x.value)) ok = false;
    });
    return ok;
  };
  const pointwise = new Map<string, Sink[]>();
  for (const s of p.sinks) {
    const k = rowPlansIn(s.expr);
    if (k.size === 1) {
      rowGroups.get([...k][0]!)!.epilogue.push(s);
      continue;
    }
    const host = p.rows.find((plan) => sameShape(plan.shape, s.expr.shape) && contains(plan.input, s.expr) && !reads(plan.input, s.value));
    if (host) {
      rowGroups.get(host)!.prologue.push(s);
      continue;
    }
    if (external(s.expr)) {
      const key = s.expr.shape.join(',');
      const list = pointwise.get(key);
      if (list) {
        list.push(s);
        continue;
      }
      const fresh = [s];
      pointwise.set(key, fresh);
      groups.push({ kind: 'pointwise', sinks: fresh });
    } else groups.push({ kind: 'pointwise', sinks: [s] });
  }
  for (const plan of p.loops) groups.push({ kind: 'loop', plan });
  // After every group: the copy of a scatter's data (a sink above) must run before it.
  for (const plan of p.scatters) groups.push({ kind: 'scatter', plan });
  return groups;
}

function contains(e: Expr, sub: Expr): boolean {
  let hit = false;
  visitExpr(e, (x) => {
    if (x.id === sub.id) hit = true;
  });
  return hit;
}

function reads(e: Expr, v: Value): boolean {
  let hit = false;
  visitExpr(e, (x) => {
    if (x.kind === 'leaf' && x.value === v) hit = true;
  });
  return hit;
}

/** How many times each value is read as a leaf by the fragment's kernels. */
function leafReads(p: Planner): Map<Value, number> {
  const n = new Map<Value, number>();
  const count = (e: Expr | undefined): void => {
    if (!e) return;
    visitExpr(e, (x) => {
      if (x.kind === 'leaf') n.set(x.value, (n.get(x.value) ?? 0) + 1);
    });
  };
  p.sinks.forEach((s) => count(s.expr));
  p.rows.forEach((r) => [r.input, r.weight, r.bias].forEach(count));
  p.loops.forEach((l) => count(l.input));
  return n;
}

/**
 * Concat written in place: when a piece of a Concat sink is a value this fragment materializes
 * for that Concat alone, its producer stores straight into the Concat's buffer (a strided region)
 * instead of into a buffer of its own that a copy then reads. The other pieces become copy sinks
 * into their regions. Applied only when at least one piece is saved, so a Concat of inputs stays
 * one kernel.
 */
function writePiecesInPlace(p: Planner): void {
  for (let i = 0; i < p.sinks.length; i++) {
    const s = p.sinks[i]!;
    const e = s.expr;
    if (e.kind !== 'select' || s.target) continue;
    const reads = leafReads(p);
    const strides = contiguousStrides(e.shape);
    const region = (k: number): StoreView => ({ value: s.value, strides, offset: e.starts[k]! * strides[e.axis]! });
    const producers = e.pieces.map((piece, k) => {
      if (piece.kind !== 'leaf' || piece.offset !== 0 || !isContiguousLeaf(piece)) return undefined;
      const v = piece.value;
      if (p.graph.outputs.includes(v) || p.graph.inputs.includes(v) || reads.get(v) !== 1) return undefined;
      // A scatter output is written by its copy sink and then the scatter kernel: not movable.
      if (p.scatters.some((sc) => sc.out === v)) return undefined;
      const q = p.sinks.find((x) => x.value === v && !x.target);
      if (!q || numelOf(q.expr.shape) !== numelOf(piece.shape)) return undefined;
      const st = reshapeStrides(piece.shape, region(k).strides, q.expr.shape);
      return st ? { sink: q, target: { ...region(k), strides: st } } : undefined;
    });
    if (producers.every((x) => !x)) continue;
    p.sinks.splice(i, 1);
    i--;
    e.pieces.forEach((piece, k) => {
      const prod = producers[k];
      if (prod) prod.sink.target = prod.target;
      else p.sinks.push({ value: s.value, expr: piece, target: region(k) });
    });
  }
}
