/**
 * The launcher environment -> LaunchEnv (distributed/env.ts) for every launcher, its derived
 * addresses (never MASTER_PORT itself: torchrun's store listens there), Slurm host lists, nesting,
 * and the exit-2 refusals of partial, malformed and contradictory variables.
 */
import { IrError } from '@paradit/ir';
import { controlAddress, parseLaunchEnv, portFromJobId, rankPrefix } from '../src/distributed/env';
import { expandNodeList, firstNode } from '../src/distributed/nodelist';

const refuse = (env: Record<string, string>): string => {
  try {
    parseLaunchEnv(env);
  } catch (e) {
    expect(e).toBeInstanceOf(IrError);
    expect((e as IrError).code).toBe('E_INPUT');
    return (e as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(env)} to be refused`);
};

describe('parseLaunchEnv', () => {
  it('is undefined without a launcher', () => {
    expect(parseLaunchEnv({ PATH: '/bin', HOME: '/root' })).toBeUndefined();
  });

  it('torchrun: rank, world, local rank; NCCL at MASTER_PORT+1, control at +2', () => {
    const e = parseLaunchEnv({ RANK: '3', WORLD_SIZE: '8', LOCAL_RANK: '3', LOCAL_WORLD_SIZE: '4', MASTER_ADDR: 'node7', MASTER_PORT: '29500', TORCHELASTIC_RUN_ID: 'x' })!;
    expect(e).toEqual({ launcher: 'torchrun', rank: 3, world: 8, localRank: 3, localWorld: 4, bootstrap: 'node7:29501', control: 'node7:29502', describe: 'torchrun: RANK=3 WORLD_SIZE=8' });
    expect(controlAddress(e)).toEqual({ host: 'node7', port: 29502 });
    expect(rankPrefix(e)).toBe('[rank 3] ');
  });

  it("keeps the user's NCCL_COMM_ID (control still derived from MASTER_PORT)", () => {
    const e = parseLaunchEnv({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500', NCCL_COMM_ID: '10.0.0.1:41000' })!;
    expect([e.bootstrap, e.control]).toEqual(['10.0.0.1:41000', '10.0.0.1:29502']);
    const f = parseLaunchEnv({ RANK: '0', WORLD_SIZE: '2', NCCL_COMM_ID: '10.0.0.9:41000' })!;
    expect([f.bootstrap, f.control]).toEqual(['10.0.0.9:41000', '10.0.0.9:41001']);
    const g = parseLaunchEnv({ RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '100', PARADIT_CONTROL_ADDR: 'h:7000' })!;
    expect(g.control).toBe('h:7000');
  });

  it('world of one needs no address; LOCAL_RANK defaults to 0', () => {
    expect(parseLaunchEnv({ RANK: '0', WORLD_SIZE: '1' })).toMatchObject({ world: 1, localRank: 0, bootstrap: undefined, control: undefined });
  });

  it('Slurm: SLURM_PROCID/NTASKS/LOCALID, rank 0 on the first host of the step, port from the job id', () => {
    const e = parseLaunchEnv({ SLURM_PROCID: '5', SLURM_NTASKS: '8', SLURM_LOCALID: '1', SLURM_NTASKS_PER_NODE: '4', SLURM_JOB_ID: '123456', SLURM_STEP_NODELIST: 'gpu[07-08]', SLURM_NODELIST: 'gpu[01-08]' })!;
    const base = 20000 + (123456 % 10000) * 4;
    expect(base).toBe(portFromJobId('123456'));
    expect(e).toEqual({ launcher: 'slurm', rank: 5, world: 8, localRank: 1, localWorld: 4, bootstrap: `gpu07:${base + 1}`, control: `gpu07:${base + 2}`, describe: 'srun: SLURM_PROCID=5 SLURM_NTASKS=8' });
    // Without a step list: the job's list, then the launch node's address; MASTER_* win.
    expect(parseLaunchEnv({ SLURM_PROCID: '0', SLURM_NTASKS: '2', SLURM_JOB_ID: '7', SLURM_NODELIST: 'a-[3,5]' })!.bootstrap).toBe(`a-3:${20000 + 7 * 4 + 1}`);
    expect(parseLaunchEnv({ SLURM_PROCID: '0', SLURM_NTASKS: '2', SLURM_JOB_ID: '7', SLURM_LAUNCH_NODE_IPADDR: '10.1.1.1' })!.bootstrap).toBe(`10.1.1.1:${20000 + 7 * 4 + 1}`);
    expect(parseLaunchEnv({ SLURM_PROCID: '0', SLURM_NTASKS: '2', SLURM_JOB_ID: '7', SLURM_NODELIST: 'n1', MASTER_ADDR: 'm', MASTER_PORT: '4000' })!.control).toBe('m:4002');
  });

  it('Open MPI and PMI: one host means 127.0.0.1; several need MASTER_ADDR', () => {
    const o = parseLaunchEnv({ OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_LOCAL_RANK: '1', OMPI_COMM_WORLD_LOCAL_SIZE: '2', MASTER_PORT: '5000' })!;
    expect(o).toMatchObject({ launcher: 'openmpi', rank: 1, world: 2, localRank: 1, localWorld: 2, bootstrap: '127.0.0.1:5001', control: '127.0.0.1:5002' });
    expect(parseLaunchEnv({ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_LOCAL_SIZE: '2', OMPI_MCA_ess_base_jobid: '42' })!.bootstrap).toBe(`127.0.0.1:${20000 + 42 * 4 + 1}`);
    expect(refuse({ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_LOCAL_SIZE: '2', MASTER_PORT: '5000' })).toMatch(/nothing says where rank 0 runs.*MASTER_ADDR and MASTER_PORT.*mpirun -x MASTER_ADDR/);
    const p = parseLaunchEnv({ PMI_RANK: '2', PMI_SIZE: '4', MPI_LOCALRANKID: '0', MPI_LOCALNRANKS: '2', MASTER_ADDR: 'h0', MASTER_PORT: '6000' })!;
    expect(p).toMatchObject({ launcher: 'pmi', rank: 2, world: 4, localRank: 0, localWorld: 2, bootstrap: 'h0:6001', control: 'h0:6002', describe: 'PMI: PMI_RANK=2 PMI_SIZE=4' });
  });

  it("paradit launch's own variables", () => {
    const e = parseLaunchEnv({ PARADIT_RANK: '1', PARADIT_WORLD_SIZE: '2', PARADIT_LOCAL_RANK: '1', PARADIT_LOCAL_WORLD_SIZE: '2', PARADIT_MASTER_ADDR: '127.0.0.1', PARADIT_MASTER_PORT: '40000' })!;
    expect(e).toEqual({ launcher: 'paradit', rank: 1, world: 2, localRank: 1, localWorld: 2, bootstrap: '127.0.0.1:40001', control: '127.0.0.1:40002', describe: 'paradit launch: PARADIT_RANK=1 PARADIT_WORLD_SIZE=2' });
  });

  it('nesting: the innermost launcher names the rank (srun starting torchrun agents)', () => {
    const e = parseLaunchEnv({ RANK: '6', WORLD_SIZE: '8', LOCAL_RANK: '2', MASTER_ADDR: 'n1', MASTER_PORT: '29500', SLURM_PROCID: '1', SLURM_NTASKS: '2', SLURM_JOB_ID: '9' })!;
    expect([e.launcher, e.rank, e.world, e.localRank]).toEqual(['torchrun', 6, 8, 2]);
    // An elastic agent assigns its own ranks even in a world of the same size.
    expect(parseLaunchEnv({ RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: 'n1', MASTER_PORT: '29500', TORCHELASTIC_RUN_ID: 'j', SLURM_PROCID: '0', SLURM_NTASKS: '2' })!.rank).toBe(1);
  });

  it('refuses partial, malformed and contradictory variables, naming them', () => {
    expect(refuse({ RANK: '1' })).toMatch(/RANK=1 is set but WORLD_SIZE is not/);
    expect(refuse({ WORLD_SIZE: '2' })).toMatch(/WORLD_SIZE=2 is set but RANK is not.*0\.\.1/);
    expect(refuse({ RANK: '2', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '1' })).toMatch(/RANK=2 is not below WORLD_SIZE=2/);
    expect(refuse({ RANK: 'one', WORLD_SIZE: '2' })).toMatch(/RANK='one' is not a whole number >= 0/);
    expect(refuse({ RANK: '0', WORLD_SIZE: '0' })).toMatch(/WORLD_SIZE='0' is not a whole number >= 1/);
    expect(refuse({ RANK: '0', WORLD_SIZE: '2', LOCAL_RANK: '3', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '9' })).toMatch(/LOCAL_RANK=3 is not below LOCAL_WORLD_SIZE=2/);
    expect(refuse({ SLURM_PROCID: '3' })).toMatch(/SLURM_PROCID=3 is set but SLURM_NTASKS is not/);
    expect(refuse({ RANK: '0', WORLD_SIZE: '2' })).toMatch(/torchrun: RANK=0 WORLD_SIZE=2: nothing says where rank 0 runs.*MASTER_ADDR and MASTER_PORT/);
    expect(refuse({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'h' })).toMatch(/nothing says which port to use/);
    expect(refuse({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '65534' })).toMatch(/MASTER_PORT=65534 leaves no room/);
    expect(refuse({ RANK: '0', WORLD_SIZE: '2', NCCL_COMM_ID: 'nohost' })).toMatch(/NCCL_COMM_ID='nohost' is not host:port/);
    expect(refuse({ RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: 'h', MASTER_PORT: '9', OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2' })).toMatch(
      /two launchers disagree about this process: torchrun: RANK=1 WORLD_SIZE=2 but Open MPI: OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=2/,
    );
    expect(refuse({ SLURM_PROCID: '0', SLURM_NTASKS: '2', SLURM_JOB_ID: '1', SLURM_STEP_NODELIST: 'n[1-' })).toMatch(/SLURM_STEP_NODELIST='n\[1-' is not a Slurm host list/);
  });
});

describe('Slurm host lists', () => {
  it('expands the compact form', () => {
    expect(expandNodeList('node[01-04,07]')).toEqual(['node01', 'node02', 'node03', 'node04', 'node07']);
    expect(expandNodeList('a1,b[9-11],c')).toEqual(['a1', 'b9', 'b10', 'b11', 'c']);
    expect(expandNodeList('r[1-2]-n[08-09]')).toEqual(['r1-n08', 'r1-n09', 'r2-n08', 'r2-n09']);
    expect(firstNode('gpu-a[003-010],gpu-b1')).toBe('gpu-a003');
  });

  it('refuses malformed lists', () => {
    expect(() => expandNodeList('n[4-2]')).toThrow(/range 4-2 runs backwards/);
    expect(() => expandNodeList('n[x]')).toThrow(/'x' inside brackets/);
    expect(() => expandNodeList('n]1[')).toThrow(/without '\['/);
    expect(() => expandNodeList('')).toThrow(/names no host/);
  });
});
