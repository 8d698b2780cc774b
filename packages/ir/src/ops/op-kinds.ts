/**
 * The op enum: every op the IR knows, grouped by the file that defines its rules. ONNX ops keep
 * their exact ONNX names; ParaDiT's own DiT-level ops (added by the fusion passes) are lower-case.
 * Each group is implemented by a table `{ [K in Group]: OpRule }` in the file named beside it, so
 * an op added here does not compile until its shape rule and interpreter exist.
 */

/** ops/elementwise.ts: broadcasting unary, binary, variadic and ternary math. */
export type ElementwiseOp =
  | 'Abs' | 'Neg' | 'Exp' | 'Log' | 'Sqrt' | 'Reciprocal' | 'Sin' | 'Cos' | 'Tan' | 'Tanh'
  | 'Asin' | 'Acos' | 'Atan' | 'Sinh' | 'Cosh' | 'Asinh' | 'Acosh' | 'Atanh'
  | 'Sigmoid' | 'Relu' | 'Erf' | 'Floor' | 'Ceil' | 'Round' | 'Sign' | 'Not' | 'IsNaN' | 'IsInf'
  | 'Softplus' | 'Softsign' | 'HardSigmoid' | 'HardSwish' | 'Elu' | 'Selu' | 'Celu' | 'LeakyRelu'
  | 'ThresholdedRelu' | 'Gelu' | 'Mish' | 'Clip' | 'PRelu'
  | 'Add' | 'Sub' | 'Mul' | 'Div' | 'Pow' | 'Mod'
  | 'Equal' | 'Less' | 'LessOrEqual' | 'Greater' | 'GreaterOrEqual' | 'And' | 'Or' | 'Xor'
  | 'BitwiseAnd' | 'BitwiseOr' | 'BitwiseXor' | 'BitwiseNot' | 'BitShift'
  | 'Max' | 'Min' | 'Sum' | 'Mean' | 'Where' | 'Cast' | 'CastLike' | 'Identity' | 'Dropout';

/** ops/reduce.ts: reductions, arg-reductions, scans and softmax-like normalizations. */
export type ReduceOp =
  | 'ReduceMean' | 'ReduceSum' | 'ReduceMax' | 'ReduceMin' | 'ReduceProd' | 'ReduceL1' | 'ReduceL2'
  | 'ReduceLogSum' | 'ReduceLogSumExp' | 'ReduceSumSquare' | 'ArgMax' | 'ArgMin' | 'CumSum'
  | 'Softmax' | 'LogSoftmax' | 'Hardmax' | 'TopK';

/** ops/nn.ts: contractions, convolution, normalization layers and attention. */
export type NnOp =
  | 'MatMul' | 'Gemm' | 'Einsum' | 'Conv' | 'ConvTranspose' | 'AveragePool' | 'MaxPool'
  | 'GlobalAveragePool' | 'GlobalMaxPool' | 'LayerNormalization' | 'RMSNormalization'
  | 'GroupNormalization' | 'InstanceNormalization' | 'BatchNormalization' | 'Attention'
  | 'RotaryEmbedding';

/** ops/shape.ts: shape, layout and indexing ops. */
export type ShapeOp =
  | 'Reshape' | 'Transpose' | 'Flatten' | 'Squeeze' | 'Unsqueeze' | 'Concat' | 'Split' | 'Slice'
  | 'Gather' | 'GatherElements' | 'GatherND' | 'ScatterND' | 'ScatterElements' | 'Expand' | 'Tile'
  | 'Pad' | 'Shape' | 'Size' | 'ConstantOfShape' | 'Range' | 'Constant' | 'Trilu' | 'OneHot'
  | 'NonZero' | 'DepthToSpace' | 'SpaceToDepth' | 'EyeLike' | 'Resize';

/** ops/control.ts: control flow with subgraphs. */
export type ControlOp = 'If';

type OnnxOp = ElementwiseOp | ReduceOp | NnOp | ShapeOp | ControlOp;

/** ops/paradit.ts: ParaDiT's DiT-level ops, created by passes (never imported from ONNX). */
export type ParaditOp =
  | 'attention' | 'rms_norm' | 'layer_norm' | 'gelu' | 'silu' | 'rope' | 'modulate' | 'gated_residual' | 'linear'
  /** ops/paradit-fp8.ts: `--dtype fp8` linear layers (quantize-linears-fp8), `--comm-dtype fp8` (quantize-comm-fp8). */
  | 'quantize_fp8_rows' | 'linear_fp8' | 'dequantize_fp8_rows';

/**
 * ops/collective.ts: context-parallel ops (created by the context-parallel passes): collectives
 * over a mesh axis, per-rank slices, token reordering, and the ring-attention kernels.
 */
export type CollectiveOp =
  | 'all_to_all' | 'all_gather' | 'all_reduce' | 'ppermute' | 'shard_slice'
  | 'to_token_order' | 'from_token_order' | 'attention_lse' | 'lse_merge';

export type OpKind = OnnxOp | ParaditOp | CollectiveOp;
