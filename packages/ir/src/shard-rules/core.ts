/**
 * Sharding rules: per op, how placements flow through it. One rule serves two callers:
 *
 * - the sharding passes (planning, `coords: 'global'`): given the dists the inputs have, the rule
 *   says which dists it needs (the pass inserts collectives to get them) and what its outputs
 *   will be; shapes are global and attributes are in natural coordinates;
 * - the verifier (`coords: 'local'`, verify-spmd.ts): on a compiled module, the required input
 *   dists must equal the actual ones and the outputs must be as recorded.
 *
 * `trace` walks a token (or batch) axis backwards from an attention's queries to where it comes
 * from (token-axes analysis): which inputs carry the same axis, or 'origin' where the op creates
 * it (a patch-embedding flatten), or 'stop'.
 *
 * A rule never returns "impossible": when it cannot keep an operand sharded it asks for that
 * operand replicated, and says why in `note` (the plan prints it).
 */
import type { Tensor } from '../tensor';
import type { AttrReader } from '../ops/rule';
import type { Dist } from '../placement';
import { REPLICATED, addTokenAxis, dropTokenAxis, orderOn, shardOf, tokenAxes, tokensAt, withShard, withTokens } from '../placement';
import type { TokenOrder } from '../graph';

export type Shape = readonly number[];

export interface ShardView {
  readonly op: string;
  readonly opset: number;
  readonly attr: AttrReader;
  /** Global static shapes of the inputs (undefined: omitted optional input). */
  readonly inShapes: readonly (Shape | undefined)[];
  readonly outShapes: readonly Shape[];
  /** Shapes as the module stores them (global when planning, per-rank when verifying). */
  readonly rawInShapes: readonly (Shape | undefined)[];
  readonly rawOutShapes: readonly Shape[];
  /** Compile-time values of inputs (shape-like operands), when known. */
  readonly values: readonly (Tensor | undefined)[];
  /** The inputs' current dists (REPLICATED for omitted inputs). */
  readonly dists: readonly Dist[];
  /** Whether attributes / shape operands are natural global coordinates or per-rank ones. */
  readonly coords: 'global' | 'local';
  /** Number of ranks of a mesh axis. */
  sizeOf(meshAxis: string): number;
}

export interface ShardPlan {
  /** The dist each input must have (equal to `dists` where no collective is needed). */
  readonly ins: readonly Dist[];
  readonly outs: readonly Dist[];
  /** Why an operand had to be gathered, for the printed plan and verifier messages. */
  readonly note?: string;
  /**
   * Planning only: the node is rewritten rather than kept ('all-reduce': a ReduceMean over a split
   * axis becomes a local ReduceSum, an all_reduce and a division by the global count).
   */
  readonly lower?: 'all-reduce';
}

export interface TraceStep {
  readonly input: number;
  readonly axis: number;
}

export type TraceResult = readonly TraceStep[] | 'origin' | 'stop';

export interface ShardRule {
  propagate(v: ShardView): ShardPlan;
  /** Inputs carrying output axis `axis` of output 0 (global shapes; dists unused). */
  trace(v: ShardView, axis: number): TraceResult;
}

/** All inputs replicated, all outputs replicated. */
export function replicateAll(v: ShardView, note?: string): ShardPlan {
  const anyPlaced = v.dists.some((d) => d.shards.length > 0 || d.tokens);
  return {
    ins: v.dists.map(() => REPLICATED),
    outs: v.outShapes.map(() => REPLICATED),
    ...(anyPlaced && note ? { note } : {}),
  };
}

/** A dist restricted to the axes for which `keep` holds (tokens kept only on a kept axis). */
export function restrict(d: Dist, keep: (axis: number) => boolean): Dist {
  const out: Dist = { shards: d.shards.filter((s) => keep(s.axis)) };
  return d.tokens ? withTokens(out, orderOn(d.tokens, tokenAxes(d.tokens).filter(keep))) : out;
}

/** Renumbers a dist's axes with `map` (undefined: the axis disappears, its shard too). */
export function remap(d: Dist, map: (axis: number) => number | undefined): Dist {
  const shards = [];
  for (const s of d.shards) {
    const a = map(s.axis);
    if (a !== undefined) shards.push({ axis: a, meshAxis: s.meshAxis });
  }
  shards.sort((x, y) => x.axis - y.axis);
  const out: Dist = { shards };
  if (!d.tokens) return out;
  const axes = tokenAxes(d.tokens).map(map).filter((a): a is number => a !== undefined);
  return withTokens(out, orderOn(d.tokens, axes));
}

/** The placement of one axis of a dist: its shard and its token order. */
export interface AxisPlace {
  readonly meshAxis?: string;
  readonly tokens?: TokenOrder;
}

export function axisPlace(d: Dist, axis: number): AxisPlace {
  const meshAxis = shardOf(d, axis);
  const tokens = tokensAt(d, axis);
  return { ...(meshAxis !== undefined ? { meshAxis } : {}), ...(tokens ? { tokens } : {}) };
}

export function isPlainAxis(p: AxisPlace): boolean {
  return p.meshAxis === undefined && p.tokens === undefined;
}

export function samePlace(a: AxisPlace, b: AxisPlace): boolean {
  if (a.meshAxis !== b.meshAxis) return false;
  if (!a.tokens || !b.tokens) return a.tokens === b.tokens;
  const x = a.tokens;
  const y = b.tokens;
  return x.chunks === y.chunks && x.segments.length === y.segments.length && x.segments.every((s, i) => s === y.segments[i]);
}

/**
 * `d` with axis `axis` placed as `p`. A token order joins d's when it is the same order (a 2-D
 * mask: rows and columns in one joint order), else it replaces it; a trivial order is dropped.
 */
export function withPlace(d: Dist, axis: number, p: AxisPlace): Dist {
  const out = withShard(d, axis, p.meshAxis);
  return p.tokens ? addTokenAxis(out, axis, p.tokens) : dropTokenAxis(out, axis);
}

/** Builds a dist from per-axis places. */
export function distFromPlaces(places: ReadonlyMap<number, AxisPlace>): Dist {
  let d: Dist = REPLICATED;
  for (const [axis, p] of [...places.entries()].sort((a, b) => a[0] - b[0])) d = withPlace(d, axis, p);
  return d;
}

/** The dist of `d` without any placement on `axis` (what a gather of that axis gives). */
export function plainOn(d: Dist, axis: number): Dist {
  return withPlace(d, axis, {});
}

/**
 * The token order of a placed axis of global size `length`: the stored one, or for a split axis
 * stored without one (a trivial order is never stored) one segment in as many chunks as ranks.
 */
export function tokensOn(v: ShardView, p: AxisPlace, axis: number, length: number): TokenOrder | undefined {
  if (p.tokens) return p.tokens;
  return p.meshAxis !== undefined ? { axis, segments: [length], chunks: v.sizeOf(p.meshAxis) } : undefined;
}

/** True when a token axis can be cut at segment boundaries locally: one whole chunk per rank. */
export function oneChunkPerRank(v: ShardView, p: AxisPlace, axis = 0, length = 0): boolean {
  const t = tokensOn(v, p, axis, length);
  return t !== undefined && p.meshAxis !== undefined && v.sizeOf(p.meshAxis) === t.chunks;
}
