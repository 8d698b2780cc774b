/**
 * Sharding rules of the DiT-level ops that see several tokens at once.
 *
 * Shape letters: B batch, N heads, S sequence, H head dim, C rope table width.
 *
 * attention(q [B,N,Sq,H], k/v [B,Nkv,Skv,*], mask?): each query is independent, so q may be split
 * on Sq (and on B and N); keys and values must be whole on Skv on every rank, in any token order
 * (attention is permutation-equivariant over keys) as long as k, v and the mask's key axis share
 * it. A 2-D mask [.., Sq, Skv] follows both: its rows like q (split, in q's token order), its
 * columns like the keys (whole or one ring block, in their order); when q and k share one joint
 * order the mask carries it on both axes. The output is placed like q. attention_lse (one ring step) additionally accepts a key block
 * (Skv split over a mesh axis): its output is a partial result that lse_merge completes.
 * rope(x, cos, sin): tables are indexed by token, so they are placed like x's token axis.
 */
import type { Dist } from '../placement';
import { sameOrder, tokenAxes } from '../placement';
import type { AxisPlace, ShardPlan, ShardRule, ShardView, TraceResult, TraceStep } from './core';
import { axisPlace, distFromPlaces, isPlainAxis, replicateAll } from './core';

function attentionPlan(v: ShardView, allowKeyBlocks: boolean): ShardPlan {
  const [q, k] = [v.dists[0]!, v.dists[1]!];
  const qS = v.inShapes[0]!;
  const kS = v.inShapes[1]!;
  const mS0 = v.inShapes[3];
  const rowMask = mS0 !== undefined && mS0.length >= 2 && mS0[mS0.length - 2] !== 1 && mS0[mS0.length - 1] !== 1;
  const pB = axisPlace(q, 0);
  const pN = axisPlace(q, 1);
  const pSq = axisPlace(q, 2);
  const kSeq = axisPlace(k, 2);
  if (rowMask && pSq.tokens && kSeq.tokens && !sameOrder(pSq.tokens, kSeq.tokens)) {
    // A 2-D mask holds one token order on its rows and columns (placement.ts); queries and keys
    // in two different orders cannot share it: run this attention whole (correct, not split).
    return replicateAll(v, 'its mask has query and key axes in different token orders; it runs whole on every rank');
  }
  // Keys: whole on Skv (a gather keeps their token order), unless this is one ring step.
  const pSkv: AxisPlace = allowKeyBlocks ? kSeq : kSeq.tokens ? { tokens: kSeq.tokens } : {};
  const kvDist = (shape: readonly number[]): Dist => {
    const m = new Map<number, AxisPlace>();
    if (!isPlainAxis(pB) && shape[0] === qS[0]) m.set(0, pB);
    if (!isPlainAxis(pN)) m.set(1, pN);
    if (!isPlainAxis(pSkv)) m.set(2, pSkv);
    return distFromPlaces(m);
  };
  const qPlaces = new Map<number, AxisPlace>();
  ([[0, pB], [1, pN], [2, pSq]] as const).forEach(([a, p]) => isPlainAxis(p) || qPlaces.set(a, p));
  const ins: Dist[] = [distFromPlaces(qPlaces), kvDist(kS), kvDist(v.inShapes[2]!)];
  const mS = v.inShapes[3];
  if (mS) {
    const target: AxisPlace[] = [pB, pN, pSq, pSkv];
    const full = [qS[0]!, qS[1]!, qS[2]!, kS[2]!];
    const m = new Map<number, AxisPlace>();
    mS.forEach((d, j) => {
      const t = j + 4 - mS.length;
      if (d !== 1 && d === full[t] && !isPlainAxis(target[t]!)) m.set(j, target[t]!);
    });
    ins.push(distFromPlaces(m));
  }
  const out = distFromPlaces(qPlaces);
  const outs = v.outShapes.map((s) => (s.length === 4 ? out : distFromPlaces(new Map([...qPlaces].filter(([a]) => a < s.length)))));
  return { ins, outs };
}

function attentionTrace(_v: ShardView, axis: number): TraceResult {
  // Output axes B, N, Sq come from q; Hv from v (a feature axis).
  return axis < 3 ? [{ input: 0, axis }] : 'stop';
}

export const attentionShardRule: ShardRule = {
  propagate: (v) => attentionPlan(v, false),
  trace: attentionTrace,
};

export const attentionLseShardRule: ShardRule = {
  propagate: (v) => attentionPlan(v, true),
  trace: attentionTrace,
};

/** lse_merge(o1, lse1, o2, lse2): all four placed like o1 (lse without the last axis). */
export const lseMergeShardRule: ShardRule = {
  propagate(v): ShardPlan {
    const o = v.dists[0]!;
    const r = v.inShapes[0]!.length;
    const lse = distFromPlaces(new Map([...placesOf(o)].filter(([a]) => a < r - 1)));
    return { ins: [o, lse, o, lse], outs: [o, lse] };
  },
  trace: (_v, axis) => [{ input: 0, axis }, { input: 2, axis }],
};

function placesOf(d: Dist): Map<number, AxisPlace> {
  const m = new Map<number, AxisPlace>();
  const axes = new Set([...d.shards.map((s) => s.axis), ...(d.tokens ? tokenAxes(d.tokens) : [])]);
  for (const a of axes) m.set(a, axisPlace(d, a));
  return m;
}

/** Rope table axes aligned with x's axes (B, S) per layout; undefined where the table has none. */
function tableAxes(layout: string, rank: number): { b?: number; s?: number } {
  const bnsh = layout === 'BNSH';
  if (rank === 2) return { s: 0 };
  if (rank === 3) return { b: 0, s: 1 };
  return bnsh ? { b: 0, s: 2 } : { b: 0, s: 1 };
}

export const ropeShardRule: ShardRule = {
  propagate(v): ShardPlan {
    const layout = v.attr.string('layout', 'BNSH');
    const xS = v.inShapes[0]!;
    const x = v.dists[0]!;
    const sAxis = layout === 'BNSH' ? 2 : 1;
    const nAxis = layout === 'BNSH' ? 1 : 2;
    const places = new Map<number, AxisPlace>();
    for (const a of [0, 1, 2]) {
      const p = axisPlace(x, a);
      if (!isPlainAxis(p)) places.set(a, p);
    }
    const xNeed = distFromPlaces(places);
    const table = (i: number): Dist => {
      const t = v.inShapes[i]!;
      const ax = tableAxes(layout, t.length);
      const m = new Map<number, AxisPlace>();
      const put = (ta: number | undefined, xa: number): void => {
        if (ta === undefined || t[ta] === 1 || t[ta] !== xS[xa]) return;
        const p = axisPlace(xNeed, xa);
        if (!isPlainAxis(p)) m.set(ta, p);
      };
      put(ax.b, 0);
      put(ax.s, sAxis);
      if (t.length === 4) put(nAxis, nAxis);
      return distFromPlaces(m);
    };
    return { ins: [xNeed, table(1), table(2)], outs: [xNeed] };
  },
  trace(v, axis): TraceResult {
    const layout = v.attr.string('layout', 'BNSH');
    const xS = v.inShapes[0]!;
    const sAxis = layout === 'BNSH' ? 2 : 1;
    if (axis === 3) return 'stop';
    const steps: TraceStep[] = [{ input: 0, axis }];
    for (const i of [1, 2]) {
      const t = v.inShapes[i]!;
      const ax = tableAxes(layout, t.length);
      const ta = axis === 0 ? ax.b : axis === sAxis ? ax.s : t.length === 4 ? axis : undefined;
      if (ta !== undefined && t[ta] === xS[axis] && t[ta] !== 1) steps.push({ input: i, axis: ta });
    }
    return steps;
  },
};
