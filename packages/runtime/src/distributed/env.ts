/**
 * Which launcher started this process, read from its environment: torchrun (RANK, WORLD_SIZE,
 * LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), Slurm's srun (SLURM_PROCID,
 * SLURM_NTASKS, SLURM_LOCALID, the host lists), Open MPI's mpirun (OMPI_COMM_WORLD_*), PMI
 * (PMI_RANK, PMI_SIZE; MPICH/Intel MPI's hydra) and `paradit launch` (PARADIT_*). Launchers nest
 * (`srun torchrun ...`, `paradit launch` inside an allocation): the innermost one names this
 * process's rank, in the order paradit > torchrun > Open MPI > PMI > Slurm.
 *
 * Addresses. NCCL bootstraps from NCCL_COMM_ID=host:port (the user's when set) and the control
 * channel (control-channel.ts) listens on its own port; both are derived from a base port that is
 * never bound itself, because torchrun's agent serves its store on MASTER_PORT:
 *   NCCL_COMM_ID = host:(base+1), control = host:(base+2)
 * base is MASTER_PORT (PARADIT_MASTER_PORT), else, under Slurm and Open MPI, a port derived from
 * the job id. PARADIT_CONTROL_ADDR=host:port overrides the control address.
 *
 * Half-set or contradictory variables (RANK without WORLD_SIZE, a rank outside the world, a
 * non-integer, two launchers that disagree on this process's rank in a world of the same size)
 * are IrError E_INPUT naming the variables.
 */
import { IrError } from '@paradit/ir';
import type { LaunchEnv, LauncherName } from './types';
import { firstNode } from './nodelist';

type Environment = Readonly<Record<string, string | undefined>>;

/** Offsets from the base port: never the base itself (torchrun's store). */
const NCCL_PORT_OFFSET = 1;
const CONTROL_PORT_OFFSET = 2;

/** Rank and world as one launcher states them, before addresses are derived. */
interface RankSource {
  readonly launcher: LauncherName;
  readonly rank: number;
  readonly world: number;
  readonly localRank: number | undefined;
  readonly localWorld: number | undefined;
  readonly describe: string;
  /** The launcher set this to name its own ranks (an elastic agent, paradit launch): outer launchers' ranks may differ. */
  readonly assigns?: boolean;
}

function fail(message: string): never {
  throw new IrError('E_INPUT', message);
}

function intVar(env: Environment, name: string, min: number): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(Number(v)) || Number(v) < min) {
    fail(`${name}='${v}' is not a whole number >= ${min}; check the launcher's arguments, or what a wrapper script exported`);
  }
  return Number(v);
}

/** A (rank, world) pair of variables: both or neither. */
function pair(env: Environment, rankVar: string, worldVar: string, launcher: string): { rank: number; world: number } | undefined {
  const rank = intVar(env, rankVar, 0);
  const world = intVar(env, worldVar, 1);
  if (rank === undefined && world === undefined) return undefined;
  if (rank === undefined) fail(`${worldVar}=${world} is set but ${rankVar} is not (${launcher} sets both); set ${rankVar} to this process's rank, 0..${world! - 1}`);
  if (world === undefined) fail(`${rankVar}=${rank} is set but ${worldVar} is not (${launcher} sets both); set ${worldVar} to the number of ranks`);
  if (rank >= world) fail(`${rankVar}=${rank} is not below ${worldVar}=${world}: ranks run 0..${world - 1}; check the launcher's arguments`);
  return { rank, world };
}

function localPair(env: Environment, rankVar: string, worldVar: string, rank: number): { localRank: number | undefined; localWorld: number | undefined } {
  const localRank = intVar(env, rankVar, 0);
  const localWorld = intVar(env, worldVar, 1);
  if (localRank !== undefined && localWorld !== undefined && localRank >= localWorld) {
    fail(`${rankVar}=${localRank} is not below ${worldVar}=${localWorld}; check the launcher's arguments`);
  }
  if (localRank !== undefined && localRank > rank) fail(`${rankVar}=${localRank} is larger than the global rank ${rank}; a local rank counts the ranks of one host`);
  return { localRank, localWorld };
}

function describe(env: Environment, launcher: string, names: readonly string[]): string {
  return `${launcher}: ${names.filter((n) => env[n] !== undefined && env[n] !== '').map((n) => `${n}=${env[n]}`).join(' ')}`;
}

/** Every launcher whose variables are present, innermost first. */
function sources(env: Environment): RankSource[] {
  const out: RankSource[] = [];
  const p = pair(env, 'PARADIT_RANK', 'PARADIT_WORLD_SIZE', 'paradit launch');
  if (p) {
    const l = localPair(env, 'PARADIT_LOCAL_RANK', 'PARADIT_LOCAL_WORLD_SIZE', p.rank);
    out.push({ launcher: 'paradit', ...p, ...l, describe: describe(env, 'paradit launch', ['PARADIT_RANK', 'PARADIT_WORLD_SIZE']), assigns: true });
  }
  const t = pair(env, 'RANK', 'WORLD_SIZE', 'torchrun');
  if (t) {
    const l = localPair(env, 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', t.rank);
    out.push({ launcher: 'torchrun', ...t, ...l, describe: describe(env, 'torchrun', ['RANK', 'WORLD_SIZE']), assigns: env['TORCHELASTIC_RUN_ID'] !== undefined });
  }
  const o = pair(env, 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'Open MPI');
  if (o) {
    const l = localPair(env, 'OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_LOCAL_SIZE', o.rank);
    out.push({ launcher: 'openmpi', ...o, ...l, describe: describe(env, 'Open MPI', ['OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE']) });
  }
  const m = pair(env, 'PMI_RANK', 'PMI_SIZE', 'PMI');
  if (m) {
    const l = localPair(env, 'MPI_LOCALRANKID', 'MPI_LOCALNRANKS', m.rank);
    out.push({ launcher: 'pmi', ...m, ...l, describe: describe(env, 'PMI', ['PMI_RANK', 'PMI_SIZE']) });
  }
  const sWorldVar = env['SLURM_STEP_NUM_TASKS'] !== undefined && env['SLURM_NTASKS'] === undefined ? 'SLURM_STEP_NUM_TASKS' : 'SLURM_NTASKS';
  const s = pair(env, 'SLURM_PROCID', sWorldVar, 'srun');
  if (s) {
    const localRank = intVar(env, 'SLURM_LOCALID', 0);
    const perNode = intVar(env, 'SLURM_NTASKS_PER_NODE', 1);
    if (localRank !== undefined && localRank > s.rank) fail(`SLURM_LOCALID=${localRank} is larger than SLURM_PROCID=${s.rank}; a local id counts the tasks of one node`);
    out.push({ launcher: 'slurm', ...s, localRank, localWorld: perNode, describe: describe(env, 'srun', ['SLURM_PROCID', sWorldVar]) });
  }
  return out;
}

/** host:port, or IPv6 [addr]:port. */
function parseHostPort(s: string, what: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:\s]+):(\d+)$/.exec(s.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) fail(`${what}='${s}' is not host:port (port 1..65535), e.g. 10.0.0.1:29600`);
  return { host: m[1]!, port };
}

function portVar(env: Environment, name: string): number | undefined {
  const p = intVar(env, name, 1);
  if (p !== undefined && p + CONTROL_PORT_OFFSET > 65535) fail(`${name}=${p} leaves no room for the derived ports ${name}+1 (NCCL) and ${name}+2 (control channel); use a port below ${65535 - CONTROL_PORT_OFFSET}`);
  return p;
}

/** A base port from a job id (20000..59996, a multiple of 4 so that jobs do not overlap). */
export function portFromJobId(id: string): number {
  let h = 0;
  if (/^\d+$/.test(id)) h = Number(BigInt(id) % 10000n);
  else {
    for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    h %= 10000;
  }
  return 20000 + h * 4;
}

interface Base {
  readonly host: string | undefined;
  readonly port: number | undefined;
  /** What to set when they are missing, for the error message. */
  readonly hint: string;
}

function baseAddress(env: Environment, src: RankSource): Base {
  const masterAddr = env['MASTER_ADDR'] || undefined;
  const masterPort = portVar(env, 'MASTER_PORT');
  switch (src.launcher) {
    case 'paradit':
      return { host: env['PARADIT_MASTER_ADDR'] || masterAddr, port: portVar(env, 'PARADIT_MASTER_PORT') ?? masterPort, hint: 'PARADIT_MASTER_ADDR and PARADIT_MASTER_PORT (paradit launch sets them)' };
    case 'torchrun':
      return { host: masterAddr, port: masterPort, hint: 'MASTER_ADDR and MASTER_PORT (torchrun sets them)' };
    case 'slurm': {
      const list = env['SLURM_STEP_NODELIST'] ? ['SLURM_STEP_NODELIST', env['SLURM_STEP_NODELIST']] : env['SLURM_JOB_NODELIST'] ? ['SLURM_JOB_NODELIST', env['SLURM_JOB_NODELIST']] : env['SLURM_NODELIST'] ? ['SLURM_NODELIST', env['SLURM_NODELIST']] : undefined;
      const host = masterAddr ?? (list ? firstNode(list[1]!, list[0]) : undefined) ?? (env['SLURM_LAUNCH_NODE_IPADDR'] || undefined);
      const job = env['SLURM_JOB_ID'] || env['SLURM_JOBID'];
      return { host, port: masterPort ?? (job ? portFromJobId(job) : undefined), hint: 'MASTER_ADDR (rank 0\'s host) and MASTER_PORT, or run under srun, which sets SLURM_STEP_NODELIST and SLURM_JOB_ID' };
    }
    case 'openmpi':
    case 'pmi': {
      const oneHost = src.localWorld !== undefined && src.localWorld === src.world;
      const job = env['OMPI_MCA_ess_base_jobid'] || env['OMPI_MCA_orte_ess_jobid'] || env['PMIX_NAMESPACE'] || env['PMI_JOBID'];
      const name = src.launcher === 'openmpi' ? 'mpirun -x MASTER_ADDR=<rank 0 host> -x MASTER_PORT=<port>' : 'mpiexec -genv MASTER_ADDR <rank 0 host> -genv MASTER_PORT <port>';
      return { host: masterAddr ?? (oneHost ? '127.0.0.1' : undefined), port: masterPort ?? (job ? portFromJobId(job) : undefined), hint: `MASTER_ADDR and MASTER_PORT for every rank (${name})` };
    }
    default: {
      const never: never = src.launcher;
      return fail(`unknown launcher ${String(never)}`);
    }
  }
}

/** The addresses of NCCL's bootstrap and the control channel (undefined in a world of one without any). */
function addresses(env: Environment, src: RankSource): { bootstrap: string | undefined; control: string | undefined } {
  const userComm = env['NCCL_COMM_ID'] || undefined;
  const userControl = env['PARADIT_CONTROL_ADDR'] || undefined;
  const base = baseAddress(env, src);
  const comm = userComm ? parseHostPort(userComm, 'NCCL_COMM_ID') : undefined;
  if (userControl) parseHostPort(userControl, 'PARADIT_CONTROL_ADDR');
  const host = base.host ?? comm?.host;
  const bootstrap = userComm ?? (host !== undefined && base.port !== undefined ? `${host}:${base.port + NCCL_PORT_OFFSET}` : undefined);
  let control = userControl;
  if (!control && host !== undefined) {
    if (base.port !== undefined) control = `${host}:${base.port + CONTROL_PORT_OFFSET}`;
    else if (comm) control = `${host}:${comm.port + 1}`;
  }
  if (src.world > 1 && (!bootstrap || !control)) {
    const missing = host === undefined ? 'where rank 0 runs' : 'which port to use';
    fail(`${src.describe}: nothing says ${missing}, which the ranks need to find each other; set ${base.hint}, or NCCL_COMM_ID=host:port (NCCL) and PARADIT_CONTROL_ADDR=host:port (control channel)`);
  }
  return { bootstrap, control };
}

/**
 * The launch this process is part of, or undefined when no launcher's variables are set (a plain
 * `paradit run`). Throws IrError E_INPUT on partial, malformed or contradictory variables.
 */
export function parseLaunchEnv(env: Environment = process.env): LaunchEnv | undefined {
  const all = sources(env);
  const src = all[0];
  if (!src) return undefined;
  for (const other of all.slice(1)) {
    // An outer launcher of a different size is nesting (srun starting one torchrun agent per node);
    // the same size with another rank means the variables contradict each other.
    if (!src.assigns && other.world === src.world && other.rank !== src.rank) {
      fail(
        `two launchers disagree about this process: ${src.describe} but ${other.describe}; ` +
          'start the ranks with one launcher, or unset the variables a wrapper script exported by hand',
      );
    }
  }
  const { bootstrap, control } = addresses(env, src);
  const localRank = src.localRank ?? intVar(env, 'LOCAL_RANK', 0) ?? (src.world === 1 ? 0 : src.rank);
  return {
    launcher: src.launcher,
    rank: src.rank,
    world: src.world,
    localRank,
    localWorld: src.localWorld,
    bootstrap,
    control,
    describe: src.describe,
  };
}

/** The control channel's address of a launch (PARADIT_CONTROL_ADDR, or the bootstrap's host at the next port). */
export function controlAddress(env: LaunchEnv): { host: string; port: number } | undefined {
  if (env.control) return parseHostPort(env.control, 'the control address');
  if (!env.bootstrap) return undefined;
  const b = parseHostPort(env.bootstrap, 'NCCL_COMM_ID');
  return { host: b.host, port: b.port + 1 };
}

/** "[rank 1] " for a launched world of several ranks, "" otherwise. */
export function rankPrefix(env: LaunchEnv | undefined): string {
  return env && env.world > 1 ? `[rank ${env.rank}] ` : '';
}
