/**
 * NCCL's C ABI as data, and the NCCL calls each plan collective turns into, with no FFI: the
 * values of nccl.h's enums, the bytes of the ncclConfig_t we hand to ncclCommInitRankConfig, the
 * environment defaults a rank sets before NCCL reads it, and `ncclCallsFor` (what one member
 * enqueues for one collective). Unit-tested without NCCL or a GPU; nccl.ts and communicator.ts
 * execute what this file decides.
 *
 * Checked against nccl.h.in and init.cc of NVIDIA/nccl (2.17 .. 2.30): parseCommConfig copies
 * min(config->size, sizeof(its ncclConfig_t)) bytes over NCCL_CONFIG_INITIALIZER, so a 2.17-layout
 * struct (40 bytes) works with every newer NCCL, whose later fields keep their defaults.
 */
import { IrError } from '@paradit/ir';
import type { CollectiveInstr, PlanDType } from '../plan/schema';
import { PLAN_DTYPE_BYTES } from '../plan/bytes';

/** ncclResult_t */
export const NCCL_RESULT = {
  ncclSuccess: 0,
  ncclUnhandledCudaError: 1,
  ncclSystemError: 2,
  ncclInternalError: 3,
  ncclInvalidArgument: 4,
  ncclInvalidUsage: 5,
  ncclRemoteError: 6,
  ncclInProgress: 7,
  ncclTimeout: 8,
} as const;

export function ncclResultName(r: number): string {
  const hit = Object.entries(NCCL_RESULT).find(([, v]) => v === r);
  return hit ? hit[0] : `ncclResult ${r}`;
}

/** ncclDataType_t for each plan dtype (bool is one byte, 0 or 1). */
export const NCCL_DTYPE: { readonly [K in PlanDType]: number } = {
  u8: 1, // ncclUint8
  bool: 1,
  i32: 2, // ncclInt32
  i64: 4, // ncclInt64
  f16: 6, // ncclFloat16
  f32: 7, // ncclFloat32
  bf16: 9, // ncclBfloat16 (NCCL 2.10+)
  i8: 0, // ncclInt8
  u32: 3, // ncclUint32
  u64: 5, // ncclUint64
  // No 16-bit integer type in NCCL: a 2-byte carrier; only data movement (reductions take floats only).
  i16: 6,
  u16: 6,
  // fp8 values are moved as bytes (ncclUint8); an fp8 plan reduces nothing in e4m3.
  f8e4m3fn: 1,
};

/** ncclRedOp_t */
export const NCCL_OP = { sum: 0, prod: 1, max: 2, min: 3, avg: 4 } as const;

/** NCCL_VERSION(X, Y, Z) for 2.9 and later (NCCL_VERSION_CODE). */
export const ncclVersionCode = (major: number, minor: number, patch: number): number => major * 10000 + minor * 100 + patch;

/** "2.21.5" from ncclGetVersion's code (both encodings: 2.9+ and the older X*1000+Y*100+Z). */
export function formatNcclVersion(code: number): string {
  if (code >= 10000) return `${Math.floor(code / 10000)}.${Math.floor((code % 10000) / 100)}.${code % 100}`;
  return `${Math.floor(code / 1000)}.${Math.floor((code % 1000) / 100)}.${code % 100}`;
}

/** ncclAvg exists from NCCL 2.10; before, a mean is a sum then a scale kernel. */
export const ncclHasAvg = (code: number): boolean => code >= ncclVersionCode(2, 10, 0);

const NCCL_API_MAGIC = 0xcafebeef;
const NCCL_CONFIG_UNDEF_INT = -2147483648;
/** The layout version our config struct follows (the one that added cgaClusterSize .. netName). */
const NCCL_CONFIG_VERSION = ncclVersionCode(2, 17, 0);
/** sizeof the 2.17 ncclConfig_t: size_t size; unsigned magic, version; int blocking, cga, minCTAs, maxCTAs; const char* netName. */
export const NCCL_CONFIG_BYTES = 40;

/** The ncclConfig_t bytes: NCCL_CONFIG_INITIALIZER of 2.17 with `blocking` set. */
export function ncclConfigBytes(blocking: boolean): Uint8Array {
  const b = new Uint8Array(NCCL_CONFIG_BYTES);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(NCCL_CONFIG_BYTES), true); // size
  v.setUint32(8, NCCL_API_MAGIC, true); // magic
  v.setUint32(12, NCCL_CONFIG_VERSION, true); // version
  v.setInt32(16, blocking ? 1 : 0, true); // blocking
  v.setInt32(20, NCCL_CONFIG_UNDEF_INT, true); // cgaClusterSize
  v.setInt32(24, NCCL_CONFIG_UNDEF_INT, true); // minCTAs
  v.setInt32(28, NCCL_CONFIG_UNDEF_INT, true); // maxCTAs
  v.setBigUint64(32, 0n, true); // netName = NULL (NCCL picks)
  return b;
}

/**
 * NCCL environment defaults this runtime sets when the user did not: NCCL_COMM_ID (rank 0's
 * ncclCommInitRank* starts the bootstrap root there; every rank's ncclGetUniqueId returns that
 * address, so no store of our own is needed); NCCL_NVLS_ENABLE=0 (NVLink multicast must stay off
 * on the GPU machines, and it only helps all-reduce, not our all-to-all and p2p traffic); and
 * NCCL_GRAPH_MIXING_SUPPORT=0: graph mixing makes NCCL add event-record nodes to a captured graph,
 * which a conditional node's body (First Block Cache) cannot hold, and this runtime never has an
 * eager NCCL call in flight beside a replayed graph. Every variable the user set wins.
 */
export function ncclEnvDefaults(env: Readonly<Record<string, string | undefined>>, bootstrap: string | undefined, world: number): Record<string, string> {
  const set: Record<string, string> = {};
  if (env['NCCL_COMM_ID'] === undefined) {
    if (bootstrap) set['NCCL_COMM_ID'] = bootstrap;
    else if (world > 1) {
      throw new IrError(
        'E_INPUT',
        `NCCL set-up: nothing says where rank 0 listens (world ${world}): set NCCL_COMM_ID=host:port, or start the ranks with a launcher that sets MASTER_ADDR/MASTER_PORT (torchrun, paradit launch)`,
      );
    }
  }
  if (env['NCCL_NVLS_ENABLE'] === undefined) set['NCCL_NVLS_ENABLE'] = '0';
  if (env['NCCL_GRAPH_MIXING_SUPPORT'] === undefined) set['NCCL_GRAPH_MIXING_SUPPORT'] = '0';
  return set;
}

/** The rank's device, or an error when two ranks of this host would share one GPU. */
export function ncclDeviceFor(localRank: number, visibleDevices: number, cudaVisible: string | undefined): number {
  if (localRank < visibleDevices) return localRank;
  const vis = cudaVisible !== undefined ? ` (CUDA_VISIBLE_DEVICES=${cudaVisible})` : '';
  throw new IrError(
    'E_INPUT',
    `NCCL set-up: this is local rank ${localRank}, but the process sees ${visibleDevices} GPU(s)${vis}; NCCL cannot put two ranks on one GPU. ` +
      'Start at most one rank per visible GPU, or, to check a sharded plan on one GPU, run it without a launcher (every rank in one process: `paradit run PLAN --backend cuda`).',
  );
}

/** color/key of this rank's ncclCommSplit for one axis: its group's index among the axis's groups, and its member index. */
export function splitColorKey(groups: readonly (readonly number[])[], rank: number): { color: number; key: number } {
  for (let color = 0; color < groups.length; color++) {
    const key = groups[color]!.indexOf(rank);
    if (key >= 0) return { color, key };
  }
  throw new Error(`rank ${rank} is in no group of [${groups.map((g) => `[${g.join(',')}]`).join(', ')}]`);
}

/** One NCCL call of a collective, offsets in bytes from the send/recv buffer starts, counts in elements. */
export type NcclCall =
  | { readonly call: 'copy'; readonly bytes: number }
  /** recv = 0 (a non-cyclic send_recv's edge member, which no peer sends to). */
  | { readonly call: 'zero'; readonly bytes: number }
  | { readonly call: 'send'; readonly peer: number; readonly offset: number; readonly count: number }
  | { readonly call: 'recv'; readonly peer: number; readonly offset: number; readonly count: number }
  | { readonly call: 'allGather'; readonly count: number }
  | { readonly call: 'allReduce'; readonly op: number; readonly count: number }
  /** recv *= factor (a mean on an NCCL without ncclAvg). */
  | { readonly call: 'scale'; readonly factor: number; readonly count: number };

export interface NcclCallPlan {
  /** Between ncclGroupStart and ncclGroupEnd (p2p calls must be grouped so they cannot deadlock). */
  readonly grouped: boolean;
  readonly calls: readonly NcclCall[];
}

const mod = (a: number, n: number): number => ((a % n) + n) % n;

/**
 * What member `index` of a group of `instr.groupSize` enqueues for `instr` (peers are member
 * indices, i.e. ranks of the axis's communicator). A group of one is a device copy, or nothing
 * when send is recv; `singletonsThroughNccl` makes it go through NCCL anyway (the smoke test of the
 * NCCL path in a world of one).
 */
export function ncclCallsFor(instr: CollectiveInstr, index: number, sendBytes: number, dtype: PlanDType, ncclVersion: number, singletonsThroughNccl = false): NcclCallPlan {
  const n = instr.groupSize;
  const esize = PLAN_DTYPE_BYTES[dtype];
  if (sendBytes % esize !== 0) throw new Error(`${instr.collective}: ${sendBytes} bytes are not whole ${dtype} elements`);
  const count = sendBytes / esize;
  if (n === 1 && !singletonsThroughNccl) {
    // A non-cyclic send_recv with a shift in a group of one has no source: zeros.
    if (instr.collective === 'send_recv' && instr.cyclic === false && (instr.shift ?? 0) !== 0) return { grouped: false, calls: sendBytes === 0 ? [] : [{ call: 'zero', bytes: sendBytes }] };
    return { grouped: false, calls: instr.send === instr.recv || sendBytes === 0 ? [] : [{ call: 'copy', bytes: sendBytes }] };
  }
  switch (instr.collective) {
    case 'all_to_all': {
      if (count % n !== 0) throw new Error(`all_to_all: ${count} elements do not split into ${n} chunks`);
      const c = count / n;
      const calls: NcclCall[] = [];
      for (let j = 0; j < n; j++) {
        calls.push({ call: 'send', peer: j, offset: j * c * esize, count: c });
        calls.push({ call: 'recv', peer: j, offset: j * c * esize, count: c });
      }
      return { grouped: true, calls };
    }
    case 'all_gather':
      return { grouped: false, calls: [{ call: 'allGather', count }] };
    case 'all_reduce': {
      const reduce = instr.reduce ?? 'sum';
      if (reduce === 'mean' && !ncclHasAvg(ncclVersion)) {
        return { grouped: false, calls: [{ call: 'allReduce', op: NCCL_OP.sum, count }, { call: 'scale', factor: 1 / n, count }] };
      }
      return { grouped: false, calls: [{ call: 'allReduce', op: reduce === 'mean' ? NCCL_OP.avg : NCCL_OP[reduce], count }] };
    }
    case 'send_recv': {
      const shift = instr.shift ?? 0;
      if (instr.cyclic !== false) {
        return {
          grouped: true,
          calls: [
            { call: 'send', peer: mod(index + shift, n), offset: 0, count },
            { call: 'recv', peer: mod(index - shift, n), offset: 0, count },
          ],
        };
      }
      // Non-cyclic (a halo exchange): nobody sends across the group's edge; the edge member that
      // has no source zero-fills its recv instead of receiving rows it would throw away.
      const to = index + shift;
      const from = index - shift;
      const calls: NcclCall[] = [];
      if (from < 0 || from >= n) calls.push({ call: 'zero', bytes: sendBytes });
      if (to >= 0 && to < n) calls.push({ call: 'send', peer: to, offset: 0, count });
      if (from >= 0 && from < n) calls.push({ call: 'recv', peer: from, offset: 0, count });
      return { grouped: calls.some((c) => c.call === 'send'), calls };
    }
    default: {
      const never: never = instr.collective;
      throw new Error(`unknown collective ${String(never)}`);
    }
  }
}
