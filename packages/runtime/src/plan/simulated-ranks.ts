/**
 * A sharded plan on simulated ranks: W CPU-backend ranks in this process (sharing one weights
 * space), stepping concurrently and meeting at every collective (distributed/rendezvous.ts), where the
 * exchange is computed by collectives.ts. Every rank gets the full inputs (the plan's shard_slice
 * instructions take each rank's part); the outputs must come out identical on every rank (the
 * plan gathers them), which is checked, and rank 0's are returned. What CI runs for every sharded
 * plan without a GPU.
 */
import { IrError, formatMesh, groupsOf, worldSize } from '@paradit/ir';
import type { Mesh, Tensor } from '@paradit/ir';
import type { StepExecutor } from '../denoise/step-executor';
import { CpuPlanBackend, planMesh, readWeightsSpace } from './cpu-backend';
import type { CpuBackendOptions } from './cpu-backend';
import type { CollectiveRequest } from './collectives';
import { collectiveOverGroup } from './collectives';
import { Rendezvous, runRanks } from '../distributed/rendezvous';
import type { LoadedPlan } from './load';
import type { Plan } from './schema';

/** The exchange of one collective among all ranks of the world, group by group. */
export function exchangeAll(mesh: Mesh, reqs: readonly CollectiveRequest[]): void {
  const instr = reqs[0]!.instr;
  for (const g of groupsOf(mesh, instr.meshAxis)) {
    const recvs = collectiveOverGroup(instr, g.map((r) => reqs[r]!.send), reqs[0]!.dtype, reqs[g[0]!]!.recv.byteLength);
    g.forEach((r, i) => reqs[r]!.recv.set(recvs[i]!));
  }
}

export class SimulatedPlanRanks implements StepExecutor {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly blocks?: { readonly total: number; readonly skippedWhenCached: number };
  readonly plan: Plan;
  readonly mesh: Mesh;
  readonly ranks: readonly CpuPlanBackend[];
  private readonly group: Rendezvous<CollectiveRequest>;

  constructor(loaded: LoadedPlan, opts: CpuBackendOptions = {}) {
    this.plan = loaded.plan;
    this.mesh = planMesh(this.plan);
    const W = worldSize(this.mesh);
    this.group = new Rendezvous<CollectiveRequest>(W, (reqs) => exchangeAll(this.mesh, reqs));
    const weights = readWeightsSpace(loaded);
    this.ranks = Array.from({ length: W }, (_, rank) => new CpuPlanBackend(loaded, { ...opts, rank, weights, collectives: (req) => this.group.arrive(rank, req.where, req) }));
    const r0 = this.ranks[0]!;
    this.inputNames = r0.inputNames;
    this.outputNames = r0.outputNames;
    if (r0.blocks) this.blocks = r0.blocks;
  }

  resetState(): void {
    for (const r of this.ranks) r.resetState();
  }

  async step(inputs: ReadonlyMap<string, Tensor>): Promise<Map<string, Tensor>> {
    const outs = await runRanks(this.group as Rendezvous<unknown>, this.ranks.length, (rank) => this.ranks[rank]!.step(inputs));
    checkReplicated(outs, this.mesh);
    return outs[0]!;
  }
}

/** Every rank must return the same bytes for every output (a plan gathers its outputs). */
export function checkReplicated(outs: readonly Map<string, Tensor>[], mesh: Mesh): void {
  const first = outs[0]!;
  outs.forEach((o, rank) => {
    for (const [name, t] of first) {
      const u = o.get(name)!;
      const same = u.dtype === t.dtype && u.size === t.size && u.data.every((x, i) => Object.is(x, t.data[i]) || x === t.data[i]);
      if (!same) throw new IrError('E_RUNTIME', `ranks 0 and ${rank} of mesh ${formatMesh(mesh)} computed different values for output '${name}'; the plan must gather it`);
    }
  });
}
