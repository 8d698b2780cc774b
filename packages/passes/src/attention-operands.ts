/**
 * Helpers of fuse-attention: the canonical [B,N,S,H] operands of an `attention` op, rebuilt from
 * the operands of a decomposed attention (q @ k^T -> softmax -> @ v) whatever layout chain the
 * exporter put around them, and the mask brought to a shape that broadcasts to [B,N,Sq,Skv].
 *
 * An operand plan is computed first (no nodes made) so a rule can give up before building.
 *
 * Shape letters: B batch, N heads (Nx: N for q, Nkv for k and v), S sequence, H head dim.
 */
import type { Dim, Value } from '@paradit/ir';
import type { GraphView, RewriteBuilder } from './rewrite';
import { intsAttr } from './rewrite';
import { Atom, LayoutTrace, rebuild, rebuildCost, reshapeDims, scaleOf, traceLayouts } from './layout-trace';
import { mulDims, productOfDims } from './fold-symbolic-dims';

/** Which matmul operand: 'rows' is [...batch, S, H] (q and v), 'cols' is [...batch, H, S] (k^T). */
type OperandRole = 'rows' | 'cols';

export interface OperandPlan {
  readonly trace: LayoutTrace | undefined;
  /** The operand as given. */
  readonly value: Value;
  /** The operand with scalar Mul/Div peeled off (when allowed): the fallback when no trace applies. */
  readonly base: Value;
  readonly role: OperandRole;
  /** Scalar factor pulled out of the operand (1 when none). */
  readonly factor: number;
  /** [B*N] split chosen from this operand's atoms (rank-3 operands), or its own [B,N] dims; B may be symbolic. */
  readonly batch: readonly [Dim, number] | undefined;
  /** repeat_kv factor found on the heads axis (k and v): the operand holds N/repeat distinct heads. */
  readonly repeat: number;
  readonly groups: readonly (readonly Atom[])[] | undefined;
}

/**
 * The atoms of each canonical dim [B, N, S, H] for a trace of an operand of the given role. The
 * heads count must be a size; with [B*N] folded into one symbolic atom (no split seen) the
 * B/N factorization is ambiguous and there is no plan.
 */
function canonicalGroups(t: LayoutTrace, rank: number, role: OperandRole): { groups: Atom[][]; batch: [Dim, number] } | undefined {
  const d = t.dims;
  const rows = role === 'rows' ? d[rank - 2]! : d[rank - 1]!;
  const cols = role === 'rows' ? d[rank - 1]! : d[rank - 2]!;
  const size = (g: readonly Atom[]): Dim | undefined => productOfDims(g.map((a) => a.size));
  if (rank === 4) {
    const [B, N] = [size(d[0]!), size(d[1]!)];
    if (B === undefined || typeof N !== 'number') return undefined;
    return { groups: [[...d[0]!], [...d[1]!], [...rows], [...cols]], batch: [B, N] };
  }
  if (rank !== 3) return undefined;
  const bn = d[0]!;
  if (bn.length === 0) return { groups: [[], [], [...rows], [...cols]], batch: [1, 1] };
  const heads = bn[bn.length - 1]!;
  const outer = bn.slice(0, -1);
  const B = size(outer);
  if (B === undefined || typeof heads.size !== 'number') return undefined;
  return { groups: [outer, [heads], [...rows], [...cols]], batch: [B, heads.size] };
}

/**
 * Removes repeat atoms: allowed only as the innermost atoms of the heads group of a rank-4
 * operand (repeat_interleave of kv heads, head n reading kv head n / repeat). Returns the
 * groups without them and the repeat factor, or undefined when repeats sit elsewhere.
 */
function stripRepeats(groups: Atom[][], rank: number, allowRepeat: boolean): { groups: Atom[][]; repeat: number } | undefined {
  if (!groups.some((g) => g.some((a) => a.repeat))) return { groups, repeat: 1 };
  if (!allowRepeat || rank !== 4 || groups.some((g, i) => i !== 1 && g.some((a) => a.repeat))) return undefined;
  const heads = groups[1]!;
  const first = heads.findIndex((a) => a.repeat);
  if (heads.slice(first).some((a) => !a.repeat)) return undefined;
  const repeat = productOfDims(heads.slice(first).map((a) => a.size));
  if (typeof repeat !== 'number') return undefined;
  return { groups: groups.map((g, i) => (i === 1 ? g.slice(0, first) : g)), repeat };
}

/**
 * Plans one operand. `pullScale` lets the plan use ancestors above scalar multiplications (q and
 * k: the factor moves into the attention scale); v must not (its factor would scale the output).
 * `allowRepeat` (k and v) lets it see through a repeat_kv (Expand/Tile of the heads) to the
 * grouped-query kv heads.
 */
export function planOperand(view: GraphView, v: Value, role: OperandRole, pullScale: boolean, allowRepeat = false): OperandPlan {
  const rank = v.shape.length;
  let best: { t: LayoutTrace; cost: number; groups: Atom[][]; batch: [Dim, number]; repeat: number } | undefined;
  for (const t of traceLayouts(view, v)) {
    if (!pullScale && t.scaleOps > 0) continue;
    const g0 = canonicalGroups(t, rank, role);
    const g = g0 && stripRepeats(g0.groups, rank, allowRepeat);
    if (!g0 || !g) continue;
    const shape = shapeOf(g.groups);
    const cost = shape && rebuildCost(t, g.groups, shape);
    if (cost === undefined) continue;
    const cand = { t, cost, groups: g.groups, batch: [g0.batch[0], g0.batch[1] / g.repeat] as [Dim, number], repeat: g.repeat };
    // More pulled scales first, then the grouped kv heads, then fewer new nodes; ties go to the candidate nearest v.
    const key = (c: typeof cand): number[] => [c.t.scaleOps, c.repeat, -c.cost];
    if (!best || lexGreater(key(cand), key(best))) best = cand;
  }
  if (!best) {
    // No static trace (symbolic dims): still pull the scale out of scalar Mul/Div right above v.
    let base = v;
    let factor = 1;
    for (let p = view.producer(base), s = p && scaleOf(view, p); pullScale && s; p = view.producer(base), s = p && scaleOf(view, p)) {
      factor *= s.factor;
      base = s.data;
    }
    // k^T = Transpose(k, [0,1,3,2]): use k itself.
    const t = view.producerOf(base, 'Transpose');
    const perm = t?.attrs['perm'];
    if (role === 'cols' && t && perm?.kind === 'ints' && perm.value.join() === '0,1,3,2') {
      return { trace: undefined, value: v, base: t.inputs[0]!, role: 'rows', factor, batch: undefined, groups: undefined, repeat: 1 };
    }
    return { trace: undefined, value: v, base, role, factor, batch: undefined, groups: undefined, repeat: 1 };
  }
  return { trace: best.t, value: v, base: v, role, factor: best.t.factor, batch: best.batch, groups: best.groups, repeat: best.repeat };
}

function lexGreater(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! > b[i]!;
  return false;
}

function shapeOf(groups: readonly (readonly Atom[])[]): Dim[] | undefined {
  const shape = groups.map((g) => productOfDims(g.map((a) => a.size)));
  return shape.every((d): d is Dim => d !== undefined) ? shape : undefined;
}

/**
 * Builds the canonical [B, Nx, S, H] value of a plan, with [B, Nx] given (Nx = N for q, Nkv for
 * k and v). Falls back to the operand itself with a Reshape/Transpose when it has no trace.
 */
export function buildOperand(b: RewriteBuilder, p: OperandPlan, B: Dim, Nx: number): Value | undefined {
  const rank = p.value.shape.length;
  const s = p.value.shape;
  if (p.trace && p.groups) {
    const S = p.role === 'rows' ? s[rank - 2]! : s[rank - 1]!;
    const H = p.role === 'rows' ? s[rank - 1]! : s[rank - 2]!;
    return rebuild(b, p.trace, p.groups, [B, Nx, S, H]);
  }
  // No trace: the operand itself, transposed for k^T, reshaped for rank 3.
  let cur = p.base;
  if (rank === 4) return p.role === 'cols' ? b.op('Transpose', [cur], { perm: intsAttr([0, 1, 3, 2]) }) : cur;
  if (rank !== 3) return undefined;
  if (p.role === 'cols') cur = b.op('Transpose', [cur], { perm: intsAttr([0, 2, 1]) });
  return reshapeDims(b, cur, [B, Nx, cur.shape[1]!, cur.shape[2]!]);
}

/**
 * The mask brought to rank 4 broadcasting to [B,N,Sq,Skv], given scores of rank 3 ([B*N,Sq,Skv])
 * or 4. Undefined when it cannot be expressed (a rank-3 mask whose batch is neither 1 nor B*N).
 */
export function maskTo4d(b: RewriteBuilder, mask: Value, scoresRank: number, B: Dim, N: number): Value | undefined {
  const r = mask.shape.length;
  if (scoresRank === 4) return mask;
  if (r < 3) return r === 0 ? mask : unsqueeze(b, mask, r === 1 ? [0, 1, 2] : [0, 1]);
  const s = mask.shape;
  if (r !== 3) return undefined;
  if (s[0] === 1) return unsqueeze(b, mask, [0]);
  if (s[0] !== mulDims(B, N)) return undefined;
  return reshapeDims(b, mask, [B, N, s[1]!, s[2]!]);
}

/** Unsqueeze in the spelling of the builder's opset (axes attribute before 13, input from 13). */
export function unsqueeze(b: RewriteBuilder, x: Value, axes: readonly number[]): Value {
  if (b.opset < 13) return b.op('Unsqueeze', [x], { axes: intsAttr(axes) });
  return b.op('Unsqueeze', [x, b.i64(axes)]);
}
