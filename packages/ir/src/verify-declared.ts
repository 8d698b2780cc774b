/**
 * `verify(m)`: the one verifier entry. It picks its rules from what the module declares, never
 * from who calls it or from value names:
 *
 * - always: the IR rules and the default placement rules (verify.ts, verify-placement.ts);
 * - placements on the graph's values (with the collectives that size their mesh axes,
 *   carriesPlacements): the module is an SPMD program, so the SPMD placement rule checks every
 *   node (verify-spmd-rule.ts; collectives checked, not trusted). A module after the dtype policy
 *   keeps its collectives but no placements: one rank's program, checked by the IR rules;
 * - every model output whole on every rank, except, when the module has a cache gate (an If
 *   marked `cacheGate`, fbcache-names.ts), the outputs of its state pairs (X.next), which each
 *   rank keeps for its own shard of the state.
 *
 * verifyModule and verifySharded stay as its building blocks (and for tests of one rule set);
 * code that verifies a module it did not build itself calls `verify`.
 */
import type { Module, Value } from './graph';
import { IrError } from './errors';
import { verifyModule } from './verify';
import { DEFAULT_PLACEMENT_RULES } from './verify-placement';
import { carriesPlacements, spmdPlacementRule } from './verify-spmd-rule';
import { distOf, formatDist, isReplicated } from './placement';
import { hasCacheGate, statePairs } from './fbcache-names';

/** The rule sets `verify` applies to `m`, as read from its declarations. */
export interface VerifyPlan {
  /** The SPMD placement rule (placements declared, mesh axes sized by collectives). */
  readonly spmd: boolean;
  /** Outputs allowed to stay sharded (the cache gate's state outputs). */
  readonly perRankOutputs: ReadonlySet<Value>;
}

export function verifyPlan(m: Module): VerifyPlan {
  const perRankOutputs = new Set<Value>(hasCacheGate(m) ? statePairs(m).map((p) => p.output) : []);
  return { spmd: carriesPlacements(m), perRankOutputs };
}

/** Throws IrError('E_VERIFY') listing every problem; see the file header for the rules. */
export function verify(m: Module): void {
  const plan = verifyPlan(m);
  verifyModule(m, { placementRules: plan.spmd ? [...DEFAULT_PLACEMENT_RULES, spmdPlacementRule(m)] : DEFAULT_PLACEMENT_RULES });
  const bad = m.graph.outputs
    .map((v, k) => (plan.perRankOutputs.has(v) || isReplicated(distOf(v.type.placement)) ? undefined : `model output ${k} ('${v.name}') is placed ${formatDist(distOf(v.type.placement))}; gather it`))
    .filter((x): x is string => x !== undefined);
  if (bad.length) throw new IrError('E_VERIFY', `IR verification failed:\n  - [placement] ${bad.join('\n  - [placement] ')}`);
}
