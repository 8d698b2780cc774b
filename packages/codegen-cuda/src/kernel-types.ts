/**
 * Contracts between the lowering (lower/), the fused-kernel emitters (kernels/) and the attention
 * kernel generator (kernels/attention.ts). Kept in one small file so the three can evolve apart.
 */
import type { Graph, Node, Value } from '@paradit/ir';

type Dim3 = readonly [number, number, number];

/** One argument of a kernel launch, in parameter order. */
export type EmittedArg =
  | { readonly kind: 'value'; readonly value: Value } // a device pointer to the value's buffer
  | { readonly kind: 'i32'; readonly v: number }
  | { readonly kind: 'i64'; readonly v: number }
  | { readonly kind: 'f32'; readonly v: number };

export interface EmittedKernel {
  /** extern "C" __global__ entry name; unique within the module (emitters make it so). */
  readonly entry: string;
  /** CUDA C++ source of this kernel (deduplicated by the lowering when two kernels share text). */
  readonly source: string;
  readonly grid: Dim3;
  readonly block: Dim3;
  readonly smem: number;
  readonly args: readonly EmittedArg[];
  /** The IR nodes this kernel computes (its CPU reference), in order. */
  readonly covers: readonly Node[];
  /** Values it reads / writes (device buffers). */
  readonly reads: readonly Value[];
  readonly writes: readonly Value[];
}

/** An output that needs no kernel: it is a view of an input's buffer (Reshape, Unsqueeze, ...). */
export interface EmittedAlias {
  readonly value: Value;
  readonly of: Value;
  /** Byte offset into `of`'s buffer (0 for reshapes; a contiguous Slice/Split piece may use it). */
  readonly byteOffset: number;
  readonly covers: readonly Node[];
}

export interface FragmentLowering {
  readonly kernels: readonly EmittedKernel[];
  readonly aliases: readonly EmittedAlias[];
}

/**
 * Emits kernels for a fragment: a Graph (static shapes, dtypes already chosen by the dtype policy)
 * holding a run of non-GEMM, non-attention nodes. Its inputs are values produced outside; its
 * outputs are the values used outside. Must handle ANY such fragment (fusing what it can, one
 * kernel per node otherwise), or throw a CodegenError naming the node and op it cannot lower.
 */
export type EmitFragment = (fragment: Graph, opts: { readonly namePrefix: string; readonly opset?: number }) => FragmentLowering;
