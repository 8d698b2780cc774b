/**
 * How every IR op reaches CUDA: one exhaustive table keyed by OpKind (a new op does not compile
 * until it says how it lowers), and the pre-lowering check that lists every node whose op has no
 * CUDA path, all of them in one error. The paths:
 *   pointwise     fused elementwise kernels (kernels/scalar-ops.ts)
 *   view          no kernel: strides of a lazy expression or an alias of a buffer (kernels/views.ts)
 *   row           register-resident row kernels (norms, softmax; kernels/row-kernel.ts)
 *   reduction     row or loop reductions (kernels/row-kernel.ts, kernels/loop-kernel.ts)
 *   gemm          cuBLASLt (lower/gemm.ts); forms it does not take use the indexed path
 *   attention     the flash kernel, or GEMMs + softmax (lower/attention.ts, decompose-attention.ts)
 *   indexed       the generic element-indexed kernel (kernels/indexed*.ts); bf16/fp16 group-1 Conv
 *                 (implicit GEMM, a nearest 2x Resize before it folded in) and the exporters'
 *                 GroupNorm pattern (InstanceNormalization between Reshapes, + affine, + silu) take
 *                 dedicated kernels first (kernels/conv-fragment.ts)
 *   scatter       copy-then-scatter kernels (kernels/scatter-kernel.ts)
 *   plan          a plan instruction of its own (collectives, branches)
 *   compile-time  folded to a constant before lowering (static shapes make it known)
 *   refused       no CUDA path, with the reason
 */
import type { Graph, Module, Node, OpKind } from '@paradit/ir';
import { IrError } from '@paradit/ir';

export type CudaPath =
  | { readonly kind: 'pointwise' | 'view' | 'row' | 'reduction' | 'gemm' | 'attention' | 'indexed' | 'scatter' | 'plan' }
  | { readonly kind: 'compile-time'; readonly why: string }
  | { readonly kind: 'refused'; readonly reason: string };

const P = { kind: 'pointwise' } as const;
const V = { kind: 'view' } as const;
const R = { kind: 'row' } as const;
const RED = { kind: 'reduction' } as const;
const G = { kind: 'gemm' } as const;
const ATT = { kind: 'attention' } as const;
const IX = { kind: 'indexed' } as const;
const SC = { kind: 'scatter' } as const;
const PLAN = { kind: 'plan' } as const;
const ct = (why: string): CudaPath => ({ kind: 'compile-time', why });
const refused = (reason: string): CudaPath => ({ kind: 'refused', reason });

export const CUDA_PATHS: { readonly [K in OpKind]: CudaPath } = {
  // elementwise
  Abs: P, Neg: P, Exp: P, Log: P, Sqrt: P, Reciprocal: P, Sin: P, Cos: P, Tan: P, Tanh: P,
  Asin: P, Acos: P, Atan: P, Sinh: P, Cosh: P, Asinh: P, Acosh: P, Atanh: P,
  Sigmoid: P, Relu: P, Erf: P, Floor: P, Ceil: P, Round: P, Sign: P, Not: P, IsNaN: P, IsInf: P,
  Softplus: P, Softsign: P, HardSigmoid: P, HardSwish: P, Elu: P, Selu: P, Celu: P, LeakyRelu: P,
  ThresholdedRelu: P, Gelu: P, Mish: P, Clip: P, PRelu: P,
  Add: P, Sub: P, Mul: P, Div: P, Pow: P, Mod: P,
  Equal: P, Less: P, LessOrEqual: P, Greater: P, GreaterOrEqual: P, And: P, Or: P, Xor: P,
  BitwiseAnd: P, BitwiseOr: P, BitwiseXor: P, BitwiseNot: P, BitShift: P,
  Max: P, Min: P, Sum: P, Mean: P, Where: P, Cast: P, CastLike: P, Identity: V, Dropout: V,
  // reductions, scans, softmax
  ReduceMean: RED, ReduceSum: RED, ReduceMax: RED, ReduceMin: RED, ReduceProd: RED, ReduceL1: RED, ReduceL2: RED,
  ReduceLogSum: IX, ReduceLogSumExp: IX, ReduceSumSquare: RED, ArgMax: IX, ArgMin: IX, CumSum: IX,
  Softmax: R, LogSoftmax: R, Hardmax: IX, TopK: IX,
  // nn
  MatMul: G, Gemm: G, Einsum: G, Conv: IX, ConvTranspose: IX, AveragePool: IX, MaxPool: IX,
  GlobalAveragePool: IX, GlobalMaxPool: IX, LayerNormalization: R, RMSNormalization: R,
  GroupNormalization: IX, InstanceNormalization: IX, BatchNormalization: IX, Attention: ATT,
  RotaryEmbedding: refused('the ONNX RotaryEmbedding op (opset 23) has no kernel yet; exports that spell rotary out (Mul/Add/Slice/Concat, as torch exporters do) fuse into rope'),
  // shape and indexing
  Reshape: V, Transpose: V, Flatten: V, Squeeze: V, Unsqueeze: V, Concat: V, Split: V, Slice: V,
  Gather: V, GatherElements: IX, GatherND: IX, ScatterND: SC, ScatterElements: SC, Expand: V, Tile: IX,
  Pad: IX, Shape: ct('the shape is static in a plan'), Size: ct('the size is static in a plan'),
  ConstantOfShape: IX, Range: IX, Constant: ct('a constant'), Trilu: IX, OneHot: IX,
  NonZero: refused('its output shape depends on the data (the count of nonzeros); mask-token-selection rewrites the attention-mask form, other uses need a fixed-size export'),
  DepthToSpace: IX, SpaceToDepth: IX, EyeLike: IX, Resize: IX,
  // control flow
  If: PLAN,
  // ParaDiT ops
  attention: ATT, rms_norm: R, layer_norm: R, gelu: P, silu: P, rope: P, modulate: P, gated_residual: P, linear: G,
  quantize_fp8_rows: R, linear_fp8: G, dequantize_fp8_rows: R, // kernels/fp8-quantize.ts; lower/gemm-fp8.ts
  // context parallelism
  all_to_all: PLAN, all_gather: PLAN, all_reduce: PLAN, ppermute: PLAN, shard_slice: PLAN,
  to_token_order: V, from_token_order: V, attention_lse: ATT, lse_merge: P,
};

export function cudaPathOf(op: OpKind): CudaPath | undefined {
  return CUDA_PATHS[op];
}

function walk(g: Graph, f: (n: Node) => void): void {
  for (const n of g.nodes) {
    f(n);
    for (const sg of n.subgraphs()) walk(sg, f);
  }
}

/**
 * Ops that may read or write e4m3 values: moves of their bytes (views, copies, collectives; the
 * kernels store f8e4m3fn as `unsigned char`, c-types.ts) and the fp8 ops whose kernels convert it.
 */
const FP8_BYTE_OPS: ReadonlySet<string> = new Set<OpKind>([
  'Reshape', 'Transpose', 'Flatten', 'Squeeze', 'Unsqueeze', 'Concat', 'Split', 'Slice', 'Gather', 'Identity', 'Expand',
  'all_to_all', 'all_gather', 'ppermute', 'shard_slice', 'If',
  'quantize_fp8_rows', 'linear_fp8', 'dequantize_fp8_rows',
]);

const touchesFp8 = (n: Node): boolean => [...n.inputs, ...n.outputs].some((v) => v !== null && v.dtype === 'f8e4m3fn');

/** One line per refused node: "NonZero 'nz_3': <reason>". */
export function refusedNodes(m: Module): string[] {
  const lines: string[] = [];
  walk(m.graph, (n) => {
    const p = cudaPathOf(n.op);
    if (!p) lines.push(`${n.label}: op ${n.op} has no entry in the CUDA lowering table`);
    else if (p.kind === 'refused') lines.push(`${n.label}: ${p.reason}`);
    else if (touchesFp8(n) && !FP8_BYTE_OPS.has(n.op)) lines.push(`${n.label}: computes on f8e4m3fn values; CUDA kernels only move e4m3 bytes or read them in the fp8 ops (quantize/dequantize_fp8_rows, linear_fp8)`);
  });
  return lines;
}

/** The one error listing every node without a CUDA path (exit 2), or nothing. */
export function coverageError(lines: readonly string[]): IrError | undefined {
  if (lines.length === 0) return undefined;
  const shown = lines.slice(0, 50);
  const more = lines.length > shown.length ? `\n  ... and ${lines.length - shown.length} more` : '';
  return new IrError(
    'E_UNSUPPORTED',
    `${lines.length} node${lines.length === 1 ? '' : 's'} ${lines.length === 1 ? 'has' : 'have'} no CUDA kernel:\n  ${shown.join('\n  ')}${more}\n` +
      'compile with --stub-kernels to run the plan on the CPU backend, or change the export (docs/conformance.md lists the ops without a CUDA path)',
  );
}
