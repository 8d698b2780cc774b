/**
 * Sharding rules of layout ops. Placements follow axes through Transpose and through reshapes
 * that keep the axis whole (or, for a plain sharded axis, make it the outermost factor of a merge
 * or split). A token axis may be concatenated, sliced and split only at segment boundaries and
 * only where each rank holds one whole chunk: then the cut is local (placement.ts explains why a
 * local concat of streams is a chunk of the joint sequence). Anything else asks for the axis
 * gathered first.
 */
import type { Dist } from '../placement';
import { REPLICATED, chunkLength, tokenAxes } from '../placement';
import type { AxisPlace, ShardPlan, ShardRule, ShardView, TraceResult } from './core';
import { axisPlace, distFromPlaces, isPlainAxis, oneChunkPerRank, plainOn, remap, tokensOn, withPlace } from './core';
import type { TokenOrder } from '../graph';

const prod = (xs: readonly number[]): number => xs.reduce((a, b) => a * b, 1);

export const transposeRule: ShardRule = {
  propagate(v) {
    const r = v.inShapes[0]!.length;
    const perm = v.attr.ints('perm', Array.from({ length: r }, (_, i) => r - 1 - i));
    return { ins: v.dists, outs: [remap(v.dists[0]!, (a) => perm.indexOf(a))] };
  },
  trace(v, axis) {
    const r = v.inShapes[0]!.length;
    const perm = v.attr.ints('perm', Array.from({ length: r }, (_, i) => r - 1 - i));
    return [{ input: 0, axis: perm[axis]! }];
  },
};

type AxisMap = { kind: 'intact' | 'merge' | 'split'; axis: number } | undefined;

/** Where input axis `a` of a reshape goes: kept whole, outermost of a merge, or outermost of a split. */
function reshapeAxis(inS: readonly number[], outS: readonly number[], a: number): AxisMap {
  const before = prod(inS.slice(0, a));
  let acc = 1;
  const candidates: number[] = [];
  for (let b = 0; b <= outS.length; b++) {
    if (acc === before && b < outS.length) candidates.push(b);
    if (b < outS.length) acc *= outS[b]!;
  }
  const n = inS[a]!;
  const intact = candidates.find((b) => outS[b] === n);
  if (intact !== undefined) return { kind: 'intact', axis: intact };
  const b = candidates.find((x) => outS[x] !== 1);
  if (b === undefined) return undefined;
  const m = outS[b]!;
  if (m > n && m % n === 0) {
    // Merge: some run of input axes a..c multiplies to m.
    let p = 1;
    for (let c = a; c < inS.length && p < m; c++) p *= inS[c]!;
    return p === m ? { kind: 'merge', axis: b } : undefined;
  }
  if (m < n && n % m === 0) {
    let p = 1;
    for (let c = b; c < outS.length && p < n; c++) p *= outS[c]!;
    return p === n ? { kind: 'split', axis: b } : undefined;
  }
  return undefined;
}

/** Reshape, Flatten, Squeeze, Unsqueeze: placements follow axes by their position in memory. */
export const reshapeRule: ShardRule = {
  propagate(v): ShardPlan {
    const inS = v.inShapes[0]!;
    const outS = v.outShapes[0]!;
    const d = v.dists[0]!;
    let need = d;
    const out = new Map<number, AxisPlace>();
    const dropped: number[] = [];
    const axes = new Set([...d.shards.map((s) => s.axis), ...(d.tokens ? tokenAxes(d.tokens) : [])]);
    for (const a of axes) {
      const p = axisPlace(d, a);
      const m = reshapeAxis(inS, outS, a);
      const ok =
        m !== undefined &&
        (m.kind === 'intact' || (!p.tokens && (m.kind === 'merge' || outS[m.axis]! % v.sizeOf(p.meshAxis!) === 0)));
      if (ok) out.set(m.axis, p);
      else {
        need = plainOn(need, a);
        dropped.push(a);
      }
    }
    return {
      ins: [need, ...v.dists.slice(1).map(() => REPLICATED)],
      outs: [distFromPlaces(out)],
      ...(dropped.length ? { note: `reshape ${fmt(inS)} -> ${fmt(outS)} does not keep axis ${dropped.join(', ')} whole; it is gathered first` } : {}),
    };
  },
  trace(v, axis): TraceResult {
    const inS = v.inShapes[0]!;
    const outS = v.outShapes[0]!;
    for (let a = 0; a < inS.length; a++) {
      const m = reshapeAxis(inS, outS, a);
      if (m?.kind === 'intact' && m.axis === axis && inS[a] !== 1) return [{ input: 0, axis: a }];
    }
    return 'origin';
  },
};

function fmt(s: readonly number[]): string {
  return `[${s.join(',')}]`;
}

export const concatRule: ShardRule = {
  propagate(v): ShardPlan {
    const r = v.outShapes[0]!.length;
    const c = normalize(v.attr.int('axis', 1), r);
    // Other axes: like an elementwise op without broadcasting.
    const places = new Map<number, AxisPlace>();
    for (let a = 0; a < r; a++) {
      if (a === c) continue;
      const p = v.dists.map((d) => axisPlace(d, a)).find((x) => !isPlainAxis(x));
      if (p) places.set(a, p);
    }
    const onAxis = v.dists.map((d) => axisPlace(d, c));
    const orders = onAxis.map((p, i) => tokensOn(v, p, c, v.inShapes[i]![c]!));
    const leadAt = onAxis.findIndex((p) => !isPlainAxis(p));
    const lead = leadAt >= 0 ? onAxis[leadAt] : undefined;
    let joint: { meshAxis: string; chunks: number } | undefined;
    if (lead && oneChunkPerRank(v, lead, c, v.inShapes[leadAt]![c]!)) {
      const chunks = orders[leadAt]!.chunks;
      if (onAxis.every((p, i) => isPlainAxis(p) || (orders[i]!.chunks === chunks && p.meshAxis === lead.meshAxis))) joint = { meshAxis: lead.meshAxis!, chunks };
    }
    const ins: Dist[] = v.dists.map((_, i) => {
      let d = distFromPlaces(places);
      if (joint) {
        const own = orders[i]?.segments ?? [v.inShapes[i]![c]!];
        d = withPlace(d, c, { meshAxis: joint.meshAxis, tokens: { axis: c, segments: own, chunks: joint.chunks } });
      }
      return d;
    });
    let out = distFromPlaces(places);
    if (joint) {
      const segments = v.inShapes.flatMap((_, i) => orders[i]?.segments ?? [v.inShapes[i]![c]!]);
      out = withPlace(out, c, { meshAxis: joint.meshAxis, tokens: { axis: c, segments, chunks: joint.chunks } });
    }
    const note = lead && !joint ? `concat axis ${c} is placed (${lead.meshAxis ?? 'token order'}) but not one whole chunk per rank; it is gathered first` : undefined;
    return { ins, outs: [out], ...(note ? { note } : {}) };
  },
  trace(v, axis) {
    return v.inShapes.map((_, i) => ({ input: i, axis }));
  },
};

function normalize(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** Segment index range [i, j) covering positions [start, end) of boundaries `cum`, if aligned. */
function segmentRange(cum: readonly number[], start: number, end: number): [number, number] | undefined {
  const i = cum.indexOf(start);
  const j = cum.indexOf(end);
  return i >= 0 && j > i ? [i, j] : undefined;
}

/** Cumulative segment boundaries of a token order in the view's coordinates. */
function boundaries(v: ShardView, t: TokenOrder): number[] {
  const sizes = v.coords === 'global' ? t.segments : t.segments.map((s) => chunkLength([s], t.chunks));
  const cum = [0];
  for (const s of sizes) cum.push(cum[cum.length - 1]! + s);
  return cum;
}

/** The place of a sub-range of a token axis, or undefined when it cannot be cut locally. */
function cutTokens(v: ShardView, p: AxisPlace, axis: number, length: number, start: number, end: number): AxisPlace | undefined {
  const t = tokensOn(v, p, axis, length);
  if (!t || !oneChunkPerRank(v, p, axis, length)) return undefined;
  const r = segmentRange(boundaries(v, t), start, end);
  if (!r) return undefined;
  return { meshAxis: p.meshAxis!, tokens: { axis, segments: t.segments.slice(r[0], r[1]), chunks: t.chunks } };
}

function sliceParams(v: ShardView): { starts: readonly number[]; ends: readonly number[]; axes?: readonly number[]; steps?: readonly number[] } | undefined {
  if (v.opset < 10) {
    const starts = v.attr.optInts('starts');
    const ends = v.attr.optInts('ends');
    return starts && ends ? { starts, ends, axes: v.attr.optInts('axes') } : undefined;
  }
  const get = (i: number): number[] | undefined => v.values[i]?.toArray();
  const starts = get(1);
  const ends = get(2);
  if (!starts || !ends) return undefined;
  if ((v.inShapes[3] && !get(3)) || (v.inShapes[4] && !get(4))) return undefined;
  return { starts, ends, axes: get(3), steps: get(4) };
}

export const sliceRule: ShardRule = {
  propagate(v): ShardPlan {
    const d = v.dists[0]!;
    const raw = v.rawInShapes[0]!;
    const params = sliceParams(v);
    const others = v.dists.slice(1).map(() => REPLICATED);
    if (!params) return { ins: [REPLICATED, ...others], outs: [REPLICATED], note: 'slice bounds unknown at compile time; gathered' };
    let need = d;
    let out = d;
    let note: string | undefined;
    params.starts.forEach((s0, k) => {
      const a = normalize(params.axes?.[k] ?? k, raw.length);
      const step = params.steps?.[k] ?? 1;
      const n = raw[a]!;
      const clamp = (x: number): number => Math.min(Math.max(x < 0 ? x + n : x, 0), n);
      const [start, end] = [clamp(s0), clamp(params.ends[k]!)];
      const p = axisPlace(d, a);
      if (isPlainAxis(p) || (step === 1 && start === 0 && end === n)) return;
      const cut = step === 1 ? cutTokens(v, p, a, v.inShapes[0]![a]!, start, end) : undefined;
      if (cut) out = withPlace(out, a, cut);
      else {
        need = plainOn(need, a);
        out = plainOn(out, a);
        note = `slice of axis ${a} is not at token segment boundaries of one chunk per rank; gathered first`;
      }
    });
    return { ins: [need, ...others], outs: [out], ...(note ? { note } : {}) };
  },
  trace: (_v, axis) => [{ input: 0, axis }],
};

export const splitRule: ShardRule = {
  propagate(v): ShardPlan {
    const d = v.dists[0]!;
    const r = v.rawInShapes[0]!.length;
    const a = normalize(v.attr.int('axis', 0), r);
    const p = axisPlace(d, a);
    const others = v.dists.slice(1).map(() => REPLICATED);
    if (isPlainAxis(p)) return { ins: [d, ...others], outs: v.outShapes.map(() => d) };
    const sizes = v.rawOutShapes.map((s) => s[a]!);
    const outs: Dist[] = [];
    let at = 0;
    for (const s of sizes) {
      const cut = cutTokens(v, p, a, v.inShapes[0]![a]!, at, at + s);
      if (!cut) {
        const plain = plainOn(d, a);
        return { ins: [plain, ...others], outs: v.outShapes.map(() => plain), note: `split of axis ${a} is not at token segment boundaries; gathered first` };
      }
      outs.push(withPlace(d, a, cut));
      at += s;
    }
    return { ins: [d, ...others], outs };
  },
  trace: (_v, axis) => [{ input: 0, axis }],
};

export const expandRule: ShardRule = {
  propagate(v): ShardPlan {
    const inS = v.inShapes[0]!;
    const outS = v.outShapes[0]!;
    const d = v.dists[0]!;
    const shift = outS.length - inS.length;
    // An axis the expand grows (size 1 -> n) holds no placement; a kept axis keeps its own.
    const need = remap(d, (a) => (inS[a] === outS[a + shift] ? a : undefined));
    return { ins: [need, ...v.dists.slice(1).map(() => REPLICATED)], outs: [remap(need, (a) => a + shift)] };
  },
  trace(v, axis): TraceResult {
    const inS = v.inShapes[0]!;
    const a = axis - (v.outShapes[0]!.length - inS.length);
    return a >= 0 && inS[a] === v.outShapes[0]![axis] ? [{ input: 0, axis: a }] : 'origin';
  },
};

/** Gather(data, indices) {axis}: the gathered axis of data must be whole; indices' placement moves into the output. */
export const gatherRule: ShardRule = {
  propagate(v): ShardPlan {
    const rd = v.inShapes[0]!.length;
    const ri = v.inShapes[1]!.length;
    const g = normalize(v.attr.int('axis', 0), rd);
    const data = plainOn(v.dists[0]!, g);
    const idx = v.dists[1]!;
    const places = new Map<number, AxisPlace>();
    for (let a = 0; a < rd; a++) {
      if (a === g) continue;
      const p = axisPlace(data, a);
      if (!isPlainAxis(p)) places.set(a < g ? a : a - 1 + ri, p);
    }
    let needIdx = idx;
    for (let k = 0; k < ri; k++) {
      const p = axisPlace(idx, k);
      if (isPlainAxis(p)) continue;
      // One mesh axis cannot split two tensor axes: such an index axis is gathered.
      if ([...places.values()].some((q) => q.meshAxis !== undefined && q.meshAxis === p.meshAxis)) needIdx = plainOn(needIdx, k);
      else places.set(g + k, p);
    }
    return { ins: [data, needIdx], outs: [distFromPlaces(places)] };
  },
  trace(v, axis): TraceResult {
    const rd = v.inShapes[0]!.length;
    const ri = v.inShapes[1]!.length;
    const g = normalize(v.attr.int('axis', 0), rd);
    if (axis < g) return [{ input: 0, axis }];
    if (axis < g + ri) return [{ input: 1, axis: axis - g }];
    return [{ input: 0, axis: axis - ri + 1 }];
  },
};
