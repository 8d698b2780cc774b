/**
 * Placement checks for the verifier: small rules over one node that return a problem or
 * undefined. Placement is part of the type (absent = replicated, placement.ts), so a wrong
 * layout is caught here instead of at run time. The context-parallel passes add rules for
 * collectives and sharded ops by passing their own list (VerifyOptions.placementRules).
 */
import type { Node, Value } from './graph';
import { elementwiseRules } from './ops/elementwise';
import { isCollectiveOp } from './ops/collective';
import { distOf, formatTokenOrder, isReplicated, sameOrder, tokenAxes } from './placement';
import type { Dist } from './placement';

/** Returns a message (without the node label) when the node's placements are inconsistent. */
export type PlacementRule = (node: Node) => string | undefined;

function isElementwise(op: string): boolean {
  return Object.prototype.hasOwnProperty.call(elementwiseRules, op);
}

interface Operand {
  readonly v: Value;
  readonly input: number;
  /** Rank difference to the broadcast result: operand axis k is result axis k + offset. */
  readonly offset: number;
  readonly dist: Dist;
}

/** True when the operand broadcasts along result axis `axis` (lacks it, or has size 1 there). */
function broadcastsAlong(x: Operand, axis: number): boolean {
  const local = axis - x.offset;
  return local < 0 || x.v.shape[local] === 1;
}

/**
 * Elementwise operands agree: on each (broadcast-aligned) axis, every operand that is sharded
 * there uses the same mesh axis and every other operand broadcasts along it (like a replicated
 * bias added to sharded activations); token orders agree the same way.
 */
export const elementwiseOperandsAgree: PlacementRule = (node) => {
  if (!isElementwise(node.op) || isCollectiveOp(node.op)) return undefined;
  const present = node.inputs.flatMap((v, i) => (v ? [{ v, i }] : []));
  if (present.length < 2) return undefined;
  const outRank = Math.max(...present.map(({ v }) => v.shape.length));
  const ops: Operand[] = present.map(({ v, i }) => ({ v, input: i, offset: outRank - v.shape.length, dist: distOf(v.type.placement) }));
  if (ops.every((x) => isReplicated(x.dist))) return undefined;

  const sharded = new Map<number, { meshAxis: string; input: number }>();
  for (const x of ops) {
    for (const s of x.dist.shards) {
      const axis = s.axis + x.offset;
      const prev = sharded.get(axis);
      if (!prev) sharded.set(axis, { meshAxis: s.meshAxis, input: x.input });
      else if (prev.meshAxis !== s.meshAxis) {
        return (
          `operands are sharded differently on broadcast axis ${axis}: input ${prev.input} over '${prev.meshAxis}', ` +
          `input ${x.input} over '${s.meshAxis}'; insert a collective to reshard one of them`
        );
      }
    }
  }
  for (const [axis, s] of sharded) {
    for (const x of ops) {
      if (broadcastsAlong(x, axis) || x.dist.shards.some((t) => t.axis + x.offset === axis)) continue;
      const local = axis - x.offset;
      return (
        `input ${x.input} is not sharded on its axis ${local} (size ${x.v.shape[local]}), but input ${s.input} is sharded on ` +
        `that axis over '${s.meshAxis}'; shard input ${x.input} the same way or gather input ${s.input} first`
      );
    }
  }

  const ordered = ops.filter((x) => x.dist.tokens);
  for (const o of ordered) {
    const t = o.dist.tokens!;
    for (const a of tokenAxes(t)) {
      const axis = a + o.offset;
      for (const x of ops) {
        if (x === o || broadcastsAlong(x, axis)) continue;
        const u = x.dist.tokens;
        if (u && tokenAxes(u).includes(axis - x.offset) && sameOrder(u, t)) continue;
        return (
          `input ${x.input} is ${u ? `in token order ${formatTokenOrder(u)}` : 'in natural token order'} on broadcast axis ${axis}, ` +
          `but input ${o.input} is in ${formatTokenOrder(t)}; reorder one of them first`
        );
      }
    }
  }
  return undefined;
};

export const DEFAULT_PLACEMENT_RULES: readonly PlacementRule[] = [elementwiseOperandsAgree];
