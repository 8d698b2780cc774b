/**
 * Placement arithmetic for context parallelism: a normalized view of a value's Placement (the
 * list of sharded axes plus an optional token order), local (per-rank) shapes, and the index
 * maps between a token axis in natural order and in rank-chunk order (graph.ts TokenOrder).
 *
 * Rank-chunk order, by example: segments [6, 16] (6 text then 16 image tokens) over 4 chunks.
 * Each segment is padded to a multiple of 4 (6 -> 8, 16 -> 16) and cut in 4: chunk p holds text
 * tokens 2p..2p+1 then image tokens 4p..4p+3 (6 tokens); text tokens 6 and 7 are padding. The
 * ordered axis has 4 * 6 = 24 positions. A local Concat of per-rank text and image pieces is
 * exactly one chunk, which is why joint attention needs no communication to form its sequence.
 */
import type { AxisShard, PartialReduce, Placement, TokenOrder } from './graph';

/** A placement in normalized form: sharded axes sorted by axis, and the token order if any. */
export interface Dist {
  readonly shards: readonly AxisShard[];
  readonly tokens?: TokenOrder;
  /** Set only by local reductions over a split axis; helpers that rebuild a Dist drop it. */
  readonly partial?: PartialReduce;
}

export const REPLICATED: Dist = Object.freeze({ shards: Object.freeze([]) as readonly AxisShard[] });

export function distOf(p: Placement | undefined): Dist {
  if (!p) return REPLICATED;
  const extra = { ...(p.tokens ? { tokens: p.tokens } : {}), ...(p.partial ? { partial: p.partial } : {}) };
  if (p.kind === 'replicated') return p.tokens || p.partial ? { shards: [], ...extra } : REPLICATED;
  const shards = [{ axis: p.axis, meshAxis: p.meshAxis }, ...(p.also ?? [])].sort((a, b) => a.axis - b.axis);
  return { shards, ...extra };
}

/** The Placement for a Dist; undefined for plain replicated (the IR's default). */
export function placementOf(d: Dist): Placement | undefined {
  // A trivial token order (one segment, no padding) is natural order: never stored.
  const tokens = d.tokens && !isTrivialOrder(d.tokens) ? d.tokens : undefined;
  const extra = { ...(tokens ? { tokens } : {}), ...(d.partial ? { partial: d.partial } : {}) };
  if (d.shards.length === 0) return tokens || d.partial ? { kind: 'replicated', ...extra } : undefined;
  const [first, ...rest] = [...d.shards].sort((a, b) => a.axis - b.axis);
  const p: Placement = {
    kind: 'sharded',
    axis: first!.axis,
    meshAxis: first!.meshAxis,
    ...(rest.length > 0 ? { also: rest } : {}),
    ...extra,
  };
  return p;
}

/** Canonical: a trivial token order is dropped (it equals natural order). */
export function canonicalDist(d: Dist): Dist {
  return distOf(placementOf(d));
}

/** Same order (segments and chunks) on the same axes. */
function sameTokens(a: TokenOrder | undefined, b: TokenOrder | undefined): boolean {
  if (!a || !b) return a === b;
  const x = tokenAxes(a);
  const y = tokenAxes(b);
  return sameOrder(a, b) && x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Same segments and chunks, whatever axes they are on. */
export function sameOrder(a: { readonly segments: readonly number[]; readonly chunks: number }, b: { readonly segments: readonly number[]; readonly chunks: number }): boolean {
  return a.chunks === b.chunks && a.segments.length === b.segments.length && a.segments.every((s, i) => s === b.segments[i]);
}

/** The axes a token order covers (its axis and `also`), ascending. */
export function tokenAxes(t: TokenOrder): number[] {
  return [t.axis, ...(t.also ?? [])].sort((a, b) => a - b);
}

/** `t`'s order on exactly `axes` (canonical: smallest axis first); undefined for no axes. */
export function orderOn(t: { readonly segments: readonly number[]; readonly chunks: number }, axes: readonly number[]): TokenOrder | undefined {
  const sorted = [...new Set(axes)].sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const [axis, ...also] = sorted as [number, ...number[]];
  return also.length > 0 ? { axis, segments: t.segments, chunks: t.chunks, also } : { axis, segments: t.segments, chunks: t.chunks };
}

/** The single-axis order on `axis`, when d's token order covers that axis. */
export function tokensAt(d: Dist, axis: number): TokenOrder | undefined {
  return d.tokens && tokenAxes(d.tokens).includes(axis) ? orderOn(d.tokens, [axis]) : undefined;
}

/**
 * `d` with `axis` in order `t` as well: joins d's order when it is the same order on other axes,
 * replaces it otherwise (a dist holds one order).
 */
export function addTokenAxis(d: Dist, axis: number, t: { readonly segments: readonly number[]; readonly chunks: number }): Dist {
  const axes = d.tokens && sameOrder(d.tokens, t) ? [...tokenAxes(d.tokens), axis] : [axis];
  return withTokens(d, orderOn(t, axes));
}

/** `d` with `axis` back in natural order (the order stays on its other axes). */
export function dropTokenAxis(d: Dist, axis: number): Dist {
  if (!d.tokens) return d;
  return withTokens(d, orderOn(d.tokens, tokenAxes(d.tokens).filter((a) => a !== axis)));
}

export function sameDist(a: Dist, b: Dist): boolean {
  const x = canonicalDist(a);
  const y = canonicalDist(b);
  if (x.shards.length !== y.shards.length) return false;
  if (!x.shards.every((s, i) => s.axis === y.shards[i]!.axis && s.meshAxis === y.shards[i]!.meshAxis)) return false;
  if (x.partial?.meshAxis !== y.partial?.meshAxis || x.partial?.reduce !== y.partial?.reduce) return false;
  return sameTokens(x.tokens, y.tokens);
}

export function isReplicated(d: Dist): boolean {
  return d.shards.length === 0 && !d.partial && (!d.tokens || isTrivialOrder(d.tokens));
}

/** The mesh axis that shards tensor axis `axis`, if any. */
export function shardOf(d: Dist, axis: number): string | undefined {
  return d.shards.find((s) => s.axis === axis)?.meshAxis;
}

/** The Dist with tensor axis `axis` sharded over `meshAxis` (undefined: unsharded). */
export function withShard(d: Dist, axis: number, meshAxis: string | undefined): Dist {
  const shards = d.shards.filter((s) => s.axis !== axis);
  if (meshAxis !== undefined) shards.push({ axis, meshAxis });
  shards.sort((a, b) => a.axis - b.axis);
  return d.tokens ? { shards, tokens: d.tokens } : { shards };
}

/** `d` with its token order replaced (a trivial order is dropped: it is natural order). */
export function withTokens(d: Dist, tokens: TokenOrder | undefined): Dist {
  return tokens && !isTrivialOrder(tokens) ? { shards: d.shards, tokens } : { shards: d.shards };
}

/** Renumbers axes (e.g. through Transpose/Unsqueeze): `map(axis)` gives the new axis. */
export function mapAxes(d: Dist, map: (axis: number) => number): Dist {
  const shards = d.shards.map((s) => ({ axis: map(s.axis), meshAxis: s.meshAxis })).sort((a, b) => a.axis - b.axis);
  const tokens = d.tokens ? orderOn(d.tokens, tokenAxes(d.tokens).map(map)) : undefined;
  return tokens ? { shards, tokens } : { shards };
}

export function formatTokenOrder(t: TokenOrder): string {
  return `tokens(${tokenAxes(t).join(',')}:[${t.segments.join(',')}]/${t.chunks})`;
}

export function formatDist(d: Dist): string {
  const parts = d.shards.map((s) => `${s.axis}@${s.meshAxis}`);
  if (d.tokens) parts.push(formatTokenOrder(d.tokens));
  if (d.partial) parts.push(`partial(${d.partial.reduce} over ${d.partial.meshAxis})`);
  return parts.length === 0 ? 'replicated' : parts.join(' ');
}

// ---------------------------------------------------------------------------------------------
// Token order arithmetic.

/** Tokens of one chunk: each segment's padded part, side by side. */
export function chunkLength(segments: readonly number[], chunks: number): number {
  let n = 0;
  for (const s of segments) n += Math.ceil(s / chunks);
  return n;
}

/** Length of a token axis in rank-chunk order (padding included). */
export function orderedLength(t: { readonly segments: readonly number[]; readonly chunks: number }): number {
  return t.chunks * chunkLength(t.segments, t.chunks);
}

export function naturalLength(t: { readonly segments: readonly number[] }): number {
  return t.segments.reduce((a, b) => a + b, 0);
}

export function hasPadding(t: { readonly segments: readonly number[]; readonly chunks: number }): boolean {
  return t.segments.some((s) => s % t.chunks !== 0);
}

/** True when rank-chunk order equals natural order (one segment, no padding). */
export function isTrivialOrder(t: { readonly segments: readonly number[]; readonly chunks: number }): boolean {
  return t.chunks === 1 || (t.segments.length === 1 && t.segments[0]! % t.chunks === 0);
}

/** For each position of the ordered axis, the natural token index it holds, or -1 for padding. */
export function orderedToNatural(segments: readonly number[], chunks: number): Int32Array {
  const C = chunkLength(segments, chunks);
  const out = new Int32Array(chunks * C);
  let pos = 0;
  for (let p = 0; p < chunks; p++) {
    let natBase = 0;
    for (const s of segments) {
      const c = Math.ceil(s / chunks);
      for (let q = 0; q < c; q++) {
        const k = p * c + q;
        out[pos++] = k < s ? natBase + k : -1;
      }
      natBase += s;
    }
  }
  return out;
}

/** The inverse map: for each natural token index, its position on the ordered axis. */
export function naturalToOrdered(segments: readonly number[], chunks: number): Int32Array {
  const o2n = orderedToNatural(segments, chunks);
  const out = new Int32Array(naturalLength({ segments }));
  o2n.forEach((n, o) => {
    if (n >= 0) out[n] = o;
  });
  return out;
}

/**
 * The local (per-rank) shape of a value of natural `globalShape` placed as `d`: a token axis
 * takes its ordered length, then each sharded axis is divided by its mesh axis size. Returns a
 * message instead when the sizes do not fit.
 */
export function localShape(globalShape: readonly number[], d: Dist, sizeOf: (meshAxis: string) => number): number[] | string {
  const out = [...globalShape];
  for (const a of d.tokens ? tokenAxes(d.tokens) : []) {
    const t = d.tokens!;
    if (out[a] !== naturalLength(t)) {
      return `axis ${a} has ${out[a]} tokens, but its token order ${formatTokenOrder(t)} covers ${naturalLength(t)}`;
    }
    out[a] = orderedLength(t);
  }
  for (const s of d.shards) {
    const n = sizeOf(s.meshAxis);
    if (out[s.axis]! % n !== 0) return `axis ${s.axis} (size ${out[s.axis]}) does not split evenly over '${s.meshAxis}' (${n} ranks)`;
    out[s.axis] = out[s.axis]! / n;
  }
  return out;
}
