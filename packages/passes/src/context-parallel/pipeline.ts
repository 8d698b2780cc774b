/**
 * Context parallelism end to end: the pipeline that compiles a module for a (cfg, ring, ulysses)
 * mesh, the simulator hook, and the communication summary `inspect --json` reports.
 *
 *   compileForMesh(module, mesh)          -> per-rank module (SPMD), verified
 *   runSimulated(module, mesh, inputs)    -> model outputs (all ranks in one process; @paradit/ir)
 *   collectiveSummary(module)             -> [{op, count, bytesPerRank}] per forward (one step)
 */
import { DEFAULT_PLACEMENT_RULES, Module, Tensor, byteSize, numel, runSimulated, simulateRanks, worldSize } from '@paradit/ir';
import { opsWith } from '@paradit/ir';
import type { Mesh, MeshAxis, Node } from '@paradit/ir';
import { axisIndex, collectiveGroupOf } from '@paradit/ir';
import type { Pass } from '../pass';
import { createPassContext } from '../pass';
import type { PassReport } from '../report';
import { runPipeline } from '../pipeline';
import { defaultPipeline } from '../default-pipeline';
import { splitCfgBatch } from './split-cfg-batch';
import { shardSequence } from './shard-sequence';
import { insertAllToAllPass } from './insert-all-to-all';
import { insertRingAttentionPass } from './insert-ring-attention';
import { rowsParallelPipeline } from '../rows-parallel/pass';
import { findCommFp8Sites, quantizeCommFp8Pass } from '../fp8/quantize-comm-fp8';

/** The context-parallel passes, in order. */
export function contextParallelPipeline(): Pass[] {
  return [
    splitCfgBatch, // first: the batch split is outermost; shard-sequence then splits tokens within each cfg group
    shardSequence, // tokens split from their roots; attention gathers keys/values (the exact, simple plan)
    insertAllToAllPass, // Ulysses: the sequence gathers of k/v become head-scattering all-to-alls (hybrid: inside ring groups)
    insertRingAttentionPass, // ring: the remaining ring gathers of k/v become the ring loop with an fp32 log-sum-exp merge
  ];
}

interface CompileForMeshOptions {
  /** The module already went through the default pipeline (fusion): skip it. */
  readonly prepared?: boolean;
  /** Verify the IR (with the SPMD placement rule) around every pass (default true). */
  readonly verify?: boolean;
  readonly report?: PassReport;
  /**
   * Split the image rows of a convolutional decoder over the mesh's ring axis (rows-parallel/pass.ts)
   * instead of the token axis (placements on the types, checked by the SPMD verifier like the others).
   */
  readonly rowsParallel?: boolean;
  /** `--comm-dtype fp8`: the attention payloads move as e4m3 (quantize-comm-fp8, after the context-parallel passes). */
  readonly commDtype?: 'fp8';
}

/** Compiles `m` for `mesh`: default pipeline (unless prepared), then the context-parallel (or rows-parallel) passes. */
export function compileForMesh(m: Module, mesh: Mesh, opts: CompileForMeshOptions = {}): Module {
  const verify = opts.verify ?? true;
  const rows = opts.rowsParallel === true;
  const ctx = createPassContext({
    options: { mesh },
    verify, // ir's verify: placements and collectives declared, so the SPMD rule applies
    ...(opts.report ? { report: opts.report } : {}),
  });
  const fp8 = opts.commDtype === 'fp8' ? [quantizeCommFp8Pass] : [];
  const passes = [...(opts.prepared ? [] : defaultPipeline()), ...(rows ? rowsParallelPipeline() : [...contextParallelPipeline(), ...fp8])];
  return runPipeline(m, passes, ctx);
}

interface CollectiveStat {
  readonly op: string;
  readonly count: number;
  /** Bytes each rank receives for these collectives in one forward pass (one denoising step); the busiest rank's when they differ. */
  readonly bytesPerRank: number;
  /**
   * With a mesh: bytes received by each world rank. They differ for non-cyclic ppermutes (the
   * rows-parallel halos), where the member with no source on that side receives nothing.
   */
  readonly bytesByRank?: readonly number[];
}

/**
 * Bytes one rank receives for a collective over a group of n ranks, from its local operand of b
 * bytes: all_gather (n-1)b; all_to_all (n-1)/n b (it keeps its own part); ppermute b, except that
 * member i of a non-cyclic one (cyclic=0) receives nothing when i - shift lies outside the group
 * (it fills zeros); all_reduce 2(n-1)/n b (ring reduce-scatter + all-gather). Local ops move
 * nothing. `member`: the rank's index in its group (undefined: the busiest member).
 */
function bytesReceived(n: Node, member?: number): number {
  const x = n.inputs[0];
  if (!x) return 0;
  const shape = x.shape.map((d) => (typeof d === 'number' ? d : NaN));
  const b = numel(shape) * byteSize(x.dtype);
  const g = collectiveGroupOf(n).groupSize;
  switch (n.op) {
    case 'all_gather':
      return (g - 1) * b;
    case 'all_to_all':
      return ((g - 1) / g) * b;
    case 'ppermute': {
      const from = member === undefined ? 0 : member - (n.attrs['shift']?.kind === 'int' ? n.attrs['shift'].value : 0);
      const cyclic = n.attrs['cyclic']?.kind !== 'int' || n.attrs['cyclic'].value !== 0;
      return cyclic || (from >= 0 && from < g) ? b : 0;
    }
    case 'all_reduce':
      return (2 * (g - 1) * b) / g;
    default:
      return 0;
  }
}

const COMMUNICATING = opsWith('communicating');

/** Count and per-rank received bytes of each communicating collective, by op name (per world rank too, given the mesh). */
export function collectiveSummary(m: Module, mesh?: Mesh): CollectiveStat[] {
  const world = mesh ? worldSize(mesh) : 0;
  const stats = new Map<string, { count: number; bytes: number; byRank: number[] }>();
  const visit = (nodes: readonly Node[]): void => {
    for (const n of nodes) {
      for (const sg of n.subgraphs()) visit(sg.nodes);
      if (!COMMUNICATING.has(n.op)) continue;
      const s = stats.get(n.op) ?? { count: 0, bytes: 0, byRank: new Array<number>(world).fill(0) };
      s.count++;
      s.bytes += bytesReceived(n);
      if (mesh) {
        const axis = collectiveGroupOf(n).meshAxis as MeshAxis;
        for (let r = 0; r < world; r++) s.byRank[r]! += bytesReceived(n, axisIndex(mesh, axis, r));
      }
      stats.set(n.op, s);
    }
  };
  visit(m.graph.nodes);
  return [...stats.entries()]
    .sort((a, b) => a[0].localeCompare(b[0]))
    .map(([op, s]) => {
      if (!mesh) return { op, count: s.count, bytesPerRank: Math.round(s.bytes) };
      const byRank = s.byRank.map(Math.round);
      return { op, count: s.count, bytesPerRank: Math.max(...byRank), bytesByRank: byRank };
    });
}

/**
 * `inspect --comm-dtype fp8 --json`: the bytes each rank receives per step without and with
 * quantize-comm-fp8, in the step module's dtypes (an fp32 export: 4 bytes before; the plan's
 * bf16 payloads are 2), and the payload collectives it rewrote.
 */
export function commFp8Inspection(before: Module, after: Module): { dtype: 'fp8'; payloads: number; bytesPerRankBefore: number; bytesPerRankAfter: number } {
  const total = (m: Module): number => collectiveSummary(m).reduce((a, c) => a + c.bytesPerRank, 0);
  return { dtype: 'fp8', payloads: findCommFp8Sites(before).length, bytesPerRankBefore: total(before), bytesPerRankAfter: total(after) };
}

/** For `paradit check DIR --ulysses U --ring R --cfg C` (or `--rows-parallel W`): compile for the mesh, run every rank simulated. */
export function simulatedExecutor(mesh: Mesh, opts: CompileForMeshOptions = {}): (m: Module, inputs: readonly Tensor[]) => Tensor[] {
  return (m, inputs) => runSimulated(compileForMesh(m, mesh, opts), mesh, inputs);
}

/** The fields `paradit inspect --ulysses U --ring R --cfg C --json` adds, for an already compiled module. */
export function meshInspection(compiled: Module, mesh: Mesh): { world: number; mesh: { cfg: number; ring: number; ulysses: number }; collectives: CollectiveStat[] } {
  return { world: worldSize(mesh), mesh: { cfg: mesh.cfg, ring: mesh.ring, ulysses: mesh.ulysses }, collectives: collectiveSummary(compiled, mesh) };
}

export { runSimulated, simulateRanks };
