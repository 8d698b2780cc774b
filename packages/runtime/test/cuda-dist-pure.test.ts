/**
 * The multi-GPU CUDA runtime's pure parts (no GPU, no NCCL): the ncclConfig_t bytes, dtype and
 * op tables, environment defaults, the split colors/keys and the NCCL calls of every collective
 * for every mesh of up to 8 ranks (run through a small model of NCCL's semantics and compared
 * byte for byte with collectiveOverGroup), the in-process exchange copies, shard_slice's 2D copy,
 * the bounded wait, stream/event preparation and the mesh-mismatch refusal.
 */
import { Tensor, axisIndex, groupsOf, makeMesh, worldSize } from '@paradit/ir';
import type { Mesh } from '@paradit/ir';
import type { CollectiveInstr, MeshAxisName, PlanDType, ShardSliceInstr } from '../src/plan/schema';
import { collectiveOverGroup, shardSliceInto } from '../src/plan/collectives';
import { PLAN_DTYPE_BYTES, decodeTensor, encodeInto, encodeTensor } from '../src/plan/bytes';
import { NCCL_CONFIG_BYTES, NCCL_DTYPE, NCCL_OP, NcclCall, formatNcclVersion, ncclCallsFor, ncclConfigBytes, ncclDeviceFor, ncclEnvDefaults, ncclHasAvg, ncclVersionCode, splitColorKey } from '../src/cuda/nccl-abi';
import { exchangeScratchBytes, inProcessExchange } from '../src/cuda/exchange';
import { MEMCPY2D_BYTES, shardSliceCopy, writeMemcpy2D } from '../src/cuda/shard-slice';
import { waitBounded } from '../src/cuda/watchdog';
import { instrSync } from '../src/cuda/program';
import { allReduceScratchBytes } from '../src/cuda/prepare-comm';
import { drain } from '../src/cuda/enqueue';
import { checkPlanTarget } from '../src/cuda/target';
import { RankFailure } from '../src/distributed/types';

/** Every mesh of at most 8 ranks. */
const MESHES: Mesh[] = [];
for (let c = 1; c <= 8; c++) for (let r = 1; c * r <= 8; r++) for (let u = 1; c * r * u <= 8; u++) MESHES.push(makeMesh({ cfg: c, ring: r, ulysses: u }));
const AXES: MeshAxisName[] = ['cfg', 'ring', 'ulysses', 'sp'];
const axisSize = (m: Mesh, a: MeshAxisName) => groupsOf(m, a)[0]!.length;
const name = (m: Mesh) => `${m.cfg}x${m.ring}x${m.ulysses}`;

/** Seeded bytes that decode to small integers (sums, means of 2^k ranks and maxes are exact in every float dtype). */
function sendsFor(W: number, elems: number, dtype: PlanDType, seed: number): Uint8Array[] {
  return Array.from({ length: W }, (_, r) => {
    const v = Float32Array.from({ length: elems }, (_, i) => ((r * 7 + i * 3 + seed) % 9) - 4);
    return encodeTensor(new Tensor('f32', [elems], v), dtype);
  });
}

function collectives(groupSize: number): CollectiveInstr[] {
  const base = { meshAxis: 'sp' as MeshAxisName, groupSize, send: 0, recv: 1, origin: ['/n'] };
  return [
    { ...base, op: 'collective', collective: 'all_to_all' },
    { ...base, op: 'collective', collective: 'all_gather' },
    { ...base, op: 'collective', collective: 'send_recv', shift: 1 },
    { ...base, op: 'collective', collective: 'send_recv', shift: -3 },
    { ...base, op: 'collective', collective: 'all_reduce', reduce: 'sum' },
    { ...base, op: 'collective', collective: 'all_reduce', reduce: 'max' },
    { ...base, op: 'collective', collective: 'all_reduce', reduce: 'mean' },
    // Last (tests index the ones above): the rows-parallel halos, no wrap-around, edge members get zeros.
    { ...base, op: 'collective', collective: 'send_recv', shift: 1, cyclic: false },
    { ...base, op: 'collective', collective: 'send_recv', shift: -1, cyclic: false },
  ];
}

/** What NCCL does with the calls of every member of one group (offsets are bytes, counts elements). */
function runNcclModel(calls: readonly (readonly NcclCall[])[], sends: readonly Uint8Array[], recvBytes: number, dtype: PlanDType): Uint8Array[] {
  const es = PLAN_DTYPE_BYTES[dtype];
  const n = sends.length;
  const recvs = sends.map(() => new Uint8Array(recvBytes).fill(0xee));
  const posted = new Map<string, { offset: number; count: number }[]>();
  calls.forEach((cs, i) => cs.filter((c) => c.call === 'send').forEach((c) => {
    if (c.call !== 'send') return;
    const k = `${i}->${c.peer}`;
    posted.set(k, [...(posted.get(k) ?? []), { offset: c.offset, count: c.count }]);
  }));
  calls.forEach((cs, j) => {
    for (const c of cs) {
      switch (c.call) {
        case 'recv': {
          const s = posted.get(`${c.peer}->${j}`)?.shift();
          if (!s || s.count !== c.count) throw new Error(`member ${j} receives ${c.count} from ${c.peer}, which sends ${s?.count ?? 'nothing'}`);
          recvs[j]!.set(sends[c.peer]!.subarray(s.offset, s.offset + s.count * es), c.offset);
          break;
        }
        case 'allGather':
          for (let i = 0; i < n; i++) recvs[j]!.set(sends[i]!.subarray(0, c.count * es), i * c.count * es);
          break;
        case 'allReduce': {
          const xs = sends.map((s) => decodeTensor(s, dtype, [c.count]).data);
          const acc = Float64Array.from({ length: c.count }, (_, k) => {
            let a = c.op === NCCL_OP.max ? -Infinity : 0;
            for (const x of xs) a = c.op === NCCL_OP.max ? Math.max(a, x[k]!) : a + x[k]!;
            return c.op === NCCL_OP.avg ? a / n : a;
          });
          encodeInto(new Tensor('f32', [c.count], Float32Array.from(acc)), dtype, recvs[j]!);
          break;
        }
        case 'scale': {
          const x = decodeTensor(recvs[j]!, dtype, [c.count]).data;
          encodeInto(new Tensor('f32', [c.count], Float32Array.from(x, (v) => v * c.factor)), dtype, recvs[j]!);
          break;
        }
        case 'copy':
          recvs[j]!.set(sends[j]!.subarray(0, c.bytes));
          break;
        case 'zero':
          recvs[j]!.fill(0, 0, c.bytes);
          break;
        case 'send':
          break;
      }
    }
  });
  for (const [k, left] of posted) if (left.length) throw new Error(`unmatched sends ${k}`);
  return recvs;
}

describe('NCCL ABI', () => {
  it('builds the 2.17-layout ncclConfig_t: size 40, magic, version 21700, blocking, undefined ints, NULL netName', () => {
    const b = ncclConfigBytes(false);
    const v = new DataView(b.buffer);
    expect(b.byteLength).toBe(NCCL_CONFIG_BYTES);
    expect(v.getBigUint64(0, true)).toBe(40n);
    expect(v.getUint32(8, true)).toBe(0xcafebeef);
    expect(v.getUint32(12, true)).toBe(21700);
    expect(v.getInt32(16, true)).toBe(0);
    for (const off of [20, 24, 28]) expect(v.getInt32(off, true)).toBe(-2147483648);
    expect(v.getBigUint64(32, true)).toBe(0n);
    expect(new DataView(ncclConfigBytes(true).buffer).getInt32(16, true)).toBe(1);
  });

  it('maps plan dtypes and reductions to nccl.h values, and knows which NCCL has ncclAvg', () => {
    // ncclInt8 0, ncclUint8 1, ncclInt32 2, ncclUint32 3, ncclInt64 4, ncclUint64 5, ncclFloat16 6 (also the carrier of 16-bit integers), ncclFloat32 7, ncclBfloat16 9.
    // f8e4m3fn (fp8 plans) moves as bytes: ncclUint8.
    expect(NCCL_DTYPE).toEqual({ u8: 1, bool: 1, i32: 2, i64: 4, f16: 6, f32: 7, bf16: 9, i8: 0, u32: 3, u64: 5, i16: 6, u16: 6, f8e4m3fn: 1 });
    expect(NCCL_OP).toEqual({ sum: 0, prod: 1, max: 2, min: 3, avg: 4 });
    expect(ncclVersionCode(2, 21, 5)).toBe(22105);
    expect(formatNcclVersion(22105)).toBe('2.21.5');
    expect(formatNcclVersion(2708)).toBe('2.7.8');
    expect(ncclHasAvg(ncclVersionCode(2, 10, 3))).toBe(true);
    expect(ncclHasAvg(ncclVersionCode(2, 9, 9))).toBe(false);
  });

  it('sets NCCL_COMM_ID, NVLS off and graph mixing off only where the user did not', () => {
    expect(ncclEnvDefaults({}, '10.0.0.1:29501', 2)).toEqual({ NCCL_COMM_ID: '10.0.0.1:29501', NCCL_NVLS_ENABLE: '0', NCCL_GRAPH_MIXING_SUPPORT: '0' });
    expect(ncclEnvDefaults({ NCCL_COMM_ID: 'a:1', NCCL_NVLS_ENABLE: '1', NCCL_GRAPH_MIXING_SUPPORT: '1' }, 'b:2', 2)).toEqual({});
    expect(ncclEnvDefaults({}, undefined, 1)).toEqual({ NCCL_NVLS_ENABLE: '0', NCCL_GRAPH_MIXING_SUPPORT: '0' });
    expect(() => ncclEnvDefaults({}, undefined, 4)).toThrow(/nothing says where rank 0 listens \(world 4\): set NCCL_COMM_ID=host:port/);
  });

  it('puts local rank r on GPU r and refuses two ranks on one GPU with the fix', () => {
    expect(ncclDeviceFor(1, 2, undefined)).toBe(1);
    expect(() => ncclDeviceFor(1, 1, '3')).toThrow(/local rank 1, but the process sees 1 GPU\(s\) \(CUDA_VISIBLE_DEVICES=3\); NCCL cannot put two ranks on one GPU.*without a launcher/);
  });
});

describe('communicator splits', () => {
  it.each(MESHES.map((m) => [name(m), m] as const))('mesh %s: color = group index, key = member index, one communicator per group', (_, m) => {
    for (const axis of AXES) {
      const groups = groupsOf(m, axis);
      const byColor = new Map<number, { rank: number; key: number }[]>();
      for (let rank = 0; rank < worldSize(m); rank++) {
        const { color, key } = splitColorKey(groups, rank);
        expect(key).toBe(axisIndex(m, axis, rank));
        byColor.set(color, [...(byColor.get(color) ?? []), { rank, key }]);
      }
      // NCCL orders a split communicator's ranks by key: that must be the group's member order.
      const rebuilt = [...byColor.entries()].sort((a, b) => a[0] - b[0]).map(([, xs]) => xs.sort((a, b) => a.key - b.key).map((x) => x.rank));
      expect(rebuilt).toEqual(groups);
    }
  });
});

describe('NCCL calls of each collective', () => {
  const dtypes: PlanDType[] = ['f32', 'bf16', 'f16'];
  it.each(MESHES.map((m) => [name(m), m] as const))('mesh %s: every member\'s calls reproduce collectiveOverGroup', (_, m) => {
    for (const axis of AXES) {
      const n = axisSize(m, axis);
      for (const base of collectives(n)) {
        const instr = { ...base, meshAxis: axis };
        for (const dtype of dtypes) {
          for (const version of [ncclVersionCode(2, 21, 5), ncclVersionCode(2, 8, 4)]) {
            for (const singletons of n === 1 ? [false, true] : [false]) {
              const elems = 4 * n;
              const sends = sendsFor(n, elems, dtype, axis.length);
              const sendBytes = elems * PLAN_DTYPE_BYTES[dtype];
              const recvBytes = instr.collective === 'all_gather' ? n * sendBytes : sendBytes;
              const calls = sends.map((_, i) => {
                const plan = ncclCallsFor(instr, i, sendBytes, dtype, version, singletons);
                expect(plan.grouped).toBe(plan.calls.some((c) => c.call === 'send'));
                return plan.calls;
              });
              expect(runNcclModel(calls, sends, recvBytes, dtype)).toEqual(collectiveOverGroup(instr, sends, dtype, recvBytes));
            }
          }
        }
      }
    }
  });

  it('groups of one are a copy (nothing in place) unless forced through NCCL; old NCCL means = sum + scale', () => {
    const [a2a, , , , sum, , mean] = collectives(1);
    expect(ncclCallsFor(a2a!, 0, 16, 'f32', 22105).calls).toEqual([{ call: 'copy', bytes: 16 }]);
    expect(ncclCallsFor({ ...sum!, recv: 0 }, 0, 16, 'f32', 22105).calls).toEqual([]);
    expect(ncclCallsFor(a2a!, 0, 16, 'f32', 22105, true)).toEqual({ grouped: true, calls: [{ call: 'send', peer: 0, offset: 0, count: 4 }, { call: 'recv', peer: 0, offset: 0, count: 4 }] });
    const m4 = { ...mean!, groupSize: 4 };
    expect(ncclCallsFor(m4, 0, 16, 'f32', 22105).calls).toEqual([{ call: 'allReduce', op: NCCL_OP.avg, count: 4 }]);
    expect(ncclCallsFor(m4, 0, 16, 'f32', 20804).calls).toEqual([{ call: 'allReduce', op: NCCL_OP.sum, count: 4 }, { call: 'scale', factor: 0.25, count: 4 }]);
    // A non-cyclic halo (shift +1 over 4): rank 0 zero-fills and only sends, rank 3 only receives, nothing crosses the edge.
    const halo: CollectiveInstr = { op: 'collective', collective: 'send_recv', meshAxis: 'ring', groupSize: 4, shift: 1, cyclic: false, send: 0, recv: 1, origin: [] };
    expect(ncclCallsFor(halo, 0, 16, 'f32', 22105)).toEqual({ grouped: true, calls: [{ call: 'zero', bytes: 16 }, { call: 'send', peer: 1, offset: 0, count: 4 }] });
    expect(ncclCallsFor(halo, 1, 16, 'f32', 22105).calls).toEqual([{ call: 'send', peer: 2, offset: 0, count: 4 }, { call: 'recv', peer: 0, offset: 0, count: 4 }]);
    expect(ncclCallsFor(halo, 3, 16, 'f32', 22105).calls).toEqual([{ call: 'recv', peer: 2, offset: 0, count: 4 }]);
    expect(ncclCallsFor({ ...halo, shift: -1 }, 3, 16, 'f32', 22105).calls).toEqual([{ call: 'zero', bytes: 16 }, { call: 'send', peer: 2, offset: 0, count: 4 }]);
  });
});

describe('in-process exchange', () => {
  /** The reduce helper kernel on the host: double accumulation in member order, then float, then the dtype. */
  function reduceScratch(scratch: Uint8Array, members: number, elems: number, dtype: PlanDType, reduce: 'sum' | 'mean' | 'max'): Uint8Array {
    const x = decodeTensor(scratch, dtype, [members * elems]).data;
    const out = new Float32Array(elems);
    for (let i = 0; i < elems; i++) {
      let acc = reduce === 'max' ? -Infinity : 0;
      for (let k = 0; k < members; k++) acc = reduce === 'max' ? Math.max(acc, x[k * elems + i]!) : acc + x[k * elems + i]!;
      out[i] = reduce === 'mean' ? acc / members : acc;
    }
    return encodeTensor(new Tensor('f32', [elems], out), dtype);
  }

  it.each(MESHES.map((m) => [name(m), m] as const))('mesh %s: the peer copies (and scratch reduce) reproduce collectiveOverGroup on every rank', (_, m) => {
    const W = worldSize(m);
    for (const axis of AXES) {
      const n = axisSize(m, axis);
      for (const base of collectives(n)) {
        const instr = { ...base, meshAxis: axis };
        for (const dtype of ['f32', 'bf16'] as PlanDType[]) {
          const elems = 2 * n;
          const sendBytes = elems * PLAN_DTYPE_BYTES[dtype];
          const recvBytes = instr.collective === 'all_gather' ? n * sendBytes : sendBytes;
          const sends = sendsFor(W, elems, dtype, 5);
          const recvs = sends.map(() => new Uint8Array(recvBytes).fill(0xee));
          const scratch = sends.map(() => new Uint8Array(exchangeScratchBytes(instr, sendBytes)));
          const plan = inProcessExchange(m, instr, sendBytes);
          for (const r of plan.zeros) recvs[r]!.fill(0, 0, sendBytes);
          for (const c of plan.copies) (c.into === 'recv' ? recvs : scratch)[c.dstRank]!.set(sends[c.srcRank]!.subarray(c.srcOffset, c.srcOffset + c.bytes), c.dstOffset);
          if (plan.reduce) scratch.forEach((s, r) => recvs[r]!.set(reduceScratch(s, n, elems, dtype, instr.reduce!)));
          for (const g of groupsOf(m, axis)) {
            const want = collectiveOverGroup(instr, g.map((r) => sends[r]!), dtype, recvBytes);
            g.forEach((r, i) => expect(recvs[r]).toEqual(want[i]));
          }
        }
      }
    }
  });

  it('refuses a plan whose groupSize is not the mesh axis size', () => {
    expect(() => inProcessExchange(makeMesh({ ulysses: 4 }), { ...collectives(2)[0]!, meshAxis: 'ulysses' }, 64)).toThrow(/groups of the mesh have 4 members, the plan says groupSize 2/);
  });
});

describe('shard_slice as a 2D copy', () => {
  it('copies the part (index - shift) mod n of every row, like shardSliceInto', () => {
    for (const [n, shift, rows, pb] of [[4, 0, 3, 5], [4, 1, 2, 8], [3, -1, 4, 2], [1, 0, 3, 7], [2, 3, 1, 4]] as const) {
      const instr: ShardSliceInstr = { op: 'shard_slice', meshAxis: 'ulysses', groupSize: n, shift, src: 0, dst: 1, rows, partBytes: pb, origin: ['/s'] };
      const src = Uint8Array.from({ length: rows * n * pb }, (_, i) => i & 0xff);
      for (let index = 0; index < n; index++) {
        const want = new Uint8Array(rows * pb);
        shardSliceInto(instr, index, src, want);
        const c = shardSliceCopy(instr, index);
        const got = new Uint8Array(rows * pb);
        for (let y = 0; y < c.height; y++) got.set(src.subarray(c.srcOffset + y * c.srcPitch, c.srcOffset + y * c.srcPitch + c.width), y * c.dstPitch);
        expect(got).toEqual(want);
      }
    }
  });

  it('lays out CUDA_MEMCPY2D (device to device) at the cuda.h offsets', () => {
    const b = new Uint8Array(MEMCPY2D_BYTES);
    const v = new DataView(b.buffer);
    writeMemcpy2D(v, 0x1000n, 0x9000n, { srcOffset: 16, srcPitch: 64, dstPitch: 16, width: 16, height: 3 });
    expect([v.getInt32(16, true), v.getBigUint64(32, true), v.getBigUint64(48, true)]).toEqual([2, 0x1010n, 64n]);
    expect([v.getInt32(72, true), v.getBigUint64(88, true), v.getBigUint64(104, true)]).toEqual([2, 0x9000n, 16n]);
    expect([v.getBigUint64(112, true), v.getBigUint64(120, true)]).toEqual([16n, 3n]);
    expect([v.getBigUint64(0, true), v.getBigUint64(8, true), v.getBigUint64(24, true), v.getBigUint64(40, true)]).toEqual([0n, 0n, 0n, 0n]);
  });
});

describe('bounded waits', () => {
  // Each reading of the clock takes 0.01 ms (so the spin ends); sleeps advance it by their length.
  const clock = () => {
    let t = 0;
    return { now: () => (t += 0.01), sleep: (ms: number) => void (t += ms), advance: (ms: number) => void (t += ms) };
  };

  it('returns once done, spinning first', () => {
    const c = clock();
    let polls = 0;
    waitBounded({ done: () => ++polls > 5 }, { who: 'rank 0', what: 'waiting', timeoutMs: 1000, now: c.now, sleep: c.sleep });
    expect(polls).toBe(6);
  });

  it('times out with a RankFailure that names the rank and what it waited for, after aborting', () => {
    const c = clock();
    let aborted = 0;
    const run = () => waitBounded({ done: () => false, giveUp: () => void aborted++ }, { who: 'rank 0', what: 'in NCCL communicator set-up (world 2)', timeoutMs: 300_000, now: c.now, sleep: c.sleep });
    expect(run).toThrow(RankFailure);
    expect(aborted).toBe(1);
    expect(run).toThrow(/^rank 0: timed out after 300 s in NCCL communicator set-up \(world 2\); a peer rank failed or never started — see its log$/);
  });

  it('stops early on a peer failure or a communicator error', () => {
    const c = clock();
    let peerCalls = 0;
    const peer = () => (++peerCalls > 2 ? 'rank 1 exited with code 1' : undefined);
    expect(() => waitBounded({ done: () => false, peerFailure: peer }, { who: 'rank 0', what: 'waiting for the step', timeoutMs: 60_000, now: c.now, sleep: c.sleep })).toThrow(
      /^rank 0: stopped waiting for the step because a peer failed: rank 1 exited with code 1$/,
    );
    expect(c.now()).toBeLessThan(1000);
    expect(() => waitBounded({ done: () => false, asyncError: () => 'ncclRemoteError' }, { who: 'rank 3', what: 'waiting for the step', timeoutMs: 60_000, now: c.now, sleep: c.sleep })).toThrow(
      /rank 3: NCCL reported an error waiting for the step: ncclRemoteError/,
    );
  });
});

describe('stream and event preparation', () => {
  const k = { op: 'copy' as const, src: 0, dst: 1, origin: ['/c'] };
  it('reads stream, wait and record, and refuses events outside the plan', () => {
    expect(instrSync(k, 0, '0')).toEqual({ stream: 0, wait: [], record: undefined });
    expect(instrSync({ ...k, stream: 1, wait: [0], record: 1 }, 2, '3')).toEqual({ stream: 1, wait: [0], record: 1 });
    expect(() => instrSync({ ...k, record: 2 }, 2, '4')).toThrow(/instruction 4 \(copy\) names event 2, outside the plan's 2 events/);
  });

  it('sizes the in-process all_reduce scratch by the largest all_reduce, branches included', () => {
    const ar = (send: number, groupSize: number) => ({ ...collectives(groupSize)[4]!, send, recv: send });
    const bytes = new Map([[0, 64], [1, 256]]);
    expect(allReduceScratchBytes([ar(0, 4), { op: 'branch', cond: 9, then: [ar(1, 2)], else: [], origin: [] }], (id) => bytes.get(id)!)).toBe(512);
    expect(allReduceScratchBytes([k], () => 0)).toBe(0);
  });

  it('drain refuses a yield: a rank alone cannot run a collective', () => {
    function* gen(): Generator<{ kind: 'branch'; where: string; side: 'then' }, void, void> {
      yield { kind: 'branch', where: '3', side: 'then' };
    }
    expect(() => drain(gen())).toThrow(/branch 3 needs ranks in lockstep/);
  });
});

describe('mesh vs ranks', () => {
  const h100 = { name: 'H100', major: 9, minor: 0 };
  const target = (mesh: Mesh) => ({ backend: 'cuda' as const, arch: 'sm_90a', dtype: 'bf16' as const, mesh: { ...mesh } });
  it('runs a plan on exactly its world of ranks and says how to fix a mismatch', () => {
    expect(checkPlanTarget(target(makeMesh({ ulysses: 2 })), true, h100, 2, 'NCCL').ok).toBe(true);
    expect(checkPlanTarget(target(makeMesh({ ulysses: 2 })), true, h100, 1).reason).toMatch(/sharded over a mesh \(cfg 1, ring 1, ulysses 2\), so it runs on 2 ranks.*paradit launch --nproc 2/);
    expect(checkPlanTarget(target(makeMesh({ cfg: 2, ulysses: 2 })), true, h100, 2, 'rank 0 of a launched world of 2').reason).toMatch(/of 4 rank\(s\), but 2 rank\(s\) run it \(rank 0 of a launched world of 2\); start exactly 4 ranks/);
    expect(checkPlanTarget(target(makeMesh()), true, h100, 2).reason).toMatch(/of 1 rank\(s\), but 2 rank\(s\) run it/);
  });
});
