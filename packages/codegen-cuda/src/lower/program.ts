/**
 * The lowered program: the plan's instructions over IR Values, before the memory planner turns
 * Values into buffers with offsets. Every instruction keeps the IR nodes it computes (`covers`),
 * which become the plan's `origin` (ONNX node names) and `ref` (IR text for the CPU backend).
 */
import type { MeshAxis, Node, Value } from '@paradit/ir';
import type { EmittedKernel } from '../kernel-types';

/** The IR a plan instruction computes: `nodes` map `inputs` to `outputs` (graph-level values). */
export interface RefSpec {
  readonly nodes: readonly Node[];
  readonly inputs: readonly Value[];
  readonly outputs: readonly Value[];
}

/** A row-major [rows, cols] matrix view of a value, at an element offset. */
export interface LMatrix {
  readonly value: Value;
  readonly elemOffset: number;
  readonly rows: number;
  readonly cols: number;
  readonly ld: number;
  readonly batchStride: number;
}

export interface LGemm {
  readonly op: 'gemm';
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly batch: number;
  readonly a: LMatrix;
  readonly transA: boolean;
  readonly b: LMatrix;
  readonly transB: boolean;
  readonly out: LMatrix;
  readonly bias?: Value;
  readonly epilogue: 'none' | 'gelu_tanh' | 'gelu_erf' | 'silu';
  readonly alpha: number;
  /** FP8 gemm (linear_fp8): f32 scale per row of opA (m values) and per column of opB (n values). */
  readonly scaleA?: Value;
  readonly scaleB?: Value;
  readonly covers: readonly Node[];
  readonly ref: RefSpec;
}

export interface LKernel {
  readonly op: 'kernel';
  readonly kernel: EmittedKernel;
  readonly ref: RefSpec;
}

interface LCopy {
  readonly op: 'copy';
  readonly src: Value;
  readonly dst: Value;
  readonly origin: readonly string[];
}

export interface LBranch {
  readonly op: 'branch';
  readonly cond: Value;
  readonly then: readonly LInstr[];
  readonly else: readonly LInstr[];
  readonly node: Node;
}

/** A collective of the plan (schema.ts `collective`): contiguous `send` / `recv` buffers. */
export interface LCollective {
  readonly op: 'collective';
  readonly collective: 'all_to_all' | 'all_gather' | 'all_reduce' | 'send_recv';
  readonly meshAxis: MeshAxis;
  readonly groupSize: number;
  readonly send: Value;
  readonly recv: Value;
  readonly reduce?: 'sum' | 'mean' | 'max';
  readonly shift?: number;
  /** send_recv without wrap-around (ppermute cyclic=0): edge members receive zeros. */
  readonly cyclic?: false;
  readonly node: Node;
}

/** This rank's part of a replicated value (schema.ts `shard_slice`). */
export interface LShardSlice {
  readonly op: 'shard_slice';
  readonly meshAxis: MeshAxis;
  readonly groupSize: number;
  readonly shift: number;
  readonly src: Value;
  readonly dst: Value;
  readonly rows: number;
  readonly partBytes: number;
  readonly node: Node;
}

/** Where an instruction runs and how it is ordered with the other stream (schedule.ts). */
export interface LSync {
  readonly stream: 0 | 1;
  readonly wait: readonly number[];
  readonly record?: number;
}

export type LInstr = (LGemm | LKernel | LCopy | LBranch | LCollective | LShardSlice) & { readonly sync?: LSync };

/** `value` shares the bytes of `of`, starting `byteOffset` bytes in. */
export interface LAlias {
  readonly of: Value;
  readonly byteOffset: number;
}

export interface LStatePair {
  readonly name: string;
  /** The graph input holding the state (a state-space buffer). */
  readonly input: Value;
  /** The value the program computes for the next step (copied into `input` at the end). */
  readonly next: Value;
}

export interface LoweredProgram {
  readonly program: readonly LInstr[];
  /** Event ids used by the instructions' sync (0 when everything runs on stream 0). */
  readonly events?: number;
  readonly aliases: ReadonlyMap<Value, LAlias>;
  readonly inputs: readonly { readonly name: string; readonly value: Value }[];
  /** io-space output buffers (fresh values filled by copies, or values written in place). */
  readonly outputs: readonly { readonly name: string; readonly value: Value }[];
  readonly state: readonly LStatePair[];
  readonly opsets: Readonly<Record<string, number>>;
}

export function originOf(nodes: readonly Node[]): string[] {
  return nodes.map((n) => n.name || n.op);
}
