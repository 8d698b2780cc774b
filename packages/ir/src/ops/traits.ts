/**
 * Op traits: the per-op facts that passes and codegen ask by name ("is this a view?", "may CSE swap
 * its operands?"). They used to be a dozen op-name sets spread over four packages, so a new op
 * compiled without anyone deciding whether, say, it is row-wise. The mapped type makes this table
 * exhaustive: an op added to op-kinds.ts does not compile until its entry here lists its traits
 * (an empty list is a decision too).
 *
 * Each trait's membership is exactly what its users relied on before the table existed; where two
 * traits look alike (heavy / contraction) the doc line says which ops differ and why.
 */
import type { OpKind } from './op-kinds';

export type OpTrait =
  /** Row-major reinterpretation of the input's bytes (no data moves): Reshape and its shorthands. */
  | 'reshape'
  /** The output is the input (same shape and bytes). */
  | 'alias'
  /** Permutes axes (moves data in memory; a view only for strided consumers). */
  | 'transpose'
  /** Repeats the input along axes (broadcast or tile). */
  | 'repeat'
  /** Reads only the input's shape, never its values (block discovery looks through these). */
  | 'metadata'
  /** Two-input op whose operands CSE may sort (variadic Max/Min/Sum are not marked: CSE keeps their order). */
  | 'commutative'
  /** Tensor-core compute (GEMM, convolution, fused attention): runs in the plan's low-precision dtype. ONNX Attention is not marked: fuse-attention turns it into `attention` before the dtype policy. */
  | 'contraction'
  /** Compute that makes a residual branch a transformer block (block discovery); unlike contraction it includes ONNX Attention and leaves out ConvTranspose and attention_lse. */
  | 'heavy'
  /** Scaled dot-product attention, ONNX or ParaDiT. */
  | 'attention'
  /** The activation of a transformer MLP (marks the parallel MLP branch of a block). */
  | 'mlpActivation'
  /** Normalisation whose statistics the dtype policy keeps in fp32. */
  | 'statsNorm'
  /** Moves data between ranks. */
  | 'communicating'
  /** Takes this rank's slice of a replicated value (a plan step, no communication). */
  | 'rankSlice'
  /** Lowered to a kernel or plan step of its own, never into a fused elementwise fragment. */
  | 'ownKernel'
  /** Moves or regroups data without computing on it (a first-block cache skip path may pass through). */
  | 'movesData'
  /** Treats rows independently: output dims follow input dims (mask-token-selection may run it on selected rows). */
  | 'rowwise'
  /** Commonly computes on small shape vectors (mask-token-selection tracks count-dependent values through it). */
  | 'shapeMath'
  /** Holds subgraphs. */
  | 'control';

export const OP_TRAITS: { readonly [K in OpKind]: readonly OpTrait[] } = {
  // ElementwiseOp
  Abs: ['rowwise', 'shapeMath'],
  Neg: ['rowwise', 'shapeMath'],
  Exp: ['rowwise'],
  Log: ['rowwise'],
  Sqrt: ['rowwise'],
  Reciprocal: ['rowwise'],
  Sin: ['rowwise'],
  Cos: ['rowwise'],
  Tan: [],
  Tanh: ['rowwise'],
  Asin: [],
  Acos: [],
  Atan: [],
  Sinh: [],
  Cosh: [],
  Asinh: [],
  Acosh: [],
  Atanh: [],
  Sigmoid: ['rowwise'],
  Relu: ['rowwise'],
  Erf: ['rowwise'],
  Floor: ['rowwise', 'shapeMath'],
  Ceil: ['rowwise', 'shapeMath'],
  Round: ['rowwise'],
  Sign: ['rowwise'],
  Not: ['rowwise', 'shapeMath'],
  IsNaN: ['rowwise'],
  IsInf: ['rowwise'],
  Softplus: ['rowwise'],
  Softsign: [],
  HardSigmoid: ['rowwise'],
  HardSwish: ['rowwise'],
  Elu: ['rowwise'],
  Selu: ['rowwise'],
  Celu: ['rowwise'],
  LeakyRelu: ['rowwise'],
  ThresholdedRelu: [],
  Gelu: ['mlpActivation', 'rowwise'],
  Mish: ['rowwise'],
  Clip: ['rowwise'],
  PRelu: [],
  Add: ['commutative', 'rowwise', 'shapeMath'],
  Sub: ['rowwise', 'shapeMath'],
  Mul: ['commutative', 'rowwise', 'shapeMath'],
  Div: ['rowwise', 'shapeMath'],
  Pow: ['rowwise'],
  Mod: ['rowwise', 'shapeMath'],
  Equal: ['commutative', 'rowwise', 'shapeMath'],
  Less: ['rowwise', 'shapeMath'],
  LessOrEqual: ['rowwise'],
  Greater: ['rowwise', 'shapeMath'],
  GreaterOrEqual: ['rowwise'],
  And: ['commutative', 'rowwise', 'shapeMath'],
  Or: ['commutative', 'rowwise', 'shapeMath'],
  Xor: ['commutative', 'rowwise'],
  BitwiseAnd: ['commutative'],
  BitwiseOr: ['commutative'],
  BitwiseXor: ['commutative'],
  BitwiseNot: [],
  BitShift: [],
  Max: ['rowwise', 'shapeMath'],
  Min: ['rowwise', 'shapeMath'],
  Sum: ['rowwise'],
  Mean: ['rowwise'],
  Where: ['rowwise', 'shapeMath'],
  Cast: ['rowwise', 'shapeMath'],
  CastLike: ['rowwise'],
  Identity: ['alias', 'movesData', 'rowwise', 'shapeMath'],
  Dropout: ['rowwise'],
  // ReduceOp
  ReduceMean: [],
  ReduceSum: [],
  ReduceMax: [],
  ReduceMin: [],
  ReduceProd: [],
  ReduceL1: [],
  ReduceL2: [],
  ReduceLogSum: [],
  ReduceLogSumExp: [],
  ReduceSumSquare: [],
  ArgMax: [],
  ArgMin: [],
  CumSum: [],
  Softmax: [],
  LogSoftmax: [],
  Hardmax: [],
  TopK: [],
  // NnOp
  MatMul: ['contraction', 'heavy', 'ownKernel'],
  Gemm: ['contraction', 'heavy', 'ownKernel'],
  Einsum: ['contraction', 'heavy', 'ownKernel'],
  Conv: ['contraction', 'heavy', 'ownKernel'],
  ConvTranspose: ['contraction', 'ownKernel'],
  AveragePool: [],
  MaxPool: [],
  GlobalAveragePool: [],
  GlobalMaxPool: [],
  LayerNormalization: ['statsNorm'],
  RMSNormalization: ['statsNorm'],
  GroupNormalization: ['statsNorm'],
  InstanceNormalization: [],
  BatchNormalization: [],
  Attention: ['heavy', 'attention', 'ownKernel'],
  RotaryEmbedding: [],
  // ShapeOp
  Reshape: ['reshape', 'movesData', 'rowwise', 'shapeMath'],
  Transpose: ['transpose', 'movesData', 'rowwise', 'shapeMath'],
  Flatten: ['reshape', 'movesData', 'rowwise', 'shapeMath'],
  Squeeze: ['reshape', 'movesData', 'rowwise', 'shapeMath'],
  Unsqueeze: ['reshape', 'movesData', 'rowwise', 'shapeMath'],
  Concat: ['movesData', 'shapeMath'],
  Split: ['movesData'],
  Slice: ['movesData', 'shapeMath'],
  Gather: ['shapeMath'],
  GatherElements: [],
  GatherND: [],
  ScatterND: [],
  ScatterElements: [],
  Expand: ['repeat', 'rowwise', 'shapeMath'],
  Tile: ['repeat', 'shapeMath'],
  Pad: [],
  Shape: ['metadata', 'shapeMath'],
  Size: ['metadata', 'shapeMath'],
  ConstantOfShape: ['shapeMath'],
  Range: ['shapeMath'],
  Constant: [],
  Trilu: [],
  OneHot: [],
  NonZero: [],
  DepthToSpace: [],
  SpaceToDepth: [],
  EyeLike: [],
  Resize: [],
  // ControlOp
  If: ['ownKernel', 'control'],
  // ParaditOp
  attention: ['contraction', 'heavy', 'attention', 'ownKernel'],
  rms_norm: ['statsNorm'],
  layer_norm: ['statsNorm'],
  gelu: ['mlpActivation'],
  silu: ['mlpActivation'],
  rope: [],
  modulate: [],
  gated_residual: [],
  linear: ['contraction', 'heavy', 'ownKernel'],
  // Not 'contraction': the dtype policy must not cast the e4m3 operands or the fp32 scales.
  quantize_fp8_rows: ['ownKernel'],
  linear_fp8: ['heavy', 'ownKernel'],
  dequantize_fp8_rows: ['ownKernel'],
  // CollectiveOp
  all_to_all: ['communicating', 'ownKernel', 'movesData'],
  all_gather: ['communicating', 'ownKernel', 'movesData'],
  all_reduce: ['communicating', 'ownKernel'],
  ppermute: ['communicating', 'ownKernel'],
  shard_slice: ['rankSlice', 'ownKernel', 'movesData'],
  to_token_order: ['ownKernel', 'movesData'],
  from_token_order: ['ownKernel', 'movesData'],
  attention_lse: ['contraction', 'ownKernel'],
  lse_merge: ['ownKernel'],
};

/** Whether `op` (any op name; unknown names have no traits) has trait `t`. */
export function hasTrait(op: string, t: OpTrait): boolean {
  return Object.prototype.hasOwnProperty.call(OP_TRAITS, op) && OP_TRAITS[op as OpKind].includes(t);
}

/** The ops with at least one of `traits`, as a set to test `node.op` against. */
export function opsWith(...traits: readonly OpTrait[]): ReadonlySet<OpKind> {
  const out = new Set<OpKind>();
  for (const [op, ts] of Object.entries(OP_TRAITS) as [OpKind, readonly OpTrait[]][]) if (ts.some((t) => traits.includes(t))) out.add(op);
  return out;
}
