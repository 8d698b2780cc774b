/**
 * NCCL (libnccl.so.2) through koffi, no native addon. Every binding returns the raw ncclResult_t:
 * with non-blocking communicators ncclInProgress is a normal answer (the caller polls
 * ncclCommGetAsyncError, communicator.ts), so `check` throws only on a real error, naming the call,
 * the result, NCCL's last-error text and the plan instruction when there is one.
 *
 * ncclUniqueId (128 bytes) is passed BY VALUE to ncclCommInitRank*; it is declared as a koffi
 * struct so koffi follows the platform ABI (on x86-64 a struct that large goes on the stack).
 * Device pointers, streams and communicators are BigInt, as everywhere in the CUDA runtime.
 */
import type { InstrContext } from './errors';
import { CudaError, formatCudaError } from './errors';
import { Library, NativeFn, Ptr, koffi, openLibrary, optionalFunc, toPtr } from './ffi';
import { NCCL_RESULT, ncclResultName } from './nccl-abi';

const REQUIRED = [
  'int ncclGetVersion(_Out_ int *version)',
  'int ncclGetUniqueId(void *uniqueId)',
  'const char *ncclGetErrorString(int result)',
  'int ncclCommInitRank(_Out_ void **comm, int nranks, ncclUniqueId commId, int rank)',
  'int ncclCommGetAsyncError(void *comm, _Out_ int *asyncError)',
  'int ncclCommAbort(void *comm)',
  'int ncclCommDestroy(void *comm)',
  'int ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, int datatype, int op, void *comm, void *stream)',
  'int ncclAllGather(const void *sendbuff, void *recvbuff, size_t sendcount, int datatype, void *comm, void *stream)',
  'int ncclSend(const void *sendbuff, size_t count, int datatype, int peer, void *comm, void *stream)',
  'int ncclRecv(void *recvbuff, size_t count, int datatype, int peer, void *comm, void *stream)',
  'int ncclGroupStart()',
  'int ncclGroupEnd()',
] as const;

/** Newer entry points: non-blocking init (2.14), split (2.18), finalize (2.14), last error (2.13). */
const OPTIONAL = [
  'int ncclCommInitRankConfig(_Out_ void **comm, int nranks, ncclUniqueId commId, int rank, void *config)',
  'int ncclCommSplit(void *comm, int color, int key, _Out_ void **newcomm, void *config)',
  'int ncclCommFinalize(void *comm)',
  'const char *ncclGetLastError(void *comm)',
] as const;

function nameOf(decl: string): string {
  const m = /\s\*?(\w+)\(/.exec(decl);
  if (!m) throw new Error(`bad prototype ${decl}`);
  return m[1]!;
}

/** Where libnccl is looked for: $NCCL_LIBRARY first, then the usual names. */
function ncclLibraryCandidates(env: Readonly<Record<string, string | undefined>> = process.env): string[] {
  return [env['NCCL_LIBRARY'], '/usr/lib/x86_64-linux-gnu/libnccl.so.2', 'libnccl.so.2', 'libnccl.so'].filter((x): x is string => !!x);
}

/** The by-value ncclUniqueId, registered once per process (koffi refuses a second type of that name). */
function registerUniqueId(): void {
  const k = koffi();
  try {
    k.type('ncclUniqueId');
  } catch {
    k.struct('ncclUniqueId', { internal: k.array('uint8_t', 128) });
  }
}

export class Nccl {
  private readonly fns = new Map<string, NativeFn>();

  constructor(readonly lib: Library) {
    registerUniqueId();
    for (const d of REQUIRED) this.fns.set(nameOf(d), lib.func(d) as NativeFn);
    for (const d of OPTIONAL) {
      const f = optionalFunc(lib, d);
      if (f) this.fns.set(nameOf(d), f);
    }
  }

  has(name: string): boolean {
    return this.fns.has(name);
  }

  /** Calls `name` and returns its ncclResult_t. */
  raw(name: string, args: unknown[]): number {
    const f = this.fns.get(name);
    if (!f) throw new Error(`${name}: this NCCL does not export it (too old?)`);
    return f(...args) as number;
  }

  /** Calls `name`; throws unless it returned ncclSuccess or ncclInProgress, which it returns. */
  call(name: string, args: unknown[], ctx?: InstrContext, comm?: Ptr): number {
    const r = this.raw(name, args);
    if (r !== NCCL_RESULT.ncclSuccess && r !== NCCL_RESULT.ncclInProgress) throw this.error(name, r, ctx, comm);
    return r;
  }

  error(call: string, result: number, ctx?: InstrContext, comm?: Ptr): CudaError {
    const text = this.describe(result, comm);
    return new CudaError('nccl', call, result, ncclResultName(result), ctx, formatCudaError(call, ncclResultName(result), text, ctx, ncclHint(result)));
  }

  /** NCCL's text for a result, with its last error message when it has one. */
  describe(result: number, comm?: Ptr): string {
    const s = (this.fns.get('ncclGetErrorString')!(result) as string | null) ?? '';
    const last = this.fns.get('ncclGetLastError');
    const l = last ? ((last(comm ?? null) as string | null) ?? '') : '';
    return l && l !== s ? `${s}; ${l}` : s;
  }

  version(): number {
    const v = [0];
    this.call('ncclGetVersion', [v]);
    return v[0]!;
  }

  /** ncclGetUniqueId: with NCCL_COMM_ID set it encodes that address (rank 0's init listens there). */
  uniqueId(): Uint8Array {
    const id = new Uint8Array(128);
    this.call('ncclGetUniqueId', [id]);
    return id;
  }

  /** ncclCommInitRankConfig (non-blocking when `config` says so), or blocking ncclCommInitRank when absent. */
  initRank(world: number, id: Uint8Array, rank: number, config: Uint8Array | undefined): { comm: Ptr; result: number } {
    const out: unknown[] = [null];
    const byValue = { internal: id };
    const result = config && this.has('ncclCommInitRankConfig')
      ? this.call('ncclCommInitRankConfig', [out, world, byValue, rank, config])
      : this.call('ncclCommInitRank', [out, world, byValue, rank]);
    return { comm: toPtr(out[0]), result };
  }

  split(parent: Ptr, color: number, key: number, config: Uint8Array): { comm: Ptr; result: number } {
    const out: unknown[] = [null];
    const result = this.call('ncclCommSplit', [parent, color, key, out, config], undefined, parent);
    return { comm: toPtr(out[0]), result };
  }

  /** The communicator's state: ncclSuccess, ncclInProgress (init/op pending) or its error. */
  asyncError(comm: Ptr): number {
    const e = [0];
    const r = this.raw('ncclCommGetAsyncError', [comm, e]);
    return r !== NCCL_RESULT.ncclSuccess ? r : e[0]!;
  }
}

function ncclHint(result: number): string | undefined {
  switch (result) {
    case NCCL_RESULT.ncclSystemError:
    case NCCL_RESULT.ncclRemoteError:
      return 'a peer rank failed or the network between ranks broke; see the other ranks\' logs (NCCL_DEBUG=WARN says more)';
    case NCCL_RESULT.ncclInvalidUsage:
      return 'the ranks called NCCL differently (a diverged program?); NCCL_DEBUG=WARN says more';
    case NCCL_RESULT.ncclUnhandledCudaError:
      return 'a CUDA call inside NCCL failed; NCCL_DEBUG=WARN says which';
    default:
      return undefined;
  }
}

let ncclSingleton: Nccl | undefined;

/** Loads libnccl once. Set the environment (NCCL_COMM_ID, ...) before: NCCL reads it on first use. */
export function ncclLibrary(): Nccl {
  ncclSingleton ??= new Nccl(openLibrary('NCCL (libnccl.so.2; set NCCL_LIBRARY to its path)', ncclLibraryCandidates()));
  return ncclSingleton;
}
