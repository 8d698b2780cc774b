/**
 * Sharding rules of contractions, normalizations and reductions. Per-token ops (linear layers,
 * norms over the feature axis) keep the token placement; the axes an op contracts, normalizes or
 * reduces over must be whole (gathered, natural order) on every rank; weights are replicated.
 */
import type { Dist } from '../placement';
import { REPLICATED } from '../placement';
import type { AxisPlace, ShardPlan, ShardRule, ShardView, TraceResult, TraceStep } from './core';
import { axisPlace, distFromPlaces, isPlainAxis, plainOn, remap, replicateAll, restrict } from './core';
import { broadcastPlan, broadcastTrace } from './elementwise';

function normalize(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}

/** x [..., K] with its feature axes from `first` on whole; the other inputs are weights. */
function featureRule(firstFeatureAxis: (v: ShardView) => number, what: string): ShardRule {
  return {
    propagate(v): ShardPlan {
      const r = v.inShapes[0]!.length;
      const f = firstFeatureAxis(v);
      const x = restrict(v.dists[0]!, (a) => a < f);
      const changed = x !== v.dists[0] && (x.shards.length !== v.dists[0]!.shards.length || x.tokens !== v.dists[0]!.tokens);
      const outs = v.outShapes.map((s) => (s.length === r ? x : restrict(x, (a) => a < s.length)));
      return {
        ins: [x, ...v.dists.slice(1).map(() => REPLICATED)],
        outs,
        ...(changed ? { note: `${what} axes ${f}.. must be whole; gathered first` } : {}),
      };
    },
    trace: (v, axis): TraceResult => (axis < firstFeatureAxis(v) ? [{ input: 0, axis }] : 'stop'),
  };
}

const last = (v: ShardView): number => v.inShapes[0]!.length - 1;

/** linear, layer_norm, rms_norm: everything but the last axis is per token. */
export const lastAxisRule = featureRule(last, 'feature');

/**
 * dequantize_fp8_rows(q [...,K], s [...,1]): per row like lastAxisRule, but the scales are not
 * weights: they are placed like q (every axis but the last), as quantize_fp8_rows made them.
 */
export const rowScaledRule: ShardRule = {
  propagate(v): ShardPlan {
    const r = v.inShapes[0]!.length;
    const x = restrict(v.dists[0]!, (a) => a < r - 1);
    const changed = x.shards.length !== v.dists[0]!.shards.length || x.tokens !== v.dists[0]!.tokens;
    return { ins: [x, x], outs: [x], ...(changed ? { note: `feature axis ${r - 1} must be whole; gathered first` } : {}) };
  },
  trace: (v, axis): TraceResult => (axis < v.inShapes[0]!.length - 1 ? [{ input: 0, axis }] : 'stop'),
};

/** LayerNormalization / RMSNormalization {axis}: normalized over axes axis..rank-1. */
export const onnxNormRule = featureRule((v) => normalize(v.attr.int('axis', -1), v.inShapes[0]!.length), 'normalized');

export const matmulRule: ShardRule = {
  propagate(v): ShardPlan {
    const A = v.inShapes[0]!;
    const B = v.inShapes[1]!;
    const out = v.outShapes[0]!;
    if (A.length < 2 || B.length < 2) return replicateAll(v, 'MatMul with a vector operand is not sharded; gathered');
    const R = out.length;
    // Batch axes broadcast like an elementwise op over the leading dims.
    const batchView: ShardView = { ...v, inShapes: [A.slice(0, -2), B.slice(0, -2)], dists: [restrict(v.dists[0]!, (a) => a < A.length - 2), restrict(v.dists[1]!, (a) => a < B.length - 2)] };
    const bp = broadcastPlan(batchView, [0, 1], out.slice(0, -2));
    const places = new Map<number, AxisPlace>();
    for (const s of bp.out.shards) places.set(s.axis, { meshAxis: s.meshAxis });
    const rows = axisPlace(v.dists[0]!, A.length - 2);
    let cols = axisPlace(v.dists[1]!, B.length - 1);
    if (!isPlainAxis(cols) && [...places.values(), rows].some((p) => p.meshAxis !== undefined && p.meshAxis === cols.meshAxis)) cols = {};
    if (cols.tokens && rows.tokens) cols = {};
    if (!isPlainAxis(rows)) places.set(R - 2, rows);
    if (!isPlainAxis(cols)) places.set(R - 1, cols);
    const withAxis = (d: Dist, axis: number, p: AxisPlace): Dist => {
      const m = new Map<number, AxisPlace>();
      for (const s of d.shards) m.set(s.axis, { meshAxis: s.meshAxis });
      if (!isPlainAxis(p)) m.set(axis, p);
      return distFromPlaces(m);
    };
    const needA = withAxis(bp.ins.get(0)!, A.length - 2, rows);
    const needB = withAxis(bp.ins.get(1)!, B.length - 1, cols);
    return { ins: [needA, needB], outs: [distFromPlaces(places)] };
  },
  trace(v, axis): TraceResult {
    const A = v.inShapes[0]!;
    const B = v.inShapes[1]!;
    const R = v.outShapes[0]!.length;
    if (A.length < 2 || B.length < 2) return 'origin';
    if (axis === R - 2) return [{ input: 0, axis: A.length - 2 }];
    if (axis === R - 1) return [{ input: 1, axis: B.length - 1 }];
    const view: ShardView = { ...v, inShapes: [A.slice(0, -2), B.slice(0, -2)] };
    return broadcastTrace(view, [0, 1], v.outShapes[0]!.slice(0, -2), axis);
  },
};

export const gemmRule: ShardRule = {
  propagate(v): ShardPlan {
    const tA = v.attr.int('transA', 0) === 1;
    const tB = v.attr.int('transB', 0) === 1;
    const mAxis = tA ? 1 : 0;
    const nAxis = tB ? 0 : 1;
    const rows = axisPlace(v.dists[0]!, mAxis);
    let cols = axisPlace(v.dists[1]!, nAxis);
    if (cols.meshAxis !== undefined && cols.meshAxis === rows.meshAxis) cols = {};
    if (cols.tokens && rows.tokens) cols = {};
    const out = distFromPlaces(new Map([...(isPlainAxis(rows) ? [] : [[0, rows] as const]), ...(isPlainAxis(cols) ? [] : [[1, cols] as const])]));
    const needA = distFromPlaces(new Map(isPlainAxis(rows) ? [] : [[mAxis, rows] as const]));
    const needB = distFromPlaces(new Map(isPlainAxis(cols) ? [] : [[nAxis, cols] as const]));
    const ins = [needA, needB];
    if (v.inShapes[2]) {
      // C broadcasts to [M, N]: full axes follow the output's placement.
      const C = v.inShapes[2];
      const places = new Map<number, AxisPlace>();
      C.forEach((d, a) => {
        const b = a + (2 - C.length);
        const p = axisPlace(out, b);
        if (d !== 1 && !isPlainAxis(p)) places.set(a, p);
      });
      ins.push(distFromPlaces(places));
    }
    return { ins, outs: [out] };
  },
  trace(v, axis): TraceResult {
    const tA = v.attr.int('transA', 0) === 1;
    const tB = v.attr.int('transB', 0) === 1;
    const steps: TraceStep[] = [axis === 0 ? { input: 0, axis: tA ? 1 : 0 } : { input: 1, axis: tB ? 0 : 1 }];
    const C = v.inShapes[2];
    if (C) {
      const a = axis - (2 - C.length);
      if (a >= 0 && C[a] === v.outShapes[0]![axis]) steps.push({ input: 2, axis: a });
    }
    return steps;
  },
};

/** Conv, pooling, instance/group/batch norms: only the batch axis (0) may be split. */
export const batchParallelRule: ShardRule = {
  propagate(v): ShardPlan {
    const x = restrict(v.dists[0]!, (a) => a === 0);
    const batch = axisPlace(x, 0);
    const clean = batch.tokens ? REPLICATED : x;
    return {
      ins: [clean, ...v.dists.slice(1).map(() => REPLICATED)],
      outs: v.outShapes.map((s) => (s[0] === v.inShapes[0]![0] ? clean : REPLICATED)),
      ...(clean !== v.dists[0] && v.dists[0]!.shards.some((s) => s.axis !== 0) ? { note: `${v.op} mixes tokens; only its batch axis may be split, so it is gathered first` } : {}),
    };
  },
  trace: (_v, axis): TraceResult => (axis === 0 ? [{ input: 0, axis: 0 }] : 'origin'),
};

/**
 * Ops over one axis (Softmax, ArgMax, CumSum, TopK, ...): that axis (for legacy Softmax, every
 * axis from it on) must be whole; `dropsAxis` when the output loses it (keepdims=0).
 */
export function axisOpRule(axesOf: (v: ShardView) => number[], dropsAxis: (v: ShardView) => boolean = () => false): ShardRule {
  return {
    propagate(v): ShardPlan {
      const axes = axesOf(v);
      let x = v.dists[0]!;
      for (const a of axes) x = plainOn(x, a);
      const changed = axes.some((a) => !isPlainAxis(axisPlace(v.dists[0]!, a)));
      const drop = dropsAxis(v);
      const out = drop ? remap(x, (a) => (axes.includes(a) ? undefined : a - axes.filter((r) => r < a).length)) : x;
      return {
        ins: [x, ...v.dists.slice(1).map(() => REPLICATED)],
        outs: v.outShapes.map(() => out),
        ...(changed ? { note: `${v.op} works along axis ${axes.join(', ')}, which must be whole; gathered first` } : {}),
      };
    },
    trace(v, axis): TraceResult {
      const axes = axesOf(v);
      if (!dropsAxis(v)) return axes.includes(axis) ? 'stop' : [{ input: 0, axis }];
      const kept = Array.from({ length: v.inShapes[0]!.length }, (_, a) => a).filter((a) => !axes.includes(a));
      return [{ input: 0, axis: kept[axis]! }];
    },
  };
}

export const softmaxAxes = (v: ShardView): number[] => {
  const r = v.inShapes[0]!.length;
  const a = normalize(v.attr.int('axis', v.opset < 13 ? 1 : -1), r);
  return v.opset < 13 ? Array.from({ length: r - a }, (_, i) => a + i) : [a];
};

/** Reduce* axes: input 1 (ReduceSum from opset 13, all from 18) or the `axes` attribute. */
export function reduceAxes(v: ShardView): number[] {
  const r = v.inShapes[0]!.length;
  const fromInput = v.opset >= 18 || (v.op === 'ReduceSum' && v.opset >= 13);
  const given = fromInput ? v.values[1]?.toArray() : v.attr.optInts('axes');
  if (fromInput && v.inShapes[1] && !given) return Array.from({ length: r }, (_, i) => i);
  if (!given || given.length === 0) {
    return v.opset >= 18 && v.attr.int('noop_with_empty_axes', 0) === 1 ? [] : Array.from({ length: r }, (_, i) => i);
  }
  return given.map((a) => normalize(a, r)).sort((a, b) => a - b);
}

const gatherReduce = axisOpRule(reduceAxes, (v) => v.attr.int('keepdims', 1) === 0);

/**
 * Reductions: over whole axes, like any axis op. ReduceSum / ReduceMax over one axis split over a
 * mesh axis m reduce locally and leave a partial result (an all_reduce over m completes it); a
 * ReduceMean there is planned as that plus a division by the global count ('all-reduce' lowering).
 * Padding tokens are masked out by the lowering before the local reduction.
 */
export const reduceRule: ShardRule = {
  propagate(v): ShardPlan {
    const axes = reduceAxes(v);
    const d = v.dists[0]!;
    const placed = axes.filter((a) => !isPlainAxis(axisPlace(d, a)));
    const split = placed.filter((a) => axisPlace(d, a).meshAxis !== undefined);
    const kind = v.op === 'ReduceSum' ? 'sum' : v.op === 'ReduceMax' ? 'max' : v.op === 'ReduceMean' ? 'mean' : undefined;
    if (!kind || split.length !== 1 || placed.length !== 1 || (kind === 'mean' && v.coords !== 'global')) return gatherReduce.propagate(v);
    const m = axisPlace(d, split[0]!).meshAxis!;
    const drop = v.attr.int('keepdims', 1) === 0;
    const kept = restrict(d, (a) => !axes.includes(a));
    const out = drop ? remap(kept, (a) => a - axes.filter((r) => r < a).length) : kept;
    const ins = [d, ...v.dists.slice(1).map(() => REPLICATED)];
    if (kind === 'mean') return { ins, outs: [out], lower: 'all-reduce' };
    return { ins, outs: [{ ...out, partial: { meshAxis: m, reduce: kind } }] };
  },
  trace: (v, axis) => gatherReduce.trace(v, axis),
};
