/**
 * Sharding rules of per-element ops: unary maps keep their operand's placement; broadcasting
 * n-ary ops (Add, Mul, Where, modulate, gated_residual, ...) need every full-size operand placed
 * like the first placed one on each axis (a replicated positional table beside sharded tokens is
 * sliced the same way), and operands that broadcast along an axis must not be placed on it.
 */
import type { Dist } from '../placement';
import type { AxisPlace, ShardPlan, ShardRule, ShardView, TraceResult, TraceStep } from './core';
import { axisPlace, distFromPlaces, isPlainAxis, samePlace } from './core';

/** Output 0 (and every output) placed like input 0; other inputs are left as they are. */
export const unaryRule: ShardRule = {
  propagate(v) {
    const d = v.dists[0]!;
    return { ins: v.dists, outs: v.outShapes.map(() => d) };
  },
  trace: (_v, axis) => [{ input: 0, axis }],
};

/**
 * Places every output axis of a broadcast over `operands` (input indices); returns the dists the
 * operands need and the output dist. `out` is the broadcast shape.
 */
export function broadcastPlan(v: ShardView, operands: readonly number[], out: readonly number[]): { ins: Map<number, Dist>; out: Dist; note?: string } {
  const R = out.length;
  const target = new Map<number, AxisPlace>();
  let note: string | undefined;
  for (let b = 0; b < R; b++) {
    let chosen: AxisPlace | undefined;
    for (const i of operands) {
      const s = v.inShapes[i];
      if (!s) continue;
      const a = b - (R - s.length);
      if (a < 0 || (s[a] === 1 && out[b] !== 1)) continue;
      const p = axisPlace(v.dists[i]!, a);
      if (isPlainAxis(p)) continue;
      if (!chosen) chosen = p;
      else if (!samePlace(chosen, p)) note = `operands are placed differently on axis ${b}; the later ones are resharded`;
    }
    if (chosen) target.set(b, chosen);
  }
  const ins = new Map<number, Dist>();
  for (const i of operands) {
    const s = v.inShapes[i];
    if (!s) continue;
    const places = new Map<number, AxisPlace>();
    for (let a = 0; a < s.length; a++) {
      const b = a + (R - s.length);
      const full = !(s[a] === 1 && out[b] !== 1);
      const t = target.get(b);
      if (full && t) places.set(a, t);
    }
    ins.set(i, distFromPlaces(places));
  }
  return { ins, out: distFromPlaces(target), ...(note ? { note } : {}) };
}

/** Axes of the broadcast output carried by each operand (full size, not broadcast). */
export function broadcastTrace(v: ShardView, operands: readonly number[], out: readonly number[], axis: number): TraceStep[] {
  const steps: TraceStep[] = [];
  if (out[axis] === 1) return steps;
  for (const i of operands) {
    const s = v.inShapes[i];
    if (!s) continue;
    const a = axis - (out.length - s.length);
    if (a >= 0 && s[a] === out[axis]) steps.push({ input: i, axis: a });
  }
  return steps;
}

/** Every input broadcasts against every other; all outputs have the broadcast shape. */
export const broadcastRule: ShardRule = {
  propagate(v): ShardPlan {
    const operands = v.inShapes.map((_, i) => i);
    const out = v.outShapes[0]!;
    const p = broadcastPlan(v, operands, out);
    return {
      ins: v.dists.map((d, i) => p.ins.get(i) ?? d),
      outs: v.outShapes.map(() => p.out),
      ...(p.note ? { note: p.note } : {}),
    };
  },
  trace(v, axis): TraceResult {
    return broadcastTrace(v, v.inShapes.map((_, i) => i), v.outShapes[0]!, axis);
  },
};
