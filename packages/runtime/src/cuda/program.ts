/**
 * Prepared plan program: every instruction resolved once at load time (device addresses, packed
 * kernel parameters, cuBLASLt descriptors and algorithm) and enqueued on a stream either eagerly
 * (a branch copies its condition to the host) or while capturing a CUDA graph (a branch becomes a
 * device-side conditional node, see graph.ts). The runtime never re-derives compiler decisions.
 */
import { PLAN_DTYPE_BYTES } from '../plan/bytes';
import type { BufferDecl, Instr } from '../plan/schema';
import { CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, Driver } from './driver';
import { InstrContext } from './errors';
import { NativeBlock, Ptr } from './ffi';
import { CublasLt, PreparedGemm } from './cublaslt';
import { GemmOperand, toColumnMajor } from './gemm-layout';
import { addIfElseNode, captureInto, createConditionalHandle } from './graph';
import { postOpKernelName } from './helper-kernels';
import { ResolvedArg, layoutKernelParams, resolveKernelArg, writeKernelParams } from './params';

export interface Launch {
  readonly fn: Ptr;
  readonly grid: readonly [number, number, number];
  readonly block: readonly [number, number, number];
  readonly smem: number;
  /** Address of the packed `void*[]`. */
  readonly params: Ptr;
}

export type PreparedInstr =
  | { readonly op: 'kernel'; readonly ctx: InstrContext; readonly launch: Launch }
  | { readonly op: 'gemm'; readonly ctx: InstrContext; readonly gemm: PreparedGemm; readonly post?: Launch }
  | { readonly op: 'copy'; readonly ctx: InstrContext; readonly dst: Ptr; readonly src: Ptr; readonly bytes: number }
  | { readonly op: 'branch'; readonly ctx: InstrContext; readonly cond: Ptr; readonly then: PreparedInstr[]; readonly else: PreparedInstr[] };

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
}

function packLaunch(env: PrepareEnv, fn: Ptr, grid: Launch['grid'], block: Launch['block'], smem: number, args: ResolvedArg[]): Launch {
  const layout = layoutKernelParams(args);
  const nb = new NativeBlock(layout.bytes);
  env.blocks.push(nb);
  const params = writeKernelParams(nb.view, nb.addr, args, layout);
  return { fn, grid, block, smem, params };
}

function prepareOne(env: PrepareEnv, ins: Instr, index: string): PreparedInstr {
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
      return { op: 'kernel', ctx, launch: packLaunch(env, fn, ins.grid, ins.block, ins.smem, args) };
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
        });
      } catch (e) {
        throw new Error(`${(e as Error).message} (instruction ${index}; ONNX nodes ${origin.join(', ')})`);
      }
      const gemm = env.lt().prepare(lt, env.workspace, env.workspaceBytes, ctx);
      env.gemms.push(gemm);
      if (lt.postOp === 'none') return { op: 'gemm', ctx, gemm };
      const out = view(ins.out);
      const dt = out.dtype as 'f32' | 'f16' | 'bf16';
      const fn = env.helperFunction(postOpKernelName(lt.postOp, dt), ctx);
      const total = ins.m * ins.n * ins.batch;
      const blocks = Math.min(Math.max(1, Math.ceil(total / 256)), 65535);
      const post = packLaunch(env, fn, [blocks, 1, 1], [256, 1, 1], 0, [
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
    case 'shard_slice':
      throw new Error(`instruction ${index} (${ins.op}): the CUDA backend does not run sharded plans yet`);
    default: {
      const never: never = ins;
      throw new Error(`unknown instruction ${JSON.stringify(never)}`);
    }
  }
}

function bytesOf(decl: BufferDecl): number {
  return PLAN_DTYPE_BYTES[decl.dtype];
}

export function prepareProgram(env: PrepareEnv, program: readonly Instr[]): PreparedInstr[] {
  return program.map((ins, i) => prepareOne(env, ins, String(i)));
}

export interface EnqueueEnv {
  readonly driver: Driver;
  readonly cuCtx: Ptr;
  /** Streams by nesting depth (index 0 is the step's stream); created on demand. */
  readonly streamAt: (depth: number) => Ptr;
  /** Eager mode: which way each branch went, counted (for tests and logs). */
  readonly branchTaken: Map<string, 'then' | 'else'>;
  readonly setConditional: (ctx: InstrContext) => Ptr;
  /** Eager warm-up: run both sides of every branch (loads every kernel before capture). */
  readonly bothSides?: boolean;
}

function launchOn(d: Driver, l: Launch, stream: Ptr, ctx: InstrContext): void {
  d.call('cuLaunchKernel', [l.fn, l.grid[0], l.grid[1], l.grid[2], l.block[0], l.block[1], l.block[2], l.smem, stream, l.params, null], ctx);
}

/** Enqueues `list` on the stream of `depth`; `capture` turns branches into conditional nodes. */
export function enqueue(env: EnqueueEnv, list: readonly PreparedInstr[], depth: number, capture: boolean): void {
  const d = env.driver;
  const stream = env.streamAt(depth);
  for (const p of list) {
    switch (p.op) {
      case 'kernel':
        launchOn(d, p.launch, stream, p.ctx);
        break;
      case 'gemm':
        p.gemm.launch(stream);
        if (p.post) launchOn(d, p.post, stream, p.ctx);
        break;
      case 'copy':
        if (p.bytes) d.call('cuMemcpyDtoDAsync_v2', [p.dst, p.src, p.bytes, stream], p.ctx);
        break;
      case 'branch':
        if (capture) enqueueConditional(env, p, depth, stream);
        else if (env.bothSides) {
          enqueue(env, p.then, depth, false);
          enqueue(env, p.else, depth, false);
        } else {
          d.sync(stream);
          const b = new Uint8Array(1);
          d.dtoh(b, p.cond, p.ctx);
          const side = b[0] ? 'then' : 'else';
          env.branchTaken.set(p.ctx.index, side);
          enqueue(env, b[0] ? p.then : p.else, depth, false);
        }
        break;
      default: {
        const never: never = p;
        throw new Error(`unknown prepared instruction ${JSON.stringify(never)}`);
      }
    }
  }
}

function enqueueConditional(env: EnqueueEnv, p: Extract<PreparedInstr, { op: 'branch' }>, depth: number, stream: Ptr): void {
  const d = env.driver;
  const handle = createConditionalHandle(d, stream, env.cuCtx, p.ctx);
  // paradit_set_conditional(handle, cond): its params live on the JS side only for this call;
  // cuLaunchKernel copies them into the graph node.
  const block = new NativeBlock(32);
  try {
    block.view.setBigUint64(0, handle, true);
    block.view.setBigUint64(8, p.cond, true);
    block.view.setBigUint64(16, block.addr, true);
    block.view.setBigUint64(24, block.addr + 8n, true);
    const fn = env.setConditional(p.ctx);
    d.call('cuLaunchKernel', [fn, 1, 1, 1, 1, 1, 1, 0, stream, block.addr + 16n, null], p.ctx);
  } finally {
    block.free();
  }
  const [thenGraph, elseGraph] = addIfElseNode(d, stream, env.cuCtx, handle, p.ctx);
  const side = env.streamAt(depth + 1);
  captureInto(d, side, thenGraph, p.ctx, () => enqueue(env, p.then, depth + 1, true));
  captureInto(d, side, elseGraph, p.ctx, () => enqueue(env, p.else, depth + 1, true));
}
