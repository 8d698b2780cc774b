/**
 * The denoising step as the CLI and tests compile it: default pipeline, the context-parallel
 * passes for a mesh, then insert-cache-gate (last, so the collectives of the remaining blocks
 * land inside the computed branch), verified around every pass.
 */
import { DEFAULT_PLACEMENT_RULES, IrError, Module, distOf, formatDist, isReplicated, spmdPlacementRule, verifyModule, verifySharded, worldSize } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import { STATE_NEXT_SUFFIX } from '@paradit/ir';
import { createPassContext } from '../pass';
import type { Pass } from '../pass';
import type { PassReport } from '../report';
import { runPipeline } from '../pipeline';
import { defaultPipeline } from '../default-pipeline';
import { contextParallelPipeline } from '../context-parallel';
import { withMesh } from '../shard/mesh-options';
import { hasCacheGate, insertCacheGatePass } from '../insert-cache-gate';

/**
 * Verifies a gated step: the IR rules, placements (for a mesh) and every output whole on every
 * rank except the state outputs (X.next), which each rank keeps for its own shard.
 */
export function verifyCacheGated(m: Module): void {
  const sharded = m.graph.inputs.some((v) => v.type.placement !== undefined) || m.graph.outputs.some((v) => v.type.placement !== undefined);
  verifyModule(m, sharded ? { placementRules: [...DEFAULT_PLACEMENT_RULES, spmdPlacementRule(m)] } : {});
  const bad = m.graph.outputs.filter((v) => !v.name.endsWith(STATE_NEXT_SUFFIX) && !isReplicated(distOf(v.type.placement)));
  if (bad.length) {
    throw new IrError('E_VERIFY', `IR verification failed:\n${bad.map((v) => `  - [placement] model output '${v.name}' is placed ${formatDist(distOf(v.type.placement))}; gather it`).join('\n')}`);
  }
}

export interface CompileStepOptions {
  /** Compile for this mesh (omitted or 1x1x1: one rank). */
  readonly mesh?: Mesh;
  /** Insert the First Block Cache gate. */
  readonly fbcache?: boolean;
  /** The module already went through the default pipeline. */
  readonly prepared?: boolean;
  /** Verify around every pass (default true). */
  readonly verify?: boolean;
  readonly report?: PassReport;
  readonly printAfter?: readonly string[];
  readonly dump?: (passName: string, text: string) => void;
}

/** The passes of a denoising step, in order. */
export function denoiseStepPipeline(opts: CompileStepOptions): Pass[] {
  const sharded = opts.mesh !== undefined && worldSize(opts.mesh) > 1;
  return [
    ...(opts.prepared ? [] : defaultPipeline()), // fusion first: block discovery and the sharding rules read fused ops
    ...(sharded ? contextParallelPipeline() : []), // before the gate: its collectives then sit inside the computed branch
    ...(opts.fbcache ? [insertCacheGatePass] : []), // last: gates the finished (possibly sharded) step
  ];
}

/**
 * The verifier a denoising step's module declares: the gated-step rules when it has the cache gate,
 * the SPMD rules when it carries collectives, the plain IR rules otherwise.
 */
export function verifyStep(m: Module): void {
  if (hasCacheGate(m)) verifyCacheGated(m);
  else if (m.graph.nodes.some((n) => n.attrs.meshAxis !== undefined)) verifySharded(m, { placementRules: DEFAULT_PLACEMENT_RULES });
  else verifyModule(m);
}

export function compileDenoiseStep(m: Module, opts: CompileStepOptions = {}): Module {
  const ctx = createPassContext({
    verify: opts.verify === false ? false : verifyStep,
    ...(opts.report ? { report: opts.report } : {}),
    ...(opts.printAfter ? { printAfter: opts.printAfter } : {}),
    ...(opts.dump ? { dump: opts.dump } : {}),
  });
  return runPipeline(m, denoiseStepPipeline(opts), opts.mesh ? withMesh(ctx, opts.mesh) : ctx);
}
