/**
 * Resharding one value from the dist it has to the dist a consumer needs, with the fewest
 * collectives in a fixed order: gather every axis whose split differs (all_gather), leave a token
 * order that differs (from_token_order, per axis), enter the needed one (to_token_order, per
 * axis: a 2-D mask takes its rows and columns into one joint order), then split the
 * axes the target splits (shard_slice, no communication). Conversions are memoized per value and
 * target, so several consumers share one all_gather.
 */
import { GraphBuilder, Tensor, Value, sameDist, sameOrder, isTrivialOrder, formatDist } from '@paradit/ir';
import type { AttrValue, Dist } from '@paradit/ir';
import { addTokenAxis, dropTokenAxis, shardOf, tokenAxes, withShard, withTokens } from '@paradit/ir';
import type { SizeOf } from './view';

const int = (value: number): AttrValue => ({ kind: 'int', value });
const str = (value: string): AttrValue => ({ kind: 'string', value });
const ints = (value: readonly number[]): AttrValue => ({ kind: 'ints', value });

export interface Converter {
  /** `x` (placed as `from`) placed as `to`; `fill` pads new token positions (default 0). */
  convert(x: Value, from: Dist, to: Dist, name: string, fill?: number): Value;
  /** Number of collectives emitted so far. */
  readonly emitted: number;
}

/** `record` receives the dist of every value the converter creates (for stamping placements). */
export function makeConverter(b: GraphBuilder, sizeOf: SizeOf, record: (v: Value, d: Dist) => void = () => undefined): Converter {
  const memo = new Map<string, Value>();
  let emitted = 0;
  const add = (op: string, x: Value, attrs: Record<string, AttrValue>, name: string): Value => {
    emitted++;
    return b.add(op, [x], attrs, { name })[0]!;
  };
  const gather = (x: Value, axis: number, meshAxis: string, name: string): Value =>
    add('all_gather', x, { meshAxis: str(meshAxis), axis: int(axis), groupSize: int(sizeOf(meshAxis)) }, `${name}/all_gather_${meshAxis}`);
  return {
    get emitted() {
      return emitted;
    },
    convert(x, from, to, name, fill = 0) {
      if (sameDist(from, to)) return x;
      const key = `${x.id}|${formatDist(to)}|${fill}`;
      const hit = memo.get(key);
      if (hit) return hit;
      let cur = x;
      let d = from;
      if (d.partial) {
        // A partial result (local reduction over a split axis) is completed first.
        const { meshAxis, reduce } = d.partial;
        cur = add('all_reduce', cur, { meshAxis: str(meshAxis), reduce: str(reduce), groupSize: int(sizeOf(meshAxis)) }, `${name}/all_reduce_${meshAxis}`);
        d = d.tokens ? { shards: d.shards, tokens: d.tokens } : { shards: d.shards };
        record(cur, d);
      }
      const toTokens = to.tokens && !isTrivialOrder(to.tokens) ? to.tokens : undefined;
      const fromTokens = d.tokens && !isTrivialOrder(d.tokens) ? d.tokens : undefined;
      // Axes that leave their order and axes that enter one. The same order on more or fewer
      // axes (a 2-D mask) changes only those; a different order leaves and re-enters them all.
      const same = fromTokens !== undefined && toTokens !== undefined && sameOrder(fromTokens, toTokens);
      const fromAxes = fromTokens ? tokenAxes(fromTokens) : [];
      const toAxes = toTokens ? tokenAxes(toTokens) : [];
      const leave = fromAxes.filter((a) => !same || !toAxes.includes(a));
      const enter = toAxes.filter((a) => !same || !fromAxes.includes(a));
      const changed = new Set([...leave, ...enter]);
      for (const s of d.shards) {
        const keep = shardOf(to, s.axis) === s.meshAxis && !changed.has(s.axis);
        if (keep) continue;
        cur = gather(cur, s.axis, s.meshAxis, name);
        d = withShard(d, s.axis, undefined);
        record(cur, d);
      }
      for (const a of leave) {
        const t = fromTokens!;
        cur = add('from_token_order', cur, { axis: int(a), segments: ints(t.segments), chunks: int(t.chunks) }, `${name}/from_token_order${leave.length > 1 ? `_${a}` : ''}`);
        d = dropTokenAxis(d, a);
        record(cur, d);
      }
      if (!toTokens) d = withTokens(d, undefined);
      const slice = (axis: number, meshAxis: string): void => {
        cur = add('shard_slice', cur, { meshAxis: str(meshAxis), axis: int(axis), groupSize: int(sizeOf(meshAxis)) }, `${name}/shard_slice_${meshAxis}`);
        d = withShard(d, axis, meshAxis);
        record(cur, d);
      };
      for (const a of enter) {
        const t = toTokens!;
        cur = add('to_token_order', cur, { axis: int(a), segments: ints(t.segments), chunks: int(t.chunks), fill: { kind: 'float', value: fill } }, `${name}/to_token_order${enter.length > 1 ? `_${a}` : ''}`);
        d = addTokenAxis(d, a, t);
        record(cur, d);
        // Split an entered axis right away, so the next axis is reordered on 1/P of the rows only.
        const m = shardOf(to, a);
        if (enter.length > 1 && m !== undefined && shardOf(d, a) === undefined) slice(a, m);
      }
      d = withTokens(d, to.tokens);
      record(cur, d);
      for (const s of to.shards) if (shardOf(d, s.axis) !== s.meshAxis) slice(s.axis, s.meshAxis);
      memo.set(key, cur);
      return cur;
    },
  };
}

/** A constant i64 vector. */
export function i64(b: GraphBuilder, xs: readonly number[], name = ''): Value {
  return b.constant(Tensor.from('i64', [xs.length], xs), name);
}
