/**
 * Preparation of the rank-dependent instructions for one rank: a collective's buffers, member
 * index and helper kernels (the in-process all_reduce's reduce kernel, NCCL's mean scale when
 * ncclAvg is missing), and a shard_slice's strided copy (shard-slice.ts) for this rank's part.
 * What runs them: communicator.ts (NCCL) or in-process.ts (ranks sharing one GPU).
 */
import { IrError, axisIndex } from '@paradit/ir';
import { PLAN_DTYPE_BYTES } from '../plan/bytes';
import type { CollectiveInstr, Instr, PlanDType, ShardSliceInstr } from '../plan/schema';
import { walkInstrs } from '../plan/streams';
import type { InstrContext } from './errors';
import { NativeBlock, Ptr } from './ffi';
import { reduceKernelName, scaleKernelName } from './helper-kernels';
import type { ReduceDType } from './helper-kernels';
import { Launch, helperGrid, packLaunch } from './launch';
import type { PrepareEnv } from './program';
import { MEMCPY2D_BYTES, shardSliceCopy, writeMemcpy2D } from './shard-slice';

export type CollectiveMode = 'nccl' | 'in-process';

export interface PreparedCollective {
  readonly op: 'collective';
  readonly ctx: InstrContext;
  readonly instr: CollectiveInstr;
  /** Position in the program ("12", "7.then.3"): ranks meet at the same one. */
  readonly where: string;
  readonly send: Ptr;
  readonly recv: Ptr;
  readonly sendBytes: number;
  readonly recvBytes: number;
  readonly dtype: PlanDType;
  /** This rank's index along instr.meshAxis. */
  readonly memberIndex: number;
  /** In-process all_reduce: this rank's scratch [groupSize, n] and the kernel reducing it into recv. */
  readonly scratch: Ptr;
  readonly reduce?: Launch;
  /** NCCL without ncclAvg: recv *= 1/groupSize after the sum. */
  readonly scale?: Launch;
}

export interface PreparedShardSlice {
  readonly op: 'shard_slice';
  readonly ctx: InstrContext;
  /** Native CUDA_MEMCPY2D for cuMemcpy2DAsync_v2, or a flat copy when the part is contiguous. */
  readonly copy2d: Ptr | undefined;
  readonly flat: { readonly dst: Ptr; readonly src: Ptr; readonly bytes: number } | undefined;
}

const REDUCIBLE: ReadonlySet<PlanDType> = new Set(['f32', 'f16', 'bf16']);

export function describeCollective(ins: CollectiveInstr): string {
  const extra = ins.collective === 'all_reduce' ? ` ${ins.reduce ?? 'sum'}` : ins.collective === 'send_recv' ? ` shift ${ins.shift ?? 0}${ins.cyclic === false ? ' non-cyclic' : ''}` : '';
  return `${ins.collective}${extra} over '${ins.meshAxis}' (${ins.groupSize} ranks)`;
}

/** Scratch bytes an in-process rank needs: the largest all_reduce's groupSize x send bytes. */
export function allReduceScratchBytes(program: readonly Instr[], bytesOf: (buf: number) => number): number {
  let most = 0;
  for (const [ins] of walkInstrs(program)) {
    if (ins.op === 'collective' && ins.collective === 'all_reduce') most = Math.max(most, ins.groupSize * bytesOf(ins.send));
  }
  return most;
}

export function prepareCollective(env: PrepareEnv, ins: CollectiveInstr, index: string): PreparedCollective {
  const ctx: InstrContext = { index, op: 'collective', origin: ins.origin, detail: describeCollective(ins) };
  const s = env.buffers.get(ins.send)!;
  const r = env.buffers.get(ins.recv)!;
  const where = `${describeCollective(ins)} (instruction ${index}${ins.origin.length ? `; ONNX nodes ${ins.origin.slice(0, 3).join(', ')}` : ''})`;
  if (s.dtype !== r.dtype) throw new Error(`${where}: sends ${s.dtype} into a ${r.dtype} buffer`);
  if (ins.send === ins.recv && ins.collective !== 'all_reduce') throw new Error(`${where}: send and receive are one buffer; only all_reduce may work in place`);
  const base = {
    op: 'collective' as const, ctx, instr: ins, where: index, send: env.address(ins.send), recv: env.address(ins.recv),
    sendBytes: s.bytes, recvBytes: r.bytes, dtype: s.dtype, memberIndex: axisIndex(env.mesh, ins.meshAxis, env.rank), scratch: env.scratch,
  };
  if (ins.collective !== 'all_reduce') return base;
  const reduce = ins.reduce ?? 'sum';
  const n = s.bytes / PLAN_DTYPE_BYTES[s.dtype];
  const grid = helperGrid(n);
  if (env.collectives === 'in-process') {
    if (!REDUCIBLE.has(s.dtype)) {
      throw new IrError('E_UNSUPPORTED', `${where}: ranks sharing one GPU reduce only f32, f16 and bf16, not ${s.dtype}; run one process per GPU (NCCL) or recompile with a float reduction`);
    }
    if (env.scratch === 0n) throw new Error(`${where}: no all_reduce scratch was allocated for this rank`);
    const fn = env.helperFunction(reduceKernelName(reduce, s.dtype as ReduceDType), ctx);
    const launch = packLaunch(env.blocks, fn, grid, [256, 1, 1], 0, [
      { kind: 'ptr', value: base.recv },
      { kind: 'ptr', value: env.scratch },
      { kind: 'i32', value: ins.groupSize },
      { kind: 'i64', value: BigInt(n) },
    ]);
    return { ...base, reduce: launch };
  }
  if (reduce === 'mean' && env.meanNeedsScale && ins.groupSize > 1) {
    if (!REDUCIBLE.has(s.dtype)) throw new IrError('E_UNSUPPORTED', `${where}: a mean of ${s.dtype} values needs ncclAvg (NCCL 2.10 or newer)`);
    const fn = env.helperFunction(scaleKernelName(s.dtype as ReduceDType), ctx);
    const scale = packLaunch(env.blocks, fn, grid, [256, 1, 1], 0, [
      { kind: 'ptr', value: base.recv },
      { kind: 'f32', value: 1 / ins.groupSize },
      { kind: 'i64', value: BigInt(n) },
    ]);
    return { ...base, scale };
  }
  return base;
}

/** cuMemcpy2D's pitch limit (CU_DEVICE_ATTRIBUTE_MAX_PITCH is 2^31 - 1 on every current GPU). */
const MAX_PITCH = 2 ** 31 - 1;

export function prepareShardSlice(env: PrepareEnv, ins: ShardSliceInstr, index: string): PreparedShardSlice {
  const ctx: InstrContext = { index, op: 'shard_slice', origin: ins.origin };
  const c = shardSliceCopy(ins, axisIndex(env.mesh, ins.meshAxis, env.rank));
  const src = env.address(ins.src);
  const dst = env.address(ins.dst);
  const bytes = c.width * c.height;
  if (bytes === 0) return { op: 'shard_slice', ctx, copy2d: undefined, flat: undefined };
  // One row, or one part per row: the slice is contiguous.
  if (c.height === 1 || c.srcPitch === c.width) return { op: 'shard_slice', ctx, copy2d: undefined, flat: { dst, src: src + BigInt(c.srcOffset), bytes } };
  if (c.srcPitch > MAX_PITCH) {
    throw new Error(`shard_slice (instruction ${index}; ONNX nodes ${ins.origin.join(', ')}): rows of ${c.srcPitch} bytes exceed the ${MAX_PITCH}-byte pitch of a 2D copy`);
  }
  const block = new NativeBlock(MEMCPY2D_BYTES);
  env.blocks.push(block);
  writeMemcpy2D(block.view, src, dst, c);
  return { op: 'shard_slice', ctx, copy2d: block.addr, flat: undefined };
}
