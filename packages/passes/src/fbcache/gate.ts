/**
 * insert-cache-gate, the decision: r1, diff and the branch condition, on one rank or sharded.
 *
 *   r1   = mainOut - mainIn
 *   diff = mean|r1 - r_ref| / mean|r_ref|          (in the stream's dtype, as ParaAttention)
 *   cond = valid & !must_compute & threshold > 0 & cached_run < max_cached & f32(diff) < threshold
 *
 * Unsharded, each mean is a ReduceMean (ParaAttention's spelling). When the stream is sharded,
 * each rank sums its own part (padding tokens of an uneven split masked to 0), an all_reduce(sum)
 * per mesh axis that splits the stream completes the sum, and a multiply by 1/count (real
 * elements of the global tensor) gives the global mean: every rank then holds the same diff and
 * takes the same branch (a CFG batch split over 'cfg' included: the decision covers the batch).
 */
import { GraphBuilder, IrError, Node, Tensor, Value, buildNode, updateNode, distOf, hasPadding, naturalLength, placementOf, tensorType } from '@paradit/ir';
import type { AttrValue, Dist } from '@paradit/ir';

const int = (value: number): AttrValue => ({ kind: 'int', value });
const str = (value: string): AttrValue => ({ kind: 'string', value });

/**
 * Makes nodes one at a time: each goes through GraphBuilder's shape rule (operands checked, types
 * inferred) and its outputs get the placement the caller states. Nodes are collected in order.
 */
export class NodeMaker {
  readonly nodes: Node[] = [];
  constructor(readonly opset: number) {}

  add(
    op: string,
    inputs: readonly (Value | null)[],
    attrs: Record<string, AttrValue>,
    name: string,
    dists: readonly (Dist | undefined)[] = [],
    numOutputs = 1,
    outputNames: readonly string[] = [],
  ): Value[] {
    const placements = dists.map((d) => (d ? placementOf(d) : undefined));
    const node = buildNode(this.opset, op, inputs, attrs, { name, numOutputs, outputNames, placements });
    this.nodes.push(node);
    return [...node.outputs];
  }

  one(op: string, inputs: readonly (Value | null)[], attrs: Record<string, AttrValue>, name: string, dist?: Dist, outputName?: string): Value {
    return this.add(op, inputs, attrs, name, [dist], 1, outputName ? [outputName] : [])[0]!;
  }

  constant(t: Tensor, name: string): Value {
    return new GraphBuilder(this.opset).constant(t, name);
  }

  /** A copy of node `n` reading other inputs (same op, attributes and output types), named `<name><suffix>`. */
  clone(n: Node, inputs: readonly (Value | null)[], suffix: string): Value[] {
    const outs = n.outputs.map((o) => new Value(o.type, o.name ? `${o.name}${suffix}` : ''));
    this.nodes.push(updateNode(n, { inputs, outputs: outs, name: `${n.name || n.op}${suffix}` }));
    return outs;
  }
}

interface GateInputs {
  readonly mainIn: Value;
  readonly mainOut: Value;
  readonly rRef: Value;
  readonly valid: Value;
  readonly cachedRun: Value;
  readonly threshold: Value;
  readonly mustCompute: Value;
  readonly maxCached: Value;
  /** Group size of each mesh axis the module uses. */
  readonly sizeOf: (meshAxis: string) => number;
}

interface Gate {
  readonly r1: Value;
  /** f32 scalar */
  readonly diff: Value;
  /** bool scalar */
  readonly cond: Value;
}

/** Builds the decision; `names` gives the names of the reported diff and condition values. */
export function buildGate(mk: NodeMaker, g: GateInputs, names: { readonly diff: string; readonly cached: string }): Gate {
  const d = distOf(g.mainOut.type.placement);
  const r1 = mk.one('Sub', [g.mainOut, g.mainIn], {}, 'fbcache/r1', d);
  const absDelta = mk.one('Abs', [mk.one('Sub', [r1, g.rRef], {}, 'fbcache/r1_minus_ref', d)], {}, 'fbcache/abs_delta', d);
  const absRef = mk.one('Abs', [g.rRef], {}, 'fbcache/abs_ref', d);
  const meanDelta = globalMean(mk, absDelta, d, g.sizeOf, 'fbcache/mean_delta');
  const meanRef = globalMean(mk, absRef, d, g.sizeOf, 'fbcache/mean_ref');
  const f32 = meanDelta.dtype === 'f32';
  const ratio = mk.one('Div', [meanDelta, meanRef], {}, 'fbcache/diff', undefined, f32 ? names.diff : undefined);
  const diff = f32 ? ratio : mk.one('Cast', [ratio], { to: int(1) }, 'fbcache/diff_f32', undefined, names.diff);
  const zero = mk.constant(Tensor.from('f32', [], [0]), 'fbcache.zero');
  const similar = mk.one('Less', [diff, g.threshold], {}, 'fbcache/similar');
  const enabled = mk.one('Greater', [g.threshold, zero], {}, 'fbcache/enabled');
  const underLimit = mk.one('Less', [g.cachedRun, g.maxCached], {}, 'fbcache/under_limit');
  const free = mk.one('Not', [g.mustCompute], {}, 'fbcache/not_forced');
  let cond = mk.one('And', [g.valid, free], {}, 'fbcache/cond_0');
  cond = mk.one('And', [cond, enabled], {}, 'fbcache/cond_1');
  cond = mk.one('And', [cond, underLimit], {}, 'fbcache/cond_2');
  cond = mk.one('And', [cond, similar], {}, 'fbcache/cached', undefined, names.cached);
  return { r1, diff, cond };
}

/** Mean of every element of `x` (placed `d`) over the global tensor's real elements, on every rank. */
function globalMean(mk: NodeMaker, x: Value, d: Dist, sizeOf: (meshAxis: string) => number, name: string): Value {
  const t = d.tokens;
  if (d.shards.length === 0 && !(t && hasPadding(t))) return mk.one('ReduceMean', [x], { keepdims: int(0) }, name);
  const shape = x.shape.map((s) => {
    if (typeof s !== 'number') throw new IrError('E_INPUT', `${name}: a sharded stream needs static shapes, got [${x.shape.join(',')}]`);
    return s;
  });
  let cur = x;
  let dist: Dist = d;
  if (t && hasPadding(t)) cur = maskPadding(mk, cur, d, shape.length, sizeOf, name);
  for (const s of d.shards) {
    const rest = dist.shards.filter((o) => o.axis !== s.axis);
    const tokens = dist.tokens && dist.tokens.axis !== s.axis ? dist.tokens : undefined;
    const kept: Dist = tokens ? { shards: rest, tokens } : { shards: rest };
    const sum = mk.one('ReduceSum', reduceInputs(mk, cur, [s.axis], name), reduceAttrs(mk.opset, [s.axis], 1), `${name}/local_sum_${s.meshAxis}`, {
      ...kept,
      partial: { meshAxis: s.meshAxis, reduce: 'sum' },
    });
    cur = mk.one('all_reduce', [sum], { meshAxis: str(s.meshAxis), reduce: str('sum'), groupSize: int(sizeOf(s.meshAxis)) }, `${name}/all_reduce_${s.meshAxis}`, kept);
    dist = kept;
  }
  const all = shape.map((_, i) => i);
  const total = mk.one('ReduceSum', reduceInputs(mk, cur, all, name), reduceAttrs(mk.opset, all, 0), `${name}/sum`);
  // Real elements of the global tensor: local sizes times split factors; the token axis counts its real tokens.
  let count = 1;
  shape.forEach((n, axis) => {
    if (t && t.axis === axis) count *= naturalLength(t);
    else count *= d.shards.filter((s) => s.axis === axis).reduce((a, s) => a * sizeOf(s.meshAxis), n);
  });
  return mk.one('Mul', [total, mk.constant(Tensor.from(x.dtype, [], [1 / count]), `${name}.inv_count`)], {}, `${name}/mean`);
}

function reduceInputs(mk: NodeMaker, x: Value, axes: readonly number[], name: string): Value[] {
  return mk.opset >= 13 ? [x, mk.constant(Tensor.from('i64', [axes.length], axes), `${name}.axes`)] : [x];
}

function reduceAttrs(opset: number, axes: readonly number[], keepdims: number): Record<string, AttrValue> {
  return opset >= 13 ? { keepdims: int(keepdims) } : { axes: { kind: 'ints', value: axes }, keepdims: int(keepdims) };
}

/** x with the padding positions of its token axis set to 0 (a per-rank slice of a constant mask). */
function maskPadding(mk: NodeMaker, x: Value, d: Dist, rank: number, sizeOf: (meshAxis: string) => number, name: string): Value {
  const t = d.tokens!;
  const shape = Array.from({ length: rank }, (_, i) => (i === t.axis ? naturalLength(t) : 1));
  const ones = mk.constant(Tensor.from('bool', shape, new Array<number>(naturalLength(t)).fill(1)), `${name}.all_tokens`);
  const attrs: Record<string, AttrValue> = { axis: int(t.axis), segments: { kind: 'ints', value: t.segments }, chunks: int(t.chunks), fill: { kind: 'float', value: 0 } };
  let mask = mk.one('to_token_order', [ones], attrs, `${name}/valid_tokens`, { shards: [], tokens: t });
  const split = d.shards.find((s) => s.axis === t.axis);
  if (split) {
    mask = mk.one('shard_slice', [mask], { meshAxis: str(split.meshAxis), axis: int(t.axis), groupSize: int(sizeOf(split.meshAxis)) }, `${name}/valid_tokens_slice`, {
      shards: [{ axis: t.axis, meshAxis: split.meshAxis }],
      tokens: t,
    });
  }
  const zero = mk.constant(Tensor.from(x.dtype, [], [0]), `${name}.zero`);
  return mk.one('Where', [mask, x, zero], {}, `${name}/mask_padding`, d);
}
