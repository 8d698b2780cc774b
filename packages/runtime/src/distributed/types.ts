/**
 * What a process that is one rank of a launched job knows about the job, and how it watches its
 * peers: the contract between the launcher-environment parser (env.ts), the CPU transport
 * (tcp-collectives.ts), the CUDA backend's NCCL communicator and the CLI.
 */
import type { CollectiveRequest } from '../plan/collectives';

/** Which launcher started this process (the environment variables it read). */
export type LauncherName = 'torchrun' | 'slurm' | 'openmpi' | 'pmi' | 'paradit';

export interface LaunchEnv {
  readonly launcher: LauncherName;
  /** Global rank, 0..world-1. */
  readonly rank: number;
  readonly world: number;
  /** Rank on this host: the GPU it uses (CUDA_VISIBLE_DEVICES applies on top). */
  readonly localRank: number;
  /** Ranks on this host, when the launcher says. */
  readonly localWorld: number | undefined;
  /**
   * host:port that NCCL (NCCL_COMM_ID) and the CPU transport bootstrap from: the user's
   * NCCL_COMM_ID when set, else derived from the launcher (never MASTER_PORT itself: torchrun's
   * store serves there). Undefined when nothing says where rank 0 is.
   */
  readonly bootstrap: string | undefined;
  /**
   * host:port of the control channel (distributed/control-channel.ts: failure news, the world
   * check, barriers, the CPU backend's collectives): PARADIT_CONTROL_ADDR, else derived like the
   * bootstrap at the next port. Absent: the bootstrap's host at its port + 1.
   */
  readonly control?: string;
  /** Human-readable source of rank/world, for messages ("torchrun: RANK=1 WORLD_SIZE=2"). */
  readonly describe: string;
}

/** How a rank notices that a peer failed, and tells the peers when it fails itself. */
export interface RankWatch {
  /** Longest wait for a collective or the communicator set-up before giving up, in ms. */
  readonly timeoutMs: number;
  /** A message when another rank reported a failure or died (polled while waiting), else undefined. */
  peerFailure(): string | undefined;
  /** Records this rank's failure for the peers (best effort, never throws). */
  reportFailure(message: string): void;
}

/** Given to openPlan when this process is one rank of a launched job. */
export interface DistOptions {
  readonly env: LaunchEnv;
  readonly watch: RankWatch;
  /**
   * CPU backend: performs this rank's collectives with the other processes (the control
   * channel's TCP transport, tcp-collectives.ts). Unused by CUDA (NCCL).
   */
  readonly transport?: (req: CollectiveRequest) => Promise<void>;
}

/** A peer failed, this rank timed out waiting, or a stop signal arrived: exit non-zero with `message`. */
export class RankFailure extends Error {
  constructor(
    message: string,
    /** The rank that failed first, when known. */
    readonly failedRank?: number,
  ) {
    super(message);
    this.name = 'RankFailure';
  }
}
