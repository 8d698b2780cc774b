/**
 * Opens a plan directory as a StepExecutor on the chosen backend. The CUDA backend is imported
 * lazily, so the CPU path never loads koffi or needs a GPU. CUDA: with `dist`, this process is one
 * NCCL rank on GPU env.localRank; without it, a sharded plan runs every rank on one GPU in this
 * process (InProcessCudaRanks), and a plan for one GPU runs as today.
 */
import type { StepExecutor } from '../denoise/step-executor';
import { IrError, worldSize } from '@paradit/ir';
import { CpuPlanBackend, planMesh } from './cpu-backend';
import { SimulatedPlanRanks } from './simulated-ranks';
import type { CpuBackendOptions } from './cpu-backend';
import { loadPlan } from './load';
import type { LoadedPlan } from './load';
import type { DistOptions, LaunchEnv } from '../distributed/types';
import type { Plan } from './schema';

type PlanBackendName = 'cpu' | 'cuda';

export interface OpenPlanOptions extends CpuBackendOptions {
  readonly backend?: PlanBackendName;
  readonly verifyWeights?: boolean;
  readonly log?: (line: string) => void;
  /**
   * This process is one rank of a launched job (torchrun, srun, mpirun, paradit launch): run that
   * rank only, talking to the others (CPU: the TCP transport; CUDA: NCCL). Absent: every rank of
   * the plan's mesh runs in this process (CPU: SimulatedPlanRanks; CUDA: W ranks on one GPU).
   */
  readonly dist?: DistOptions;
  /** CUDA: go through NCCL even in a world of one (measures the NCCL path on a single-GPU plan). */
  readonly nccl?: boolean;
  /** CUDA: capture the step as a CUDA graph (default true; in-process ranks always run eagerly). */
  readonly graphs?: boolean;
}

export interface OpenedPlan {
  readonly loaded: LoadedPlan;
  readonly executor: StepExecutor;
  /** CUDA only: median step time over `steps` replays after warm-up. */
  readonly bench?: (steps: number) => { medianMs: number; minMs: number; maxMs: number; mode: string };
  dispose(): void;
}

export async function openPlan(dir: string, opts: OpenPlanOptions = {}): Promise<OpenedPlan> {
  const backend = opts.backend ?? 'cpu';
  // The CUDA backend hashes weights.bin while it uploads it: read 2.5 GB once, not twice.
  const loaded = loadPlan(dir, { backend, verifyWeights: backend === 'cpu' ? opts.verifyWeights : false });
  if (opts.dist) checkLaunchedWorld(loaded.plan, opts.dist.env, dir);
  if (backend === 'cpu') {
    if (opts.dist) {
      // One rank of a launched job: its collectives go to the other processes.
      const { env, transport } = opts.dist;
      if (env.world > 1 && !transport) throw new IrError('E_RUNTIME', `rank ${env.rank}: a launched CPU rank needs a collective transport (DistOptions.transport)`);
      const executor = new CpuPlanBackend(loaded, { ...opts, rank: env.rank, ...(transport ? { collectives: transport } : {}) });
      return { loaded, executor, dispose: () => undefined };
    }
    // A sharded plan without a launcher: every rank of its mesh, simulated in this process.
    const executor = worldSize(planMesh(loaded.plan)) > 1 ? new SimulatedPlanRanks(loaded, opts) : new CpuPlanBackend(loaded, opts);
    return { loaded, executor, dispose: () => undefined };
  }
  const verifyWeights = opts.verifyWeights !== false;
  const m = loaded.plan.target.mesh;
  if (!opts.dist && !opts.nccl && m.cfg * m.ring * m.ulysses > 1) {
    const { InProcessCudaRanks } = await import('../cuda/in-process');
    const ranks = new InProcessCudaRanks(loaded, { verifyWeights, log: opts.log });
    return { loaded, executor: ranks, dispose: () => ranks.dispose() };
  }
  const { CudaBackend } = await import('../cuda/backend');
  const cuda = new CudaBackend(loaded, { verifyWeights, log: opts.log, dist: opts.dist, nccl: opts.nccl, graphs: opts.graphs });
  return { loaded, executor: cuda, bench: (steps) => cuda.bench(steps), dispose: () => cuda.dispose() };
}

/** A plan runs on exactly the ranks of its mesh: refuse a launch of another size, saying both. */
export function checkLaunchedWorld(plan: Plan, env: LaunchEnv, dir = 'the plan'): void {
  const m = plan.target.mesh;
  const W = worldSize(planMesh(plan));
  if (W === env.world) return;
  throw new IrError(
    'E_INPUT',
    `${dir}: the plan was compiled for mesh u${m.ulysses} r${m.ring} c${m.cfg} = ${W} rank${W > 1 ? 's' : ''}, but the launched world is ${env.world} (${env.describe}); ` +
      `start ${W} rank${W > 1 ? 's' : ''} (e.g. \`paradit launch --nproc ${W} -- run ...\`, torchrun --nproc_per_node=${W}), or recompile for a mesh of ${env.world} ranks`,
  );
}
