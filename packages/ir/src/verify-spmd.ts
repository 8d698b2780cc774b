/**
 * The verifier's placement check for modules compiled for a mesh: every node's operands must have
 * the placements its sharding rule demands (a per-token op sees its operands split alike, an op
 * that mixes tokens sees them whole, a collective sees the placement it starts from) and every
 * output must carry the placement the rule derives. Collectives are thus checked, not trusted.
 *
 * Mesh axis sizes come from the module's own collectives (their groupSize); global shapes are
 * reconstructed from per-rank types and placements, and the rules run in per-rank coordinates.
 */
import type { Module } from './graph';
import { IrError } from './errors';
import { DEFAULT_PLACEMENT_RULES } from './verify-placement';
import { verifyModule } from './verify';
import type { VerifyOptions } from './verify';
import { distOf, formatDist, isReplicated } from './placement';
import { spmdPlacementRule } from './verify-spmd-rule';

export { carriesPlacements, meshAxisSizes, spmdPlacementRule } from './verify-spmd-rule';

/** Outputs of a compiled module must be whole on every rank. */
export function outputsReplicated(m: Module): string[] {
  return m.graph.outputs
    .map((v, k) => (isReplicated(distOf(v.type.placement)) ? undefined : `model output ${k} ('${v.name}') is placed ${formatDist(distOf(v.type.placement))}; gather it`))
    .filter((x): x is string => x !== undefined);
}

/** verifyModule with the default rules plus the SPMD placement rule; throws IrError('E_VERIFY'). */
export function verifySharded(m: Module, opts: VerifyOptions = {}): void {
  verifyModule(m, { ...opts, placementRules: [...(opts.placementRules ?? DEFAULT_PLACEMENT_RULES), spmdPlacementRule(m)] });
  const outs = outputsReplicated(m);
  if (outs.length) throw new IrError('E_VERIFY', `IR verification failed:\n  - [placement] ${outs.join('\n  - [placement] ')}`);
}
