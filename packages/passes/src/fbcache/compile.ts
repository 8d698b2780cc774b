/**
 * The denoising step as the CLI and tests compile it: default pipeline, the context-parallel
 * passes for a mesh, then insert-cache-gate (last, so the collectives of the remaining blocks
 * land inside the computed branch), verified around every pass by @paradit/ir's `verify` (the
 * rules the step declares: placements, the cache gate).
 */
import { Module, worldSize } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import { createPassContext } from '../pass';
import type { Pass } from '../pass';
import type { PassReport } from '../report';
import { runPipeline } from '../pipeline';
import { defaultPipeline } from '../default-pipeline';
import { contextParallelPipeline } from '../context-parallel';
import { withMesh } from '../context-parallel/shard/mesh-options';
import { insertCacheGatePass } from '../insert-cache-gate';

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

export function compileDenoiseStep(m: Module, opts: CompileStepOptions = {}): Module {
  const ctx = createPassContext({
    verify: opts.verify !== false, // ir's verify: the rules the step declares (placements, the cache gate)
    ...(opts.report ? { report: opts.report } : {}),
    ...(opts.printAfter ? { printAfter: opts.printAfter } : {}),
    ...(opts.dump ? { dump: opts.dump } : {}),
  });
  return runPipeline(m, denoiseStepPipeline(opts), opts.mesh ? withMesh(ctx, opts.mesh) : ctx);
}
