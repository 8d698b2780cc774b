/**
 * The plan format (version 3): what `paradit compile` writes and the runtime loads.
 *
 * A plan is a directory:
 *   plan.json            this schema
 *   weights.bin          bytes [0, weights.bytes) of the weights space: every weight the runtime does
 *                        not generate, each at an offset aligned to `weights.alignment` bytes
 *                        (`weights.generated`: seeded --random-weights tensors, filled at load)
 *   kernels/module.cu    CUDA C++ source of every kernel (always present)
 *   kernels/module.fatbin sm_90a cubin + compute_90a PTX when nvcc was found at compile time (else null in the JSON;
 *                        the CUDA runtime then compiles module.cu with NVRTC at load time)
 *
 * Memory model: every tensor of the step lives in one of four device allocations ("spaces"),
 * at a fixed byte offset, so a captured CUDA graph can replay the step unchanged:
 *   weights  read-only, loaded from weights.bin
 *   io       the step's inputs and outputs (the host copies in and out around each step)
 *   state    persistent across steps of one generation (First Block Cache's r_ref and residuals);
 *            zeroed by `resetState`, never touched by the memory planner
 *   arena    activations, reused by the liveness-based memory planner
 * Shapes are static (compile specializes dynamic dims to the test data or --shape values).
 *
 * Every instruction carries `origin` (the ONNX node names it came from, for errors) and `ref`: an
 * IR text module whose graph inputs/outputs correspond, in order, to `ref.inputs`/`ref.outputs`
 * buffer ids. The CPU backend runs a plan by interpreting each instruction's `ref` against the same
 * buffers (so memory planning and instruction order are checked without a GPU); the CUDA backend
 * launches the kernel or library call instead.
 */
import { z } from 'zod';

export const PLAN_FORMAT = 'paradit-plan';
export const PLAN_VERSION = 3;

/** f8e4m3fn (one byte, OCP E4M3 "fn": no infinities, max 448) only in fp8 plans (docs/fp8.md). */
const planDType = z.enum(['f32', 'f16', 'bf16', 'i32', 'i64', 'bool', 'u8', 'i8', 'i16', 'u16', 'u32', 'u64', 'f8e4m3fn']);
export type PlanDType = z.infer<typeof planDType>;

export const space = z.enum(['weights', 'io', 'arena', 'state']);
export type Space = z.infer<typeof space>;

const bufferDecl = z.object({
  id: z.number().int().nonnegative(),
  /** IR value name (for messages and inspection). */
  name: z.string(),
  dtype: planDType,
  shape: z.array(z.number().int().nonnegative()),
  space,
  /** Byte offset inside its space; 256-byte aligned. */
  offset: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
});
export type BufferDecl = z.infer<typeof bufferDecl>;

/** The IR fragment an instruction computes (the CPU backend's definition of the instruction). */
const refFragment = z.object({
  text: z.string(),
  inputs: z.array(z.number().int()),
  outputs: z.array(z.number().int()),
});
export type RefFragment = z.infer<typeof refFragment>;

const kernelArg = z.union([
  z.object({ buf: z.number().int() }),
  z.object({ i32: z.number().int() }),
  z.object({ i64: z.number().int() }),
  z.object({ f32: z.number() }),
]);
export type KernelArg = z.infer<typeof kernelArg>;

const dim3 = z.tuple([z.number().int().positive(), z.number().int().positive(), z.number().int().positive()]);

/**
 * Streams and events (version 2). Every instruction runs on a stream of its instruction list:
 * 0, the compute stream (default), or 1, the communication stream. `wait` lists events the
 * instruction's stream waits for before it starts; `record` is recorded on its stream after it.
 * Rules (the compiler writes them, the loader checks them): every event is recorded by exactly one
 * instruction; a wait names an event recorded earlier in the same list (never in a nested region or
 * an enclosing list); an instruction on stream 1 waits for a stream-0 event (its inputs are ready)
 * and records an event that a later stream-0 instruction of the same list waits for (the list ends
 * with its streams joined); branches run on stream 0. Under CUDA graph capture, the events become
 * the graph's fork and join edges, so communication overlaps the compute between them.
 */
const common = {
  origin: z.array(z.string()),
  ref: refFragment.optional(),
  stream: z.number().int().min(0).max(1).optional(),
  wait: z.array(z.number().int().nonnegative()).optional(),
  record: z.number().int().nonnegative().optional(),
};

const meshAxisName = z.enum(['cfg', 'ring', 'ulysses', 'sp']);
export type MeshAxisName = z.infer<typeof meshAxisName>;

/**
 * A collective over the groups of one mesh axis (mesh.ts in @paradit/ir: rank = (c*R + r)*U + u;
 * 'sp' = ring x ulysses). Every member of a group runs it with the same `groupSize`; `send` and
 * `recv` are contiguous buffers of this rank, member order is the index along the axis:
 *   all_to_all  send and recv hold groupSize equal chunks; chunk j of send goes to member j, chunk i
 *               of recv comes from member i (Ulysses, after the compiler's pack/unpack kernels)
 *   all_gather  recv = every member's send, concatenated in member order (groupSize x send bytes)
 *   all_reduce  recv = elementwise reduce (sum, mean or max) of every member's send; send may be recv
 *   send_recv   member i sends send to member (i+shift) mod groupSize and receives recv from
 *               member (i-shift) mod groupSize (ring attention's K/V hand-off); with cyclic false
 *               (rows-parallel halos) nothing wraps: member i sends only when 0 <= i+shift <
 *               groupSize, and a member whose i-shift is outside the group gets recv zero-filled
 */
const collectiveInstr = z.object({
  op: z.literal('collective'),
  collective: z.enum(['all_to_all', 'all_gather', 'all_reduce', 'send_recv']),
  meshAxis: meshAxisName,
  groupSize: z.number().int().positive(),
  send: z.number().int(),
  recv: z.number().int(),
  reduce: z.enum(['sum', 'mean', 'max']).optional(),
  shift: z.number().int().optional(),
  /** send_recv only: false = no wrap-around (absent: cyclic). */
  cyclic: z.literal(false).optional(),
  ...common,
});
export type CollectiveInstr = z.infer<typeof collectiveInstr>;

/**
 * The rank's part of a replicated value, with no communication: `src` is `rows` rows of
 * groupSize*partBytes bytes; this rank copies part p = (index - shift) mod groupSize of every row
 * (bytes p*partBytes .. (p+1)*partBytes) into `dst` (rows x partBytes, contiguous). `index` is the
 * rank's index along meshAxis, known only at run time: one plan serves every rank.
 */
const shardSliceInstr = z.object({
  op: z.literal('shard_slice'),
  meshAxis: meshAxisName,
  groupSize: z.number().int().positive(),
  shift: z.number().int(),
  src: z.number().int(),
  dst: z.number().int(),
  rows: z.number().int().positive(),
  partBytes: z.number().int().nonnegative(),
  ...common,
});
export type ShardSliceInstr = z.infer<typeof shardSliceInstr>;

const kernelInstr = z.object({
  op: z.literal('kernel'),
  /** Entry point (extern "C" __global__ name) in kernels/module.cu. */
  kernel: z.string(),
  grid: dim3,
  block: dim3,
  /** Dynamic shared memory in bytes (the runtime raises the function's limit when > 48 KiB). */
  smem: z.number().int().nonnegative(),
  args: z.array(kernelArg),
  ...common,
});

/** Matrix operand of a gemm: a row-major [rows, cols] view with leading dimension `ld` (elements). */
const matrixView = z.object({
  buf: z.number().int(),
  /** Element offset from the buffer's start. */
  elemOffset: z.number().int().nonnegative().default(0),
  rows: z.number().int().positive(),
  cols: z.number().int().positive(),
  ld: z.number().int().positive(),
  /** Elements between consecutive matrices of a batched gemm (0 = shared). */
  batchStride: z.number().int().nonnegative().default(0),
});
export type MatrixView = z.infer<typeof matrixView>;

/**
 * out[b] = epilogue(alpha * opA(a[b]) @ opB(b[b]) + bias) (+ residual when given); fp32 accumulation.
 * opX transposes the row-major view when transX is true. Shapes: opA [m,k], opB [k,n], out [m,n].
 */
const gemmInstr = z.object({
  op: z.literal('gemm'),
  m: z.number().int().positive(),
  n: z.number().int().positive(),
  k: z.number().int().positive(),
  batch: z.number().int().positive(),
  a: matrixView,
  transA: z.boolean(),
  b: matrixView,
  transB: z.boolean(),
  out: matrixView,
  /** Bias of length n, added to every row. */
  bias: z.number().int().optional(),
  epilogue: z.enum(['none', 'gelu_tanh', 'gelu_erf', 'silu']),
  alpha: z.number(),
  /**
   * FP8 gemm (docs/fp8.md): a and b are f8e4m3fn, and the product is scaled per output element:
   * out[i,j] = (opA(a) @ opB(b))[i,j] * scaleA[i] * scaleB[j] (+ bias), fp32 accumulation, where
   * scaleA (f32, m values) is one scale per row of opA(a) and scaleB (f32, n values) one per
   * column of opB(b). Absent for every other gemm.
   */
  scaleA: z.number().int().optional(),
  scaleB: z.number().int().optional(),
  ...common,
});

const copyInstr = z.object({
  op: z.literal('copy'),
  src: z.number().int(),
  dst: z.number().int(),
  ...common,
});

export type Instr =
  | z.infer<typeof kernelInstr>
  | z.infer<typeof gemmInstr>
  | z.infer<typeof copyInstr>
  | CollectiveInstr
  | ShardSliceInstr
  | BranchInstr;

/** Runs `then` when the bool/u8 scalar `cond` (a device buffer) is true, else `else`. */
interface BranchInstr {
  op: 'branch';
  cond: number;
  then: Instr[];
  else: Instr[];
  origin: string[];
  ref?: RefFragment;
  stream?: number;
  wait?: number[];
  record?: number;
}

export const instr: z.ZodType<Instr, z.ZodTypeDef, unknown> = z.lazy(() =>
  z.union([
    kernelInstr,
    gemmInstr,
    copyInstr,
    collectiveInstr,
    shardSliceInstr,
    z.object({
      op: z.literal('branch'),
      cond: z.number().int(),
      then: z.array(instr),
      else: z.array(instr),
      ...common,
    }),
  ]),
) as z.ZodType<Instr, z.ZodTypeDef, unknown>;

/**
 * A weight the runtime generates at load instead of reading it from weights.bin (version 3):
 * `--random-weights` data, the counter-based generator of packages/ir/src/onnx/random-weights.ts.
 * Element i of the buffer is x_i(seed, fanIn) rounded to `from` (the model's dtype), then encoded
 * in `dtype` (the buffer's plan dtype). The buffer lies at or after byte `weights.bytes` of the
 * weights space (outside the file); the bytes there that no generated buffer covers are zero.
 */
const generatedWeight = z.object({
  buf: z.number().int().nonnegative(),
  generator: z.literal('uniform-jenkins32'),
  /** The 53-bit tensor seed (tensorSeed(user seed, initializer name)). */
  seed: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  count: z.number().int().nonnegative(),
  /** Last dim of the model's tensor: values are uniform in ±f32(1/sqrt(fanIn)). */
  fanIn: z.number().int().positive(),
  from: z.enum(['f32', 'bf16', 'f16']),
  dtype: z.enum(['f32', 'bf16', 'f16']),
});
export type GeneratedWeight = z.infer<typeof generatedWeight>;

const ioDecl = z.object({ name: z.string(), buf: z.number().int() });

/**
 * State that persists across the steps of one generation (First Block Cache). The program itself
 * updates state buffers (the lowering emits the copies); the runtime only zeroes the state space
 * on `resetState`.
 */
const stateDecl = z.object({
  name: z.string(),
  buf: z.number().int(),
  /** What it is, e.g. "fbcache.r_ref", "fbcache.residual[0]", "fbcache.valid". */
  role: z.string(),
});

export const planSchema = z.object({
  format: z.literal(PLAN_FORMAT),
  version: z.literal(PLAN_VERSION),
  compiledFrom: z.object({
    model: z.string(),
    /** sha256 of model.onnx (hex). */
    modelSha256: z.string(),
    /** Seed when the weights were generated by --random-weights. */
    randomWeightsSeed: z.number().int().optional(),
    paradit: z.string(),
    createdAt: z.string(),
  }),
  target: z.object({
    backend: z.enum(['cuda', 'cpu']),
    /** e.g. "sm_90a"; the CUDA runtime refuses a plan for another architecture. */
    arch: z.string(),
    /** 'fp8': bf16 storage with e4m3 linear layers (docs/fp8.md). */
    dtype: z.enum(['f32', 'f16', 'bf16', 'fp8']),
    /** The mesh the plan was compiled for; the runtime runs it on exactly cfg*ring*ulysses ranks. */
    mesh: z.object({ cfg: z.number().int().positive(), ring: z.number().int().positive(), ulysses: z.number().int().positive() }),
  }),
  /** Streams per instruction list (1: compute only; 2: compute and communication). */
  streams: z.number().int().min(1).max(2),
  /** Events used by `record`/`wait` (ids 0..events-1). */
  events: z.number().int().nonnegative(),
  spaces: z.object({
    weights: z.number().int().nonnegative(),
    io: z.number().int().nonnegative(),
    arena: z.number().int().nonnegative(),
    state: z.number().int().nonnegative(),
  }),
  weights: z.object({
    file: z.literal('weights.bin'),
    /** Size of weights.bin: the first `bytes` bytes of the weights space (<= spaces.weights). */
    bytes: z.number().int().nonnegative(),
    alignment: z.number().int().positive(),
    /** sha256 of weights.bin (hex). */
    sha256: z.string(),
    /** Weights the runtime fills itself (version 3; empty when every weight is in the file). */
    generated: z.array(generatedWeight),
  }),
  kernels: z.object({
    source: z.literal('kernels/module.cu'),
    cubin: z.string().nullable(),
    /** nvcc/NVRTC options the source needs (e.g. -std=c++17). */
    options: z.array(z.string()),
  }),
  /**
   * sha256 (hex) of every file of the plan but plan.json and weights.bin (weights.sha256 covers
   * it), by path relative to the plan directory: kernels/module.cu and the kernel binary. The
   * loader verifies each, so a flipped byte in the kernel binary is refused, not loaded.
   */
  files: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)),
  buffers: z.array(bufferDecl),
  inputs: z.array(ioDecl),
  outputs: z.array(ioDecl),
  state: z.array(stateDecl),
  program: z.array(instr),
  /** Human-facing summary for `inspect`: peak arena bytes, kernel count, ... */
  stats: z.record(z.string(), z.number()),
});
export type Plan = z.infer<typeof planSchema>;
