/**
 * Sharding rules of the collectives: each one is a placement transition, and the verifier checks
 * that its operand has the placement it starts from.
 *
 *   all_gather {meshAxis m, axis a}           a split over m  ->  a whole (token order kept)
 *   shard_slice {meshAxis m, axis a}          a whole         ->  a split over m
 *   all_to_all {meshAxis m, splitAxis s, concatAxis c}
 *                                              c split over m  ->  s split over m, c whole
 *   ppermute, all_reduce                       unchanged
 *   to_token_order {axis a, segments, chunks}  a natural       ->  a in rank-chunk order
 *   from_token_order {axis a, ...}             a in that order ->  a natural
 */
import type { AxisPlace, ShardPlan, ShardRule, ShardView } from './core';
import type { Dist } from '../placement';
import { axisPlace, withPlace } from './core';

function norm(v: ShardView, axis: number): number {
  return axis < 0 ? axis + v.inShapes[0]!.length : axis;
}

const passThrough = (_v: ShardView, axis: number): { input: number; axis: number }[] => [{ input: 0, axis }];

/**
 * Sub-axes of 'sp' (ring major, ulysses minor): an axis split over 'sp' and gathered over
 * 'ulysses' is split over 'ring' (each ring block is U consecutive sp chunks), and an axis split
 * over 'ring' and split again over 'ulysses' is split over 'sp'.
 */
function afterGather(split: string | undefined, m: string): string | undefined | false {
  if (split === m) return undefined;
  if (split === 'sp' && m === 'ulysses') return 'ring';
  return false;
}

function afterSplit(split: string | undefined, m: string): string | false {
  if (split === undefined) return m;
  if (split === 'ring' && m === 'ulysses') return 'sp';
  return false;
}

/** The place an axis must have to be gathered over m (its current one when that works). */
function gatherable(p: AxisPlace, m: string): AxisPlace {
  return afterGather(p.meshAxis, m) === false ? { ...p, meshAxis: m } : p;
}

function splittable(p: AxisPlace, m: string): AxisPlace {
  if (afterSplit(p.meshAxis, m) !== false) return p;
  return p.tokens ? { tokens: p.tokens } : {};
}

function gathered(p: AxisPlace, m: string): AxisPlace {
  const r = afterGather(p.meshAxis, m);
  const rest = r === false ? undefined : r;
  return { ...(p.tokens ? { tokens: p.tokens } : {}), ...(rest ? { meshAxis: rest } : {}) };
}

function split(p: AxisPlace, m: string): AxisPlace {
  const r = afterSplit(p.meshAxis, m);
  return { ...(p.tokens ? { tokens: p.tokens } : {}), meshAxis: r === false ? m : r };
}

export const allGatherShardRule: ShardRule = {
  propagate(v): ShardPlan {
    const a = norm(v, v.attr.int('axis'));
    const m = v.attr.string('meshAxis');
    const d = v.dists[0]!;
    const p = gatherable(axisPlace(d, a), m);
    return { ins: [withPlace(d, a, p)], outs: [withPlace(d, a, gathered(p, m))] };
  },
  trace: passThrough,
};

export const shardSliceShardRule: ShardRule = {
  propagate(v): ShardPlan {
    const a = norm(v, v.attr.int('axis'));
    const m = v.attr.string('meshAxis');
    const d = v.dists[0]!;
    const p = splittable(axisPlace(d, a), m);
    return { ins: [withPlace(d, a, p)], outs: [withPlace(d, a, split(p, m))] };
  },
  trace: passThrough,
};

export const allToAllShardRule: ShardRule = {
  propagate(v): ShardPlan {
    const s = norm(v, v.attr.int('splitAxis'));
    const c = norm(v, v.attr.int('concatAxis'));
    const m = v.attr.string('meshAxis');
    const d = v.dists[0]!;
    const ps = splittable(axisPlace(d, s), m);
    const pc = gatherable(axisPlace(d, c), m);
    const need = withPlace(withPlace(d, s, ps), c, pc);
    const out = withPlace(withPlace(d, s, split(ps, m)), c, gathered(pc, m));
    return { ins: [need], outs: [out] };
  },
  trace: passThrough,
};

/** all_reduce completes a partial result of its mesh axis and reduction. */
export const allReduceShardRule: ShardRule = {
  propagate(v): ShardPlan {
    const m = v.attr.string('meshAxis');
    const reduce = v.attr.string('reduce');
    const d = v.dists[0]!;
    const plain: Dist = d.tokens ? { shards: d.shards, tokens: d.tokens } : { shards: d.shards };
    const partial = reduce === 'sum' || reduce === 'max' || reduce === 'mean' ? { meshAxis: m, reduce: reduce as 'sum' | 'max' | 'mean' } : undefined;
    return { ins: [partial ? { ...plain, partial } : plain], outs: [plain] };
  },
  trace: passThrough,
};

export const sameShardRule: ShardRule = {
  propagate: (v) => ({ ins: v.dists, outs: [v.dists[0]!] }),
  trace: passThrough,
};

export const toTokenOrderShardRule: ShardRule = {
  propagate(v): ShardPlan {
    const a = norm(v, v.attr.int('axis'));
    const d = v.dists[0]!;
    const need = withPlace(d, a, {});
    const tokens = { axis: a, segments: v.attr.ints('segments'), chunks: v.attr.int('chunks') };
    return { ins: [need], outs: [withPlace(d, a, { tokens })] };
  },
  trace: passThrough,
};

export const fromTokenOrderShardRule: ShardRule = {
  propagate(v): ShardPlan {
    const a = norm(v, v.attr.int('axis'));
    const d = v.dists[0]!;
    const tokens = { axis: a, segments: v.attr.ints('segments'), chunks: v.attr.int('chunks') };
    return { ins: [withPlace(d, a, { tokens })], outs: [withPlace(d, a, {})] };
  },
  trace: passThrough,
};
