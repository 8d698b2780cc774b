/**
 * Reductions over a split token axis (ReduceSum, ReduceMax, ReduceMean): each rank reduces its
 * own chunk and an all_reduce combines the ranks, instead of gathering the tokens.
 *
 *   ReduceSum/ReduceMax(x) -> local ReduceSum/ReduceMax, left partial (the consumer's resharding
 *                             adds the all_reduce)
 *   ReduceMean(x)          -> ReduceSum, all_reduce(sum), Mul by 1/count (global, real tokens)
 *
 * Padding tokens of uneven splits are replaced by the reduction's identity first (0, or -inf
 * for max) through a per-rank slice of a constant validity mask.
 */
import { Tensor, Value, axisPlace, hasPadding, shardOf, tokensAt } from '@paradit/ir';
import type { AttrValue, Dist, TokenOrder } from '@paradit/ir';
import { i64 } from './convert';
import type { LocalizeCtx, Localized } from './localize';
import { validTokens } from './localize';

const int = (value: number): AttrValue => ({ kind: 'int', value });
const str = (value: string): AttrValue => ({ kind: 'string', value });

function reducedAxes(c: LocalizeCtx): number[] {
  const r = c.inShapes[0]!.length;
  const fromInput = c.opset >= 18 || (c.node.op === 'ReduceSum' && c.opset >= 13);
  const a = c.node.attrs.axes;
  const given = fromInput ? c.inputs[1]?.constant?.tensor().toArray() : a?.kind === 'ints' ? [...a.value] : undefined;
  return (given && given.length ? given : Array.from({ length: r }, (_, i) => i)).map((x) => (x < 0 ? x + r : x));
}

/** `x` with the padding positions of its split token axis replaced by `fill`. */
function maskPadding(c: LocalizeCtx, x: Value, d: Dist, axis: number, meshAxis: string, fill: number): Value {
  const t: TokenOrder | undefined = tokensAt(d, axis);
  if (!t || !hasPadding(t)) return x;
  const name = c.node.name || c.node.op;
  const rank = c.inShapes[0]!.length;
  const whole = validTokens(c.b, new Array<number>(axis).fill(1), t, name, c.record, new Array<number>(rank - axis - 1).fill(1));
  const local = c.b.add('shard_slice', [whole], { meshAxis: str(meshAxis), axis: int(axis), groupSize: int(c.sizeOf(meshAxis)) }, { name: `${name}/valid_tokens_slice` })[0]!;
  c.record(local, { shards: [{ axis, meshAxis }], tokens: t });
  const out = c.b.add('Where', [local, x, c.b.constant(Tensor.from(x.dtype, [], [fill]))], {}, { name: `${name}/mask_padding` })[0]!;
  c.record(out, d);
  return out;
}

/** Undefined when the reduction does not cross a split axis (it then runs unchanged). */
export function lowerReduce(c: LocalizeCtx): Localized | undefined {
  const d = c.need[0]!;
  const axes = reducedAxes(c);
  const split = axes.filter((a) => shardOf(d, a) !== undefined);
  if (split.length !== 1) return undefined;
  const axis = split[0]!;
  const meshAxis = axisPlace(d, axis).meshAxis!;
  const isMax = c.node.op === 'ReduceMax';
  const x = maskPadding(c, c.inputs[0]!, d, axis, meshAxis, isMax ? -Infinity : 0);
  const name = c.node.name || c.node.op;
  if (c.node.op !== 'ReduceMean') return { inputs: [x, ...c.inputs.slice(1)], attrs: c.node.attrs };
  // Mean: local sum, all_reduce(sum), divide by the global number of reduced elements.
  const sumAttrs: Record<string, AttrValue> = { ...c.node.attrs };
  delete sumAttrs.axes;
  const sumInputs = c.opset >= 13 ? [x, i64(c.b, axes, `${name}.axes`)] : [x];
  if (c.opset < 13) sumAttrs.axes = { kind: 'ints', value: axes };
  const partialDist: Dist = { ...c.outs[0]!, partial: { meshAxis, reduce: 'sum' } };
  const sum = c.b.add('ReduceSum', sumInputs, sumAttrs, { name: `${name}/local_sum` })[0]!;
  c.record(sum, partialDist);
  const total = c.b.add('all_reduce', [sum], { meshAxis: str(meshAxis), reduce: str('sum'), groupSize: int(c.sizeOf(meshAxis)) }, { name: `${name}/all_reduce_${meshAxis}` })[0]!;
  c.record(total, c.outs[0]!);
  const count = axes.reduce((p, a) => p * c.inShapes[0]![a]!, 1);
  const mean = c.b.add('Mul', [total, c.b.constant(Tensor.from(x.dtype, [], [1 / count]), `${name}.inv_count`)], {}, { name: `${name}/mean` })[0]!;
  c.record(mean, c.outs[0]!);
  return { inputs: c.inputs, attrs: c.node.attrs, replace: [mean] };
}
