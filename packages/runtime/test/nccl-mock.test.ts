/**
 * NcclCommunicator and the koffi NCCL bindings against a stand-in libnccl (fixtures/mock-nccl.c,
 * compiled here with gcc) that moves bytes in host memory among the ranks of this process: the
 * by-value ncclUniqueId and the ncclConfig_t reach C as NCCL reads them, NCCL_COMM_ID is set
 * before ncclGetUniqueId, every mesh axis gets the right split, every collective of every mesh
 * of up to 8 ranks (in a sample) lands byte for byte as collectiveOverGroup says, and a rank whose
 * peer never comes times out (or stops on the peer beacon) with a RankFailure after aborting its
 * communicators. Skips with a printed reason where gcc or koffi is missing. Guards the FFI layer
 * that the GPU machine would otherwise be the first to exercise.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { axisIndex, groupsOf, makeMesh, worldSize } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import type { LaunchEnv, RankWatch } from '../src/distributed/types';
import { RankFailure } from '../src/distributed/types';
import type { CollectiveInstr, MeshAxisName } from '../src/plan/schema';
import { collectiveOverGroup } from '../src/plan/collectives';
import { PLAN_DTYPE_BYTES } from '../src/plan/bytes';
import type { Koffi } from '../src/cuda/ffi';
import { NativeBlock, koffi } from '../src/cuda/ffi';
import { Nccl } from '../src/cuda/nccl';
import { NcclCommunicator, abortAll } from '../src/cuda/communicator';
import type { CommDevice } from '../src/cuda/communicator';
import type { PreparedCollective } from '../src/cuda/prepare-comm';
import { describeCollective } from '../src/cuda/prepare-comm';
import { skipReason } from '../../../tests/skip-reason';

function buildMock(): { lib?: string; reason?: string } {
  try {
    koffi();
  } catch (e) {
    return { reason: (e as Error).message };
  }
  try {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paradit-mock-nccl-'));
    const lib = path.join(dir, 'libmocknccl.so');
    execFileSync('gcc', ['-shared', '-fPIC', '-O1', '-o', lib, path.join(__dirname, 'fixtures/mock-nccl.c')], { stdio: 'pipe' });
    return { lib };
  } catch (e) {
    return { reason: `cannot compile the mock NCCL with gcc (${(e as Error).message.split('\n')[0]})` };
  }
}

const built = buildMock();
if (built.reason) skipReason(__filename, built.reason);
const maybe = built.reason ? describe.skip : describe;

maybe('NcclCommunicator over a mock NCCL', () => {
  let k: Koffi;
  let nccl: Nccl;
  let mockLog: () => string;
  let mockReset: () => void;
  let cEnv: { set: (k: string, v: string) => number; unset: (k: string) => number };
  const savedEnv = { ...process.env };
  // jest sandboxes process.env, so variables the C side must see are set in libc's environment too.
  const setEnv = (key: string, v: string) => {
    process.env[key] = v;
    cEnv.set(key, v);
  };
  const unsetEnv = (key: string) => {
    delete process.env[key];
    cEnv.unset(key);
  };

  beforeAll(() => {
    k = koffi();
    const lib = k.load(built.lib!);
    nccl = new Nccl(lib);
    const logFn = lib.func('int mock_log(_Out_ uint8_t *out, int cap)');
    mockReset = lib.func('void mock_reset()') as () => void;
    const libc = k.load('libc.so.6');
    const set = libc.func('int setenv(const char *k, const char *v, int overwrite)');
    const unset = libc.func('int unsetenv(const char *k)');
    cEnv = { set: (key, v) => set(key, v, 1) as number, unset: (key) => unset(key) as number };
    mockLog = () => {
      const b = new Uint8Array(1 << 16);
      const n = logFn(b, b.length) as number;
      return Buffer.from(b.subarray(0, n)).toString('utf8');
    };
  });
  beforeEach(() => {
    abortAll(); // a failed test's communicators must not count in the next one
    mockReset();
    for (const v of ['NCCL_COMM_ID', 'NCCL_NVLS_ENABLE', 'NCCL_GRAPH_MIXING_SUPPORT', 'MOCK_NCCL_HANG', 'MOCK_NCCL_VERSION']) unsetEnv(v);
  });
  afterAll(() => {
    for (const v of ['NCCL_COMM_ID', 'NCCL_NVLS_ENABLE', 'NCCL_GRAPH_MIXING_SUPPORT', 'MOCK_NCCL_HANG']) cEnv.unset(v);
    for (const key of Object.keys(process.env)) if (!(key in savedEnv)) delete process.env[key];
    Object.assign(process.env, savedEnv);
  });

  /** Host "device" work: the communicator's copies are memcpys in host memory here. */
  const device = (): CommDevice => ({
    copy: (dst, src, bytes) => new Uint8Array(k.view(dst, bytes)).set(new Uint8Array(k.view(src, bytes))),
    zero: (dst, bytes) => new Uint8Array(k.view(dst, bytes)).fill(0),
    launch: () => {
      throw new Error('no kernels in the mock');
    },
  });
  const watch = (over: Partial<RankWatch> = {}): RankWatch => ({ timeoutMs: 5000, peerFailure: () => undefined, reportFailure: () => undefined, ...over });
  const envOf = (rank: number, world: number): LaunchEnv => ({ launcher: 'paradit', rank, world, localRank: rank, localWorld: world, bootstrap: '127.0.0.1:29555', describe: 'test' });
  const AXES: MeshAxisName[] = ['cfg', 'ring', 'ulysses', 'sp'];

  function world(mesh: Mesh): NcclCommunicator[] {
    const W = worldSize(mesh);
    return Array.from({ length: W }, (_, r) => new NcclCommunicator({ env: envOf(r, W), watch: watch(), mesh, axes: AXES, device: device(), nccl }));
  }

  it('passes the unique id by value and the 2.17 config; NCCL_COMM_ID is the bootstrap address; splits per axis', () => {
    const comms = world(makeMesh({ cfg: 2, ulysses: 2 }));
    const log = mockLog();
    expect(process.env['NCCL_COMM_ID']).toBe('127.0.0.1:29555');
    expect(process.env['NCCL_NVLS_ENABLE']).toBe('0');
    expect(log).not.toMatch(/bad config/);
    for (let r = 0; r < 4; r++) expect(log).toContain(`init rank=${r} n=4 id=id:127.0.0.1:29555 blocking=0`);
    // cfg and ulysses split (sp = ulysses here, sharing its communicator); ring has groups of one.
    expect(log.match(/^split /gm)!.length).toBe(8);
    expect(log).toContain('split rank=3 color=1 key=1');
    for (const c of comms) c.destroy();
    expect(mockLog()).toMatch(/finalize split\ndestroy split\nfinalize split\ndestroy split\nfinalize world\ndestroy world/);
  });

  const meshes = [makeMesh({ ulysses: 2 }), makeMesh({ ring: 2, ulysses: 2 }), makeMesh({ cfg: 2, ring: 2, ulysses: 2 }), makeMesh({ cfg: 2, ulysses: 4 }), makeMesh({ ring: 3 }), makeMesh({ cfg: 3, ulysses: 2 })];
  it.each(meshes.map((m) => [`${m.cfg}x${m.ring}x${m.ulysses}`, m] as const))('mesh %s: every collective on every axis lands as collectiveOverGroup says', (_, mesh) => {
    const comms = world(mesh);
    const W = worldSize(mesh);
    const blocks: NativeBlock[] = [];
    try {
      for (const axis of AXES) {
        const n = groupsOf(mesh, axis)[0]!.length;
        const base = { op: 'collective' as const, meshAxis: axis, groupSize: n, send: 0, recv: 1, origin: ['/x'] };
        const instrs: CollectiveInstr[] = [
          { ...base, collective: 'all_to_all' },
          { ...base, collective: 'all_gather' },
          { ...base, collective: 'send_recv', shift: 1 },
          { ...base, collective: 'send_recv', shift: 1, cyclic: false },
          { ...base, collective: 'send_recv', shift: -1, cyclic: false },
          { ...base, collective: 'all_reduce', reduce: 'sum' },
          { ...base, collective: 'all_reduce', reduce: 'max' },
          { ...base, collective: 'all_reduce', reduce: 'mean', send: 1 },
        ];
        for (const instr of instrs) {
          const elems = 3 * n;
          const sendBytes = elems * PLAN_DTYPE_BYTES.f32;
          const recvBytes = instr.collective === 'all_gather' ? n * sendBytes : sendBytes;
          const inPlace = instr.send === instr.recv;
          const sends = Array.from({ length: W }, (_, r) => new Uint8Array(Float32Array.from({ length: elems }, (_, i) => ((r * 5 + i * 3) % 7) - 3).buffer));
          const ps = sends.map((s, r) => {
            const sb = new NativeBlock(sendBytes);
            const rb = inPlace ? sb : new NativeBlock(recvBytes);
            blocks.push(sb, rb);
            sb.u8().set(s);
            const ctx = { index: '5', op: 'collective' as const, origin: instr.origin, detail: describeCollective(instr) };
            const p: PreparedCollective = { op: 'collective', ctx, instr, where: '5', send: sb.addr, recv: rb.addr, sendBytes, recvBytes, dtype: 'f32', memberIndex: axisIndex(mesh, axis, r), scratch: 0n };
            return { p, rb };
          });
          ps.forEach(({ p }, r) => comms[r]!.enqueue(p, 0n));
          for (const g of groupsOf(mesh, axis)) {
            const want = collectiveOverGroup(instr, g.map((r) => sends[r]!), 'f32', recvBytes);
            g.forEach((r, i) => expect([axis, instr.collective, instr.reduce, r, Array.from(ps[r]!.rb.u8().subarray(0, recvBytes))]).toEqual([axis, instr.collective, instr.reduce, r, Array.from(want[i]!)]));
          }
        }
      }
      expect(comms[0]!.lastCollective).toMatch(/^instruction 5: all_reduce mean over 'sp' \(\d ranks\) from ONNX node \/x$/);
      expect(mockLog()).not.toMatch(/size mismatch|unsupported/);
    } finally {
      for (const b of blocks) b.free();
      for (const c of comms) c.destroy();
    }
  });

  it('a rank whose peers never come times out after aborting, naming what it waited for', () => {
    setEnv('MOCK_NCCL_HANG', '1');
    const reported: string[] = [];
    const t0 = performance.now();
    let err: unknown;
    try {
      new NcclCommunicator({ env: envOf(0, 2), watch: watch({ timeoutMs: 300, reportFailure: (m) => void reported.push(m) }), mesh: makeMesh({ ulysses: 2 }), axes: ['ulysses'], device: device(), nccl });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RankFailure);
    expect((err as Error).message).toMatch(/^rank 0: timed out after 0\.\d s in NCCL communicator set-up \(world 2\); a peer rank failed or never started — see its log$/);
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(mockLog()).toMatch(/abort world0/);
  });

  it('stops waiting when the peer beacon reports a failure', () => {
    setEnv('MOCK_NCCL_HANG', '1');
    expect(() => new NcclCommunicator({ env: envOf(1, 2), watch: watch({ peerFailure: () => 'rank 0 exited with code 2' }), mesh: makeMesh({ cfg: 2 }), axes: ['cfg'], device: device(), nccl })).toThrow(
      /^rank 1: stopped in NCCL communicator set-up \(world 2\) because a peer failed: rank 0 exited with code 2$/,
    );
  });

  it('abortAll aborts every live communicator; enqueue afterwards fails clearly', () => {
    const comms = world(makeMesh({ ring: 2 }));
    abortAll();
    expect(comms.every((c) => c.isAborted)).toBe(true);
    expect(mockLog().match(/^abort /gm)!.length).toBe(2);
    const instr: CollectiveInstr = { op: 'collective', collective: 'send_recv', meshAxis: 'ring', groupSize: 2, shift: 1, send: 0, recv: 1, origin: [] };
    const p: PreparedCollective = { op: 'collective', ctx: { index: '2', op: 'collective', origin: [], detail: describeCollective(instr) }, instr, where: '2', send: 0n, recv: 0n, sendBytes: 4, recvBytes: 4, dtype: 'f32', memberIndex: 0, scratch: 0n };
    expect(() => comms[0]!.enqueue(p, 0n)).toThrow(/rank 0: the NCCL communicators were aborted; this rank cannot run send_recv shift 1 over 'ring' \(2 ranks\) \(instruction 2\)/);
  });

  it('keeps a user NCCL_COMM_ID and refuses a world without a bootstrap address', () => {
    setEnv('NCCL_COMM_ID', '10.1.1.1:4000');
    const [c] = [new NcclCommunicator({ env: envOf(0, 1), watch: watch(), mesh: makeMesh(), axes: [], device: device(), nccl })];
    expect(mockLog()).toContain('id=id:10.1.1.1:4000');
    c!.destroy();
    unsetEnv('NCCL_COMM_ID');
    expect(() => new NcclCommunicator({ env: { ...envOf(0, 2), bootstrap: undefined }, watch: watch(), mesh: makeMesh({ ring: 2 }), axes: ['ring'], device: device(), nccl })).toThrow(
      /nothing says where rank 0 listens \(world 2\)/,
    );
  });
});
