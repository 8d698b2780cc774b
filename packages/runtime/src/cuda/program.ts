/**
 * Prepared plan program: every instruction resolved once at load time (device addresses, packed
 * kernel parameters, cuBLASLt descriptors and algorithm, the rank's shard_slice copy, collective
 * buffers) for one rank; enqueue.ts puts it on streams, eagerly or under graph capture. The
 * runtime never re-derives compiler decisions: stream, wait and record come from the plan.
 */
import type { Mesh } from '@paradit/ir';
import { PLAN_DTYPE_BYTES } from '../plan/bytes';
import type { BufferDecl, Instr } from '../plan/schema';
import { CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, Driver } from './driver';
import { InstrContext } from './errors';
import type { NativeBlock, Ptr } from './ffi';
import { CublasLt, PreparedGemm } from './cublaslt';
import { GemmOperand, toColumnMajor } from './gemm-layout';
import { postOpKernelName } from './helper-kernels';
import { FP8_EPILOGUE_ACT, fp8EpilogueKernelName, fp8OutDType, fp8ScratchBytes, isNoAlgorithm, unscaledFp8Gemm } from './fp8-fallback';
import { resolveKernelArg } from './params';
import { Launch, helperGrid, packLaunch } from './launch';
import { CollectiveMode, PreparedCollective, PreparedShardSlice, prepareCollective, prepareShardSlice } from './prepare-comm';

/** Where an instruction runs: its stream (0 compute, 1 communication), events to wait for first, event to record after. */
interface InstrSync {
  readonly stream: 0 | 1;
  readonly wait: readonly number[];
  readonly record: number | undefined;
}

type PreparedOp =
  | { readonly op: 'kernel'; readonly ctx: InstrContext; readonly launch: Launch }
  | { readonly op: 'gemm'; readonly ctx: InstrContext; readonly gemm: PreparedGemm; readonly post?: Launch }
  | { readonly op: 'copy'; readonly ctx: InstrContext; readonly dst: Ptr; readonly src: Ptr; readonly bytes: number }
  | PreparedCollective
  | PreparedShardSlice
  | { readonly op: 'branch'; readonly ctx: InstrContext; readonly cond: Ptr; readonly then: PreparedInstr[]; readonly else: PreparedInstr[] };

export type PreparedInstr = PreparedOp & { readonly sync: InstrSync };

/** The plan's stream/wait/record of an instruction, checked against the plan's event count. */
export function instrSync(ins: Instr, events: number, index: string): InstrSync {
  const stream = ins.stream ?? 0;
  if (stream !== 0 && stream !== 1) throw new Error(`instruction ${index} (${ins.op}) runs on stream ${stream}; plans have streams 0 and 1`);
  const wait = ins.wait ?? [];
  for (const e of [...wait, ...(ins.record !== undefined ? [ins.record] : [])]) {
    if (!Number.isInteger(e) || e < 0 || e >= events) throw new Error(`instruction ${index} (${ins.op}) names event ${e}, outside the plan's ${events} events`);
  }
  return { stream, wait, record: ins.record };
}

export interface PrepareEnv {
  readonly driver: Driver;
  readonly lt: () => CublasLt;
  readonly buffers: ReadonlyMap<number, BufferDecl>;
  readonly address: (buf: number) => Ptr;
  readonly planFunction: (name: string, ctx: InstrContext) => Ptr;
  readonly helperFunction: (name: string, ctx: InstrContext) => Ptr;
  readonly maxSmemOptin: number;
  readonly workspace: Ptr;
  readonly workspaceBytes: number;
  /** Native blocks to free with the program. */
  readonly blocks: NativeBlock[];
  readonly gemms: PreparedGemm[];
  /** Functions whose dynamic shared-memory limit was already raised. */
  readonly smemRaised: Set<bigint>;
  /** The plan's event count (ids 0..events-1). */
  readonly events: number;
  /** This rank and the plan's mesh (shard_slice parts, collective member indices). */
  readonly rank: number;
  readonly mesh: Mesh;
  /** How collectives run: NCCL (one process per GPU) or copies among ranks sharing one GPU. */
  readonly collectives: CollectiveMode;
  /** In-process mode: this rank's all_reduce scratch (allReduceScratchBytes of the program). */
  readonly scratch: Ptr;
  /** NCCL mode without ncclAvg: a mean all_reduce also needs a scale kernel. */
  readonly meanNeedsScale: boolean;
  /**
   * The FP8 fallback's fp32 scratch (fp8-fallback.ts), allocated on first use at the size of the
   * plan's largest FP8 gemm; absent: no fallback (the heuristic's error stands).
   */
  readonly fp8Scratch?: (bytes: number) => Ptr;
  /** Take the fallback for every FP8 gemm (PARADIT_FP8_FALLBACK=1: to measure it on a card that has the scaled algorithm). */
  readonly forceFp8Fallback?: boolean;
  /** Load-time notes (the FP8 fallback says when it is taken). */
  readonly log?: (line: string) => void;
}


function prepareOne(env: PrepareEnv, ins: Instr, index: string): PreparedInstr {
  const sync = instrSync(ins, env.events, index);
  return { ...prepareOp(env, ins, index), sync };
}

function prepareOp(env: PrepareEnv, ins: Instr, index: string): PreparedOp {
  const origin = ins.origin;
  switch (ins.op) {
    case 'kernel': {
      const ctx: InstrContext = { index, op: 'kernel', kernel: ins.kernel, origin };
      const fn = env.planFunction(ins.kernel, ctx);
      if (ins.smem > env.maxSmemOptin) {
        throw new Error(`kernel '${ins.kernel}' (instruction ${index}) asks for ${ins.smem} bytes of shared memory; this device allows ${env.maxSmemOptin}`);
      }
      if (ins.smem > 48 * 1024 && !env.smemRaised.has(fn)) {
        env.driver.call('cuFuncSetAttribute', [fn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, ins.smem], ctx);
        env.smemRaised.add(fn);
      }
      const where = `kernel '${ins.kernel}' (instruction ${index})`;
      const args = ins.args.map((a) => resolveKernelArg(a, env.address, where));
      return { op: 'kernel', ctx, launch: packLaunch(env.blocks, fn, ins.grid, ins.block, ins.smem, args) };
    }
    case 'gemm': {
      const ctx: InstrContext = { index, op: 'gemm', origin };
      const view = (v: typeof ins.a): GemmOperand => {
        const decl = env.buffers.get(v.buf)!;
        return { ptr: env.address(v.buf) + BigInt(v.elemOffset * bytesOf(decl)), dtype: decl.dtype, rows: v.rows, cols: v.cols, ld: v.ld, batchStride: v.batchStride };
      };
      let lt;
      try {
        lt = toColumnMajor({
          m: ins.m, n: ins.n, k: ins.k, batch: ins.batch,
          a: view(ins.a), transA: ins.transA, b: view(ins.b), transB: ins.transB, out: view(ins.out),
          ...(ins.bias !== undefined ? { bias: { ptr: env.address(ins.bias), dtype: env.buffers.get(ins.bias)!.dtype } } : {}),
          epilogue: ins.epilogue, alpha: ins.alpha,
          ...(ins.scaleA !== undefined ? { scaleA: env.address(ins.scaleA) } : {}),
          ...(ins.scaleB !== undefined ? { scaleB: env.address(ins.scaleB) } : {}),
        });
      } catch (e) {
        throw new Error(`${(e as Error).message} (instruction ${index}; ONNX nodes ${origin.join(', ')})`);
      }
      let gemm: PreparedGemm;
      if (lt.scales && env.forceFp8Fallback && env.fp8Scratch) return prepareFp8Fallback(env, ins, lt, view(ins.out), ctx, index);
      try {
        gemm = env.lt().prepare(lt, env.workspace, env.workspaceBytes, ctx);
      } catch (e) {
        if (!lt.scales || !isNoAlgorithm(e) || !env.fp8Scratch) throw e;
        return prepareFp8Fallback(env, ins, lt, view(ins.out), ctx, index);
      }
      env.gemms.push(gemm);
      if (lt.postOp === 'none') return { op: 'gemm', ctx, gemm };
      const out = view(ins.out);
      const dt = out.dtype as 'f32' | 'f16' | 'bf16';
      const fn = env.helperFunction(postOpKernelName(lt.postOp, dt), ctx);
      const total = ins.m * ins.n * ins.batch;
      const post = packLaunch(env.blocks, fn, helperGrid(total), [256, 1, 1], 0, [
        { kind: 'ptr', value: out.ptr },
        { kind: 'i64', value: BigInt(ins.m) },
        { kind: 'i64', value: BigInt(ins.n) },
        { kind: 'i64', value: BigInt(out.ld) },
        { kind: 'i64', value: BigInt(ins.batch > 1 ? out.batchStride : 0) },
        { kind: 'i64', value: BigInt(ins.batch) },
      ]);
      return { op: 'gemm', ctx, gemm, post };
    }
    case 'copy': {
      const ctx: InstrContext = { index, op: 'copy', origin };
      const s = env.buffers.get(ins.src)!;
      const d = env.buffers.get(ins.dst)!;
      if (s.bytes !== d.bytes) throw new Error(`copy (instruction ${index}): source '${s.name}' has ${s.bytes} bytes, destination '${d.name}' ${d.bytes}`);
      return { op: 'copy', ctx, src: env.address(ins.src), dst: env.address(ins.dst), bytes: s.bytes };
    }
    case 'branch': {
      const ctx: InstrContext = { index, op: 'branch', origin };
      const c = env.buffers.get(ins.cond)!;
      if (c.dtype !== 'bool' && c.dtype !== 'u8') throw new Error(`branch (instruction ${index}): condition '${c.name}' must be bool or u8, got ${c.dtype}`);
      return {
        op: 'branch', ctx, cond: env.address(ins.cond),
        then: ins.then.map((x, i) => prepareOne(env, x, `${index}.then.${i}`)),
        else: ins.else.map((x, i) => prepareOne(env, x, `${index}.else.${i}`)),
      };
    }
    case 'collective':
      return prepareCollective(env, ins, index);
    case 'shard_slice':
      return prepareShardSlice(env, ins, index);
    default: {
      const never: never = ins;
      throw new Error(`unknown instruction ${JSON.stringify(never)}`);
    }
  }
}

/**
 * An FP8 gemm whose outer-vector-scaled descriptor has no cuBLASLt algorithm: the unscaled e4m3
 * gemm into the fp32 scratch, then paradit_fp8_epilogue_<dtype> (scales, bias, activation, cast).
 */
function prepareFp8Fallback(env: PrepareEnv, ins: Extract<Instr, { op: 'gemm' }>, lt: ReturnType<typeof toColumnMajor>, out: GemmOperand, ctx: InstrContext, index: string): PreparedOp {
  if ((ins.stream ?? 0) !== 0) throw new Error(`FP8 gemm (instruction ${index}): the scale-epilogue fallback shares one scratch on the compute stream; this gemm runs on stream ${ins.stream}`);
  const scratch = env.fp8Scratch!(fp8ScratchBytes(ins.m, ins.n));
  const gemm = env.lt().prepare(unscaledFp8Gemm(lt, scratch), env.workspace, env.workspaceBytes, ctx);
  env.gemms.push(gemm);
  const dt = fp8OutDType(out.dtype);
  const why = env.forceFp8Fallback ? 'PARADIT_FP8_FALLBACK=1' : 'cuBLASLt offers no outer-vector-scaled (OUTER_VEC_32F) algorithm';
  env.log?.(`FP8 gemm (instruction ${index}, ONNX nodes ${ins.origin.join(', ')}): ${why} for ${ins.m}x${ins.n}x${ins.k}; using an unscaled e4m3 gemm with fp32 output + the ${fp8EpilogueKernelName(dt)} scale epilogue`);
  const fn = env.helperFunction(fp8EpilogueKernelName(dt), ctx);
  const post = packLaunch(env.blocks, fn, helperGrid(ins.m * ins.n), [256, 1, 1], 0, [
    { kind: 'ptr', value: out.ptr },
    { kind: 'i64', value: BigInt(out.ld) },
    { kind: 'ptr', value: scratch },
    { kind: 'ptr', value: env.address(ins.scaleA!) },
    { kind: 'ptr', value: env.address(ins.scaleB!) },
    { kind: 'ptr', value: ins.bias !== undefined ? env.address(ins.bias) : 0n },
    { kind: 'i32', value: ins.bias !== undefined ? 1 : 0 },
    { kind: 'i32', value: FP8_EPILOGUE_ACT[ins.epilogue] },
    { kind: 'i64', value: BigInt(ins.m) },
    { kind: 'i64', value: BigInt(ins.n) },
  ]);
  return { op: 'gemm', ctx, gemm, post };
}

function bytesOf(decl: BufferDecl): number {
  return PLAN_DTYPE_BYTES[decl.dtype];
}

export function prepareProgram(env: PrepareEnv, program: readonly Instr[]): PreparedInstr[] {
  return program.map((ins, i) => prepareOne(env, ins, String(i)));
}

